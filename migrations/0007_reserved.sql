-- Placeholder: 0007 is reserved for another branch (issue 14 phase 2a was given 0008).
-- The integrator deletes this file when that branch's 0007 is merged.
SELECT 1;
