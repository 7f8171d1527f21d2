-- Output safety check (issue 17).
-- Per guild: what happens to a clip the classifier scores at or over the threshold
-- (NULL: the defaults in bot/safety/policy.py).
ALTER TABLE guild_settings ADD COLUMN safety_mode TEXT;        -- off | spoiler | hold
ALTER TABLE guild_settings ADD COLUMN safety_threshold REAL;   -- 0..1
-- The provider marked the finished clip as not safe for work (Leonardo's `nsfw` flag).
ALTER TABLE jobs ADD COLUMN provider_flagged INTEGER NOT NULL DEFAULT 0;
-- One row per checked clip, written once before its first post: the score, the action taken
-- and, for a held clip, the moderator's decision (made once: UPDATE ... WHERE decision IS NULL).
CREATE TABLE clip_checks (
    job_id           INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    guild_id         INTEGER,
    score            REAL NOT NULL,                 -- max over sampled frames (1 if flagged)
    labels_json      TEXT NOT NULL DEFAULT '[]',    -- labels at or over the threshold
    frames           INTEGER NOT NULL DEFAULT 0,    -- frames scored (0: no classifier)
    provider_flagged INTEGER NOT NULL DEFAULT 0,
    threshold        REAL NOT NULL,
    mode             TEXT NOT NULL CHECK (mode IN ('off', 'spoiler', 'hold')),
    action           TEXT NOT NULL CHECK (action IN ('post', 'spoiler', 'hold')),
    note             TEXT,                          -- why (age-restricted channel, no mod-log, ...)
    checked_at       TEXT NOT NULL,
    hold_until       TEXT,                          -- a held clip is discarded after this
    hold_channel_id  INTEGER,                       -- the mod-log message with the buttons
    hold_message_id  INTEGER,
    decision         TEXT CHECK (decision IN ('released', 'discarded', 'expired')),
    decided_by       INTEGER,
    decided_at       TEXT
);
CREATE INDEX clip_checks_held ON clip_checks (hold_until) WHERE action = 'hold' AND decision IS NULL;
