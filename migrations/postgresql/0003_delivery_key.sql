-- A random key per job, written before its clip is first posted (see ../0003_delivery_key.sql).
ALTER TABLE jobs ADD COLUMN delivery_key TEXT;
