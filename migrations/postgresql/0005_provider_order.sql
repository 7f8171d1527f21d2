-- A guild's provider fallback order (see ../0005_provider_order.sql).
CREATE TABLE guild_provider_order (
    guild_id    BIGINT NOT NULL,
    position    INTEGER NOT NULL CHECK (position >= 0),
    provider    TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (guild_id, position),
    UNIQUE (guild_id, provider)
);
