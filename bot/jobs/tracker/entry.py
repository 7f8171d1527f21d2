"""Entry: what the tracker knows about one job beyond its row (schedule, counters)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.jobs.tracker.timing import Estimate, Key
from bot.store.jobs import JobRecord

SUBMIT, POLL, DOWNLOAD, DELIVER, EXPIRE = "submit", "poll", "download", "deliver", "expire"


@dataclass(eq=False)
class Entry:
    """One tracked job: its row (replaced from the store after every write) and its schedule."""

    job: JobRecord
    key: Key
    est: Estimate
    seq: int = 0
    where: str = ""  # "heap" | "queue" | "ready" | "" (busy or nowhere)
    busy: bool = False
    call: int = 0  # the provider call in flight (its `ProviderState.begin_call` token)
    cancelled: bool = False
    submitted_mono: float = 0.0
    last_poll_mono: float | None = None
    last_poll_elapsed: float | None = None  # the latest "not done yet" answer
    eta_at: float | None = None  # provider-reported finish (loop clock)
    eta_misses: int = 0  # polls at the ETA that found the job still running
    seen_progress: tuple[float, float] | None = None  # (progress, loop time) of the last one
    first_poll: tuple[str, float] | None = None  # (kind, planned seconds after submission)
    calls: int = 0  # provider calls made for it by this process
    submitted_here: bool = False
    polls: int = 0
    errors: int = 0
    internal_errors: int = 0
    downloads: int = 0
    deliveries: int = 0
    outage_since: float | None = None  # loop time of the first transient delivery failure
    outage_tries: int = 0  # transient failures since then (not counted in `deliveries`)
    reported_position: int | None = None
    retry_front: bool = False
    # An earlier submission may have reached the provider (its answer was lost, or the
    # process stopped during it): look for it there, from this time, before submitting.
    unknown_since: datetime | None = None
    later: float | None = None  # due time chosen while a work item runs (pushed when it ends)
    due: float = 0.0  # loop time of its planned work item (while `where` is "heap")
    early_due: float | None = None  # the planned poll an early poll (`idle`) went ahead of

    @property
    def id(self) -> int:
        return self.job.id


class Stop(Exception):
    """The job left the tracker (cancelled, ended) while a call was in flight."""
