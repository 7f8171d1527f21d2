-- What the job tracker learned about provider timing, kept across restarts
-- (bot/store/timing.py; bot/jobs/tracker/timing.py uses it).
--
-- A job's provider time is a *measured* sample only when polls bracketed its finish (the last
-- "not done yet" and the "done" answer close together, or the provider's ETA inside that
-- window). A first poll that finds a job already done (after bot downtime, a backlog) only
-- bounds the time from above; such jobs have `provider_done_at` but no row here, so a restart
-- never reloads a censored figure as an exact one. Jobs finished before this migration have
-- no row either: which of them were bracketed is not known, and none is reloaded.
CREATE TABLE timing_measured_jobs (
    job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    seconds REAL NOT NULL CHECK (seconds > 0) -- submission -> provider done
);

-- Where the first status call of a job class lands, learned from first-poll outcomes
-- (`DurationModel.observe_first`): "probe" for providers with progress/ETA, "plain" without.
-- `model` is '' for a provider without model names.
CREATE TABLE timing_first_polls (
    provider TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    duration INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    fps INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('probe', 'plain')),
    seconds REAL NOT NULL CHECK (seconds > 0), -- after submission
    updated_at TEXT NOT NULL,
    PRIMARY KEY (provider, model, duration, width, height, fps, kind)
);

-- Whether a provider reports progress or an ETA while a job runs (decides probe vs plain).
CREATE TABLE timing_providers (
    provider TEXT PRIMARY KEY,
    progress_mode TEXT NOT NULL CHECK (progress_mode IN ('yes', 'no')),
    updated_at TEXT NOT NULL
);
