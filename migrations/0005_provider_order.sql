-- A guild's provider fallback order (`/videoadmin provider order`): when the provider a
-- member asked for (or the default) is failing, the next healthy one in this order that
-- can make the request is used automatically. No rows: no order (the member is offered an
-- alternative instead). Names are provider names (`bytecompute`, `leonardo`, ...); one not
-- configured at the time is skipped.
CREATE TABLE guild_provider_order (
    guild_id INTEGER NOT NULL,
    position INTEGER NOT NULL CHECK (position >= 0),
    provider TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (guild_id, position),
    UNIQUE (guild_id, provider)
);
