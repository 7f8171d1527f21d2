-- "Animate" (see ../0004_animate.sql): may members animate others' messages (NULL/0: no,
-- 1: yes), and the message a job's input images came from, as JSON (NULL for /video).
ALTER TABLE guild_settings ADD COLUMN animate_others INTEGER;
ALTER TABLE jobs ADD COLUMN source_json TEXT;
