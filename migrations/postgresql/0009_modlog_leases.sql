-- Mod-log outbox leases, one per guild (see ../0009_modlog_leases.sql).
CREATE TABLE modlog_leases (
    guild_id BIGINT PRIMARY KEY,
    owner    TEXT NOT NULL,
    until    TIMESTAMPTZ NOT NULL
);
