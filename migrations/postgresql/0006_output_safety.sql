-- Output safety check (see ../0006_output_safety.sql). Scores and thresholds are DOUBLE
-- PRECISION (SQLite's REAL), so a stored 0.7 reads back as 0.7.
ALTER TABLE guild_settings ADD COLUMN safety_mode TEXT;        -- off | spoiler | hold
ALTER TABLE guild_settings ADD COLUMN safety_threshold DOUBLE PRECISION;   -- 0..1
ALTER TABLE jobs ADD COLUMN provider_flagged INTEGER NOT NULL DEFAULT 0;

CREATE TABLE clip_checks (
    job_id           BIGINT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    guild_id         BIGINT,
    score            DOUBLE PRECISION NOT NULL,
    labels_json      TEXT NOT NULL DEFAULT '[]',
    frames           INTEGER NOT NULL DEFAULT 0,
    provider_flagged INTEGER NOT NULL DEFAULT 0,
    threshold        DOUBLE PRECISION NOT NULL,
    mode             TEXT NOT NULL CHECK (mode IN ('off', 'spoiler', 'hold')),
    action           TEXT NOT NULL CHECK (action IN ('post', 'spoiler', 'hold')),
    note             TEXT,
    checked_at       TIMESTAMPTZ NOT NULL,
    hold_until       TIMESTAMPTZ,
    hold_channel_id  BIGINT,
    hold_message_id  BIGINT,
    decision         TEXT CHECK (decision IN ('released', 'discarded', 'expired')),
    decided_by       BIGINT,
    decided_at       TIMESTAMPTZ
);
CREATE INDEX clip_checks_held ON clip_checks (hold_until) WHERE action = 'hold' AND decision IS NULL;
