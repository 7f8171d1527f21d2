-- What the job tracker learned about provider timing (see ../0007_timing.sql): measured
-- (bracketed) provider times, first-poll times per job class, providers' progress modes.
CREATE TABLE timing_measured_jobs (
    job_id   BIGINT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    seconds  DOUBLE PRECISION NOT NULL CHECK (seconds > 0)
);

CREATE TABLE timing_first_polls (
    provider    TEXT NOT NULL,
    model       TEXT NOT NULL DEFAULT '',
    duration    INTEGER NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    fps         INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('probe', 'plain')),
    seconds     DOUBLE PRECISION NOT NULL CHECK (seconds > 0),
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, model, duration, width, height, fps, kind)
);

CREATE TABLE timing_providers (
    provider       TEXT PRIMARY KEY,
    progress_mode  TEXT NOT NULL CHECK (progress_mode IN ('yes', 'no')),
    updated_at     TIMESTAMPTZ NOT NULL
);
