-- Placeholder so 0004_delivery_key applies on this branch (migrations may not have gaps).
-- The integrator replaces it with the real 0003 of another branch (or renumbers 0004).
SELECT 1;
