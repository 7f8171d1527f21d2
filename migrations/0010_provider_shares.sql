-- Several processes on one database (issue 14): a provider's request budget is per API key,
-- so the processes split it. Each holds a `share` (0-1) of every provider's budget and says
-- how many of its jobs are with that provider (`demand`); shares are re-split by demand, and
-- their sum never exceeds 1 (bot/store/shares.py, bot/jobs/tracker/shares.py). Only used on
-- PostgreSQL (on SQLite the bot is one process: its share is the whole budget); the table
-- exists on both so the two schemas stay alike.
CREATE TABLE provider_shares (
    provider   TEXT NOT NULL,
    owner      TEXT NOT NULL,
    share      REAL NOT NULL CHECK (share >= 0 AND share <= 1),
    demand     INTEGER NOT NULL CHECK (demand >= 0),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (provider, owner)
);
