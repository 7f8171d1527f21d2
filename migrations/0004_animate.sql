-- "Animate" (the message context menu).
--
-- Per guild: may members animate the images of messages they did not write (other
-- members', bots', webhooks')? NULL or 0: no, only their own messages (the default); 1: yes.
ALTER TABLE guild_settings ADD COLUMN animate_others INTEGER;
-- The message a job's input images came from (Animate), as JSON: guild_id, channel_id,
-- message_id, author_id, author_kind ('member' | 'bot' | 'webhook'). NULL for /video.
ALTER TABLE jobs ADD COLUMN source_json TEXT;
