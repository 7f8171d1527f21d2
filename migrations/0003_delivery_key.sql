-- A random key per job, written before its clip is first posted: it is in the clip's file
-- name and the message nonce, so an earlier post of this job (a retry after a lost answer,
-- a restart) is found by the key alone, never by the job number, which another database
-- (a second deployment, a recreated one) reuses. NULL: no post attempted yet.
ALTER TABLE jobs ADD COLUMN delivery_key TEXT;
