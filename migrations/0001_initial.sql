-- Initial schema: jobs + events, quota ledger, guild settings, blocked members/terms,
-- audit log (append-only), command-sync state. Timestamps are ISO-8601 UTC strings.

CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id            INTEGER,
    channel_id          INTEGER,
    user_id             INTEGER NOT NULL,
    provider            TEXT NOT NULL,
    model               TEXT,
    mode                TEXT NOT NULL CHECK (mode IN ('text-to-video', 'image-to-video', 'frame-to-video')),
    prompt              TEXT NOT NULL,
    params_json         TEXT NOT NULL,            -- negotiated request (duration, size, fps, seed, audio, ...)
    adjustments_json    TEXT NOT NULL DEFAULT '[]',
    status              TEXT NOT NULL DEFAULT 'pending' CHECK (status IN (
                            'pending', 'submitted', 'running', 'downloading', 'delivering',
                            'delivered', 'failed', 'cancelled', 'expired')),
    provider_job_id     TEXT,
    provider_data_json  TEXT,                     -- provider-specific resume data (never secrets)
    seconds             REAL NOT NULL DEFAULT 0,  -- negotiated seconds of video
    cost_usd            REAL NOT NULL DEFAULT 0,
    progress            REAL,
    failure_reason      TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    input_dir           TEXT,                     -- stored input images until submission succeeds
    interaction_message_id INTEGER,               -- the deferred response ("original") message
    result_message_id   INTEGER,                  -- recorded before status becomes 'delivered'
    result_channel_id   INTEGER,
    origin              TEXT NOT NULL DEFAULT 'discord' CHECK (origin IN ('discord', 'cli')),
    created_at          TEXT NOT NULL,
    submitted_at        TEXT,
    provider_done_at    TEXT,
    finished_at         TEXT,
    updated_at          TEXT NOT NULL
);
CREATE INDEX jobs_active ON jobs (status) WHERE status NOT IN ('delivered', 'failed', 'cancelled', 'expired');
CREATE INDEX jobs_user ON jobs (guild_id, user_id, created_at);

CREATE TABLE job_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    reason      TEXT
);
CREATE INDEX job_events_job ON job_events (job_id, id);

CREATE TABLE quota_ledger (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    job_id      INTEGER REFERENCES jobs (id),
    kind        TEXT NOT NULL CHECK (kind IN ('reserve', 'settle', 'refund', 'reset')),
    seconds     REAL NOT NULL,                    -- weighted seconds; reserve > 0, refund < 0
    cost_usd    REAL NOT NULL DEFAULT 0,
    at          TEXT NOT NULL,
    note        TEXT
);
CREATE INDEX quota_ledger_member ON quota_ledger (guild_id, user_id, at);
CREATE INDEX quota_ledger_job ON quota_ledger (job_id);
CREATE INDEX quota_ledger_guild_at ON quota_ledger (guild_id, at);

CREATE TABLE guild_settings (
    guild_id              INTEGER PRIMARY KEY,
    log_channel_id        INTEGER,
    quota_seconds         INTEGER,                -- NULL: QUOTA_SECONDS_PER_DAY
    quota_window_seconds  INTEGER,                -- NULL: 86400
    hd_weight             REAL,                   -- NULL: 2
    max_concurrent_jobs   INTEGER,
    cooldown_seconds      INTEGER,
    monthly_budget_usd    REAL,
    retention_days        INTEGER,                -- NULL: 90
    updated_at            TEXT NOT NULL
);

CREATE TABLE role_allowances (
    guild_id    INTEGER NOT NULL,
    role_id     INTEGER NOT NULL,
    seconds     INTEGER,                          -- NULL: unlimited
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);

CREATE TABLE member_allowances (
    guild_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    seconds     INTEGER,                          -- NULL: unlimited; 0: none
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE blocked_members (
    guild_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    reason      TEXT,
    blocked_by  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,                             -- NULL: until unblocked
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE blocked_terms (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id    INTEGER NOT NULL,
    pattern     TEXT NOT NULL,
    is_regex    INTEGER NOT NULL DEFAULT 0 CHECK (is_regex IN (0, 1)),
    added_by    INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (guild_id, pattern, is_regex)
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id    INTEGER,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,                    -- generation, refusal, admin, delete, prune, ...
    actor_id    INTEGER,                          -- who did it (member or admin); NULL: the bot
    target_id   INTEGER,                          -- member affected, if any
    channel_id  INTEGER,
    job_id      INTEGER,
    summary     TEXT NOT NULL,
    data_json   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_guild_at ON audit_log (guild_id, at);
CREATE INDEX audit_log_target ON audit_log (guild_id, target_id, at);

-- Retention pruning is the only permitted delete: it opens this gate inside its transaction.
CREATE TABLE audit_prune_gate (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    open    INTEGER NOT NULL DEFAULT 0 CHECK (open IN (0, 1))
);
INSERT INTO audit_prune_gate (id, open) VALUES (1, 0);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN (SELECT open FROM audit_prune_gate WHERE id = 1) = 0
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only (only retention pruning may delete)');
END;

-- Mod-log channel posts: entries are in the DB first, posting is retried until done.
CREATE TABLE modlog_outbox (
    audit_id    INTEGER PRIMARY KEY,
    guild_id    INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_try_at TEXT NOT NULL,
    last_error  TEXT
);

CREATE TABLE command_sync (
    scope       TEXT PRIMARY KEY,                 -- 'global' or 'guild:<id>'
    schema_hash TEXT NOT NULL,
    synced_at   TEXT NOT NULL
);
