-- Several processes on one database (issue 14): a guild's mod-log outbox is drained by one
-- process at a time, the one holding the guild's lease (owner = INSTANCE_NAME) until `until`;
-- it is taken or renewed before each post and handed back after the guild's pass
-- (bot/store/modlog_leases.py).
CREATE TABLE modlog_leases (
    guild_id INTEGER PRIMARY KEY,
    owner    TEXT NOT NULL,
    until    TEXT NOT NULL
);
