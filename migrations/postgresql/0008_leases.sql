-- Job leases and process heartbeats (see ../0008_leases.sql).
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until TIMESTAMPTZ;
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE status NOT IN ('delivered', 'failed', 'cancelled', 'expired');
CREATE TABLE instances (
    name         TEXT PRIMARY KEY,
    shards       TEXT,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
