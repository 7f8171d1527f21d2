-- Several processes on one database (issue 14): a job is driven by the process holding its
-- lease (lease_owner = INSTANCE_NAME) until lease_until; heartbeats extend it, a graceful
-- stop clears it, and an expired lease may be claimed by any process (bot/store/leases.py).
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until TEXT;
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE status NOT IN ('delivered', 'failed', 'cancelled', 'expired');
-- One row per running process, refreshed by its heartbeat; `check` lists the live ones.
CREATE TABLE instances (
    name         TEXT PRIMARY KEY,
    shards       TEXT,                    -- e.g. "0,1"; NULL: unsharded
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
