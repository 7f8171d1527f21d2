"""JobTracker: drives every job from its row to a posted clip, across restarts.

Design (issue #4):

* **State lives in SQLite** (`bot/store/jobs.py`): every status change is validated and
  written with a `job_events` row; in-memory structures are only a schedule and are rebuilt
  from the table by `start()`.
* **One dispatcher task** keeps a heap of (due time, job) and sleeps until the earliest due
  entry, a refill of a provider's request budget, or a wake-up (enqueue, cancel, a finished
  work item). Due work runs as short tasks (one provider call plus its bookkeeping), bounded
  per provider by `max_parallel_requests`; there is no long-lived task per job.
* **Request budget per provider**: every submit/status/download/cancel call takes a token
  from the provider's bucket (`requests_per_second`, plus `submits_per_second` for submits),
  and at most `max_parallel_requests` calls are in flight. When more calls are due than the
  budget allows, downloads go first, then due polls, most likely finished first (elapsed /
  expected time, or the provider's ETA), then new submissions (which keep at least
  `min_submit_share` of the calls). Submissions are also *paced* at budget / calls-per-job
  (learned, 4 to start): a burst of 1,000 jobs is taken on only as fast as the budget can
  watch them, instead of filling the budget with submissions and starving their polls.
* **Adaptive polling**, per job class (provider, model, duration, width, height, fps):
  - providers that report progress or an ETA (learned per provider) get an early *probe*
    poll; one "running, 40 %" answer gives the finish time, and the next poll lands just
    after it (`eta_margin_*`). The probe time is a per-class stochastic quantile estimate
    (`probe_quantile`, default 5 %: it moves earlier when a probe finds the job done,
    later when it finds it still queued), so few jobs finish before it.
  - providers without progress get a first poll at the class median (same estimator,
    `first_poll_quantile`), then polls every `spread` (>= `min_poll_interval_seconds`),
    backing off slowly once a job is long overdue.
  - medians/spreads come from measured provider times (the ETA, or a tight bracket between
    two polls), loaded from the table at start; unseen classes use their siblings, a fit
    across sizes, a provider hint (`expected_seconds(request)` or `delay_seconds`, e.g. the
    simulator), or `prior_base_seconds + prior_seconds_per_video_second * duration`.
* **Errors**: `RateLimitedError` pauses the whole provider for `retry_after` and halves its
  rate (recovering gradually); transient errors back off per job (exponential, jitter) and,
  after three in a row for the provider, pause the provider (circuit breaker).
* **Fairness**: pending jobs wait in a per-provider round-robin queue across members, for a
  provider slot (`max_concurrency`: jobs submitted and not yet finished there).
* **Delivery** is at-least-once with a single-write window: the clip is posted by the sink,
  its message id is committed, then the job is marked delivered (and its quota settled) in a
  second transaction. A restart re-posts only a `delivering` job without a message id, so a
  duplicate post needs a crash in the instant between Discord accepting the post and the
  commit of one local row; a crash during the (long) upload re-posts once and never loses
  the clip.
* **Quota**: a terminal state is written in the same transaction as `bot.quota.settle`
  (delivered) or `bot.quota.refund` (failed, cancelled, expired).
* **Files**: inputs stay in the job's `input_dir` (only ever removed inside `data_dir`)
  until the provider accepts the job; clips go to `data_dir/clips/<id>.mp4.part`, are
  renamed when complete and removed after delivery or failure; `start()` removes leftovers.

`JobTracker.stats` counts provider calls by kind (submit, poll, download, cancel).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import os
import random
import shutil
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from bot import quota
from bot.config import Settings
from bot.db import Database, utcnow
from bot.media import MediaError
from bot.providers.base import (
    Adjustment,
    AuthenticationError,
    InvalidRequestError,
    JobFailedError,
    JobNotFoundError,
    JobState,
    JobStatus,
    NegotiatedRequest,
    OutcomeUnknownError,
    Provider,
    ProviderError,
    ProviderJob,
    RateLimitedError,
    TransientError,
)
from bot.scheduling import create_task
from bot.store import jobs as store
from bot.store.jobs import InvalidTransitionError, JobRecord, Status

log = logging.getLogger(__name__)

# Member-facing reasons (job_ended).
MSG_MISCONFIGURED = "the video service is misconfigured; an admin has been notified"
MSG_DISK = "the finished clip could not be saved on the bot's server; an admin has been notified"
MSG_DOWNLOAD = "the finished clip could not be downloaded from the video service"
MSG_POST = "the finished clip could not be posted"
MSG_INTERNAL = "something went wrong on the bot's side; an admin has been notified"
MSG_GONE = "the video service no longer knows this job (it expired there)"
MSG_PROVIDER_FAILED = "the video service could not make this video"


class DeliveryReceipt(BaseModel):
    """Where the clip was posted (message id None: nothing to remember, e.g. the CLI)."""

    channel_id: int | None
    message_id: int | None


class DeliverySink(Protocol):
    """Implemented by the Discord cog (and the CLI); bot/ has no Discord UI code.

    Notifications (`job_queued`, `job_started`, `job_progress`, `job_ended`) are best effort:
    an exception is logged and ignored. `job_completed` must post the clip and return where;
    raising means "not posted": it is retried (`delivery_attempts`), except a
    `bot.media.MediaError`, which fails the job with its `message`.
    """

    async def job_queued(self, job: JobRecord, position: int) -> None: ...

    async def job_started(self, job: JobRecord) -> None: ...

    async def job_progress(
        self, job: JobRecord, progress: float | None, eta_seconds: float | None
    ) -> None: ...

    async def job_completed(self, job: JobRecord, clip: Path) -> DeliveryReceipt: ...

    async def job_ended(self, job: JobRecord, outcome: str, reason: str) -> None: ...


RATE_RECOVERY_STEP = 0.1  # share of the budget regained per successful call after a 429


class TrackerSettings(BaseModel):
    """Knobs of the tracker. Per-provider dicts are keyed by provider name."""

    # Request budget: default `limits.requests_per_minute / 60` (and `submits_per_minute`).
    requests_per_second: dict[str, float] = Field(default_factory=dict)
    submits_per_second: dict[str, float] = Field(default_factory=dict)
    # Bucket size = rate * this (at least 1 call): small, so no 1-s window sees much more
    # than the rate.
    burst_seconds: float = Field(default=0.05, gt=0)
    # Jobs in flight at a provider (submitted, not finished); default `limits.max_concurrency`.
    max_concurrency: dict[str, int] = Field(default_factory=dict)
    max_parallel_requests: int = Field(default=16, ge=1)  # HTTP calls in flight per provider
    max_parallel_deliveries: int = Field(default=4, ge=1)
    # When the budget is short, due polls go first, but waiting submissions still get at
    # least this share of the calls.
    min_submit_share: float = Field(default=0.2, gt=0, le=1)
    # Submissions are paced at budget / (provider calls per job, learned; this to start),
    # so a burst of jobs does not take more of the budget than their polls will leave.
    expected_calls_per_job: float = Field(default=4.0, ge=1)
    shutdown_grace_seconds: float = Field(default=5.0, ge=0)
    progress_interval_seconds: float = Field(default=5.0, ge=0)  # min gap per job
    sweep_interval_seconds: float = Field(default=5.0, gt=0)  # expiry + queue positions
    # Polling plan.
    min_poll_interval_seconds: float = Field(default=1.0, gt=0)
    max_poll_interval_seconds: float = Field(default=60.0, gt=0)
    first_poll_lead: float = 0.0  # first poll at expected + lead * spread
    window_gap_factor: float = Field(default=1.0, gt=0)  # poll gap near expected = spread * f
    overdue_backoff: float = Field(default=0.2, ge=0)  # long overdue: gap >= this * overdue
    prior_base_seconds: float = Field(default=30.0, ge=0)
    prior_seconds_per_video_second: float = Field(default=6.0, ge=0)
    prior_spread_fraction: float = Field(default=0.15, gt=0)
    cold_low_fraction: float = Field(default=0.25, gt=0)  # early quantile without history
    # Where first polls land, tracked per class from their outcomes (done yet or not):
    # probes (providers with progress/ETA) aim at this early quantile of the provider time,
    # plain first polls (no progress) at `first_poll_quantile`. `quantile_step` is the
    # multiplicative learning rate.
    probe_quantile: float = Field(default=0.05, gt=0, lt=1)
    first_poll_quantile: float = Field(default=0.5, gt=0, lt=1)
    quantile_step: float = Field(default=0.2, gt=0, le=1)
    # A provider ETA (or one derived from progress) is trusted: poll at eta + margin, where
    # margin = eta_margin_seconds + eta_margin_fraction * eta.
    eta_margin_seconds: float = Field(default=0.2, ge=0)
    eta_margin_fraction: float = Field(default=0.005, ge=0)
    max_eta_wait_seconds: float = Field(default=180.0, gt=0)  # longest wait an ETA may ask
    history_size: int = Field(default=50, ge=1)
    # Errors.
    error_backoff_base_seconds: float = Field(default=1.0, gt=0)
    error_backoff_max_seconds: float = Field(default=60.0, gt=0)
    provider_pause_max_seconds: float = Field(default=30.0, gt=0)
    download_attempts: int = Field(default=6, ge=1)
    delivery_attempts: int = Field(default=5, ge=1)
    max_internal_errors: int = Field(default=5, ge=1)
    # Age limit for providers that state no `job_expiry`.
    max_job_age_seconds: float = Field(default=86_400.0, gt=0)


# ----- duration model and polling plan ----------------------------------------------------

Key = tuple[str, str | None, int, int, int, int]  # provider, model, duration, w, h, fps


@dataclass(frozen=True)
class Estimate:
    """Belief about a job's provider time (seconds from submission to done).

    `expected` is the median, `spread` about one standard deviation, `low` an early
    quantile (few jobs finish before it).
    """

    expected: float
    spread: float
    samples: int
    low: float


def job_key(provider: str, request: NegotiatedRequest) -> Key:
    return (
        provider,
        request.model,
        request.duration,
        request.width,
        request.height,
        request.fps,
    )


def _work(key: Key) -> float:
    return key[2] * key[3] * key[4] * max(key[5], 1) / 1e9


def _quantile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


class DurationModel:
    """Recent provider times per job class, with a fit across sizes for unseen classes."""

    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self._samples: dict[Key, deque[float]] = {}
        self._by_model: dict[tuple[str, str | None], deque[tuple[float, float]]] = {}
        self._cache: dict[Key, Estimate] = {}
        self._fits: dict[tuple[str, str | None], tuple[float, float] | None] = {}
        self._first: dict[tuple[Key, str], float] = {}

    def first_poll(self, key: Key, kind: str, default: float) -> float:
        """Seconds after submission for a first poll of `kind` ("probe" or "plain").

        A class without its own value starts from its siblings (same provider and model,
        other sizes), else from `default` (the prior)."""
        value = self._first.get((key, kind))
        if value is not None:
            return value
        siblings = sorted(
            v for (k, kd), v in self._first.items() if kd == kind and k[:2] == key[:2]
        )
        return _quantile(siblings, 0.5) if len(siblings) >= 2 else default

    def observe_first(self, key: Key, kind: str, at: float, outcome: str) -> float:
        """Move the class's first-poll time `x` after a first poll at `at` seconds.

        `outcome`: "done" (too late: move earlier), "waiting" (not done and nothing learnt,
        e.g. still queued: move later noticeably), "informed" (running with progress/ETA,
        the aim of a probe: move later a little). For probes this settles `x` where about
        `probe_quantile` of jobs are already done; for plain first polls, where
        `first_poll_quantile` are (a stochastic quantile estimate, which needs only what a
        first poll tells). An answer counts only if it says something about `x` ("done" at
        or before `x`, "not done" at or after it), so a burst of answers to polls planned
        with an older `x` moves it once. Without a measured sample yet, "done" halves `x`
        (a fast search from a poor prior). Returns the new value."""
        s = self.settings
        tau = s.probe_quantile if kind == "probe" else s.first_poll_quantile
        current = self.first_poll(key, kind, at)
        if outcome == "done" and at <= current * 1.02:
            hit = 0.5 if not self.has_samples(key) else math.exp(-s.quantile_step * (1 - tau))
            current *= hit
        elif outcome != "done" and at >= current * 0.98:
            grow = 0.5 if outcome == "waiting" and kind == "probe" else tau
            current *= math.exp(s.quantile_step * grow)
        value = min(max(current, s.min_poll_interval_seconds), 7 * 86_400.0)
        self._first[(key, kind)] = value
        return value

    def add(self, key: Key, seconds: float) -> None:
        if seconds <= 0 or not math.isfinite(seconds):
            return
        size = self.settings.history_size
        self._samples.setdefault(key, deque(maxlen=size)).append(seconds)
        self._by_model.setdefault(key[:2], deque(maxlen=max(size * 4, 200))).append(
            (_work(key), seconds)
        )
        self._cache = {k: v for k, v in self._cache.items() if k[:2] != key[:2]}
        self._fits.pop(key[:2], None)

    def has_samples(self, key: Key) -> bool:
        return bool(self._samples.get(key))

    def estimate(self, key: Key, prior: float) -> Estimate:
        cached = self._cache.get(key)
        if cached is not None and cached.samples > 0:
            return cached
        samples = self._samples.get(key)
        if samples:
            values = sorted(samples)
            median = _quantile(values, 0.5)
            if len(values) >= 4:
                spread = (_quantile(values, 0.84) - _quantile(values, 0.16)) / 2
            else:
                spread = max((values[-1] - values[0]) / 2, 0.05 * median)
            q = self.settings.probe_quantile
            low = _quantile(values, q) if len(values) >= 20 else 0.9 * values[0]
            est = Estimate(median, max(spread, 0.25), len(values), low)
            self._cache[key] = est
            return est
        fitted = self._fit(key)
        base = fitted if fitted is not None else prior
        spread = max(0.5, base * self.settings.prior_spread_fraction)
        return Estimate(base, spread, 0, base * self.settings.cold_low_fraction)

    def _fit(self, key: Key) -> float | None:
        """Least squares `seconds = a + b * work` over the provider/model's recent jobs."""
        group = key[:2]
        if group not in self._fits:
            self._fits[group] = self._solve(self._by_model.get(group, ()))
        coef = self._fits[group]
        if coef is None:
            return None
        return max(1.0, coef[0] + coef[1] * _work(key))

    @staticmethod
    def _solve(points: Iterable[tuple[float, float]]) -> tuple[float, float] | None:
        pts = list(points)
        if len(pts) < 10 or len({round(x, 9) for x, _ in pts}) < 3:
            return None
        n = len(pts)
        mean_x = sum(x for x, _ in pts) / n
        mean_y = sum(y for _, y in pts) / n
        var = sum((x - mean_x) ** 2 for x, _ in pts)
        if var <= 0:
            return None
        slope = sum((x - mean_x) * (y - mean_y) for x, y in pts) / var
        if slope < 0:
            return (mean_y, 0.0)
        return (mean_y - slope * mean_x, slope)


def first_poll_after(est: Estimate, settings: TrackerSettings, *, probe: bool = False) -> float:
    """Seconds after submission for the first status call.

    `probe`: the provider reports progress or an ETA, so one early answer pins the finish;
    poll at the early quantile instead of the median.
    """
    if probe:
        return max(settings.min_poll_interval_seconds, est.low)
    return max(
        settings.min_poll_interval_seconds, est.expected + settings.first_poll_lead * est.spread
    )


def next_poll_delay(
    elapsed: float, est: Estimate, settings: TrackerSettings, *, probe: bool = False
) -> float:
    """Seconds until the next status call after one at `elapsed` said "not done yet"
    (and gave no usable ETA, e.g. still queued)."""
    low, high = settings.min_poll_interval_seconds, settings.max_poll_interval_seconds
    start = first_poll_after(est, settings)
    if elapsed < start - low:
        if probe:  # probing for progress: look again a bit later, geometrically
            return min(high, max(low, min(start - elapsed, 0.5 * elapsed)))
        return min(high, start - elapsed)  # early: wait for the expected window
    gap = max(low, est.spread * settings.window_gap_factor)
    overdue = elapsed - est.expected
    if overdue > 3 * est.spread:
        gap = max(gap, settings.overdue_backoff * overdue)
    return min(high, gap)


def backoff_delay(errors: int, settings: TrackerSettings) -> float:
    """Exponential backoff with jitter (half fixed, half random)."""
    raw = min(
        settings.error_backoff_max_seconds,
        settings.error_backoff_base_seconds * 2.0 ** max(errors - 1, 0),
    )
    return raw / 2 + random.uniform(0, raw / 2)  # noqa: S311 - jitter, not crypto


# ----- rate budget and fair queue -----------------------------------------------------------


class TokenBucket:
    """A token bucket on the loop clock; `factor` scales the rate (lowered after 429s)."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.base_rate = rate
        self.factor = 1.0
        self.capacity = max(1.0, capacity)
        self.tokens = self.capacity
        self.stamp = now

    @property
    def rate(self) -> float:
        return self.base_rate * self.factor

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def available(self, now: float) -> float:
        self._refill(now)
        return self.tokens

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until one token is available."""
        self._refill(now)
        if self.tokens >= 1:
            return 0.0
        return (1 - self.tokens) / self.rate + max(0.0, self.stamp - now)

    def borrow(self, now: float) -> float:
        """Take a token now, going into debt; returns how long the caller should wait."""
        self._refill(now)
        self.tokens -= 1
        return max(0.0, self.stamp - now) + max(0.0, -self.tokens / self.rate)

    def empty_until(self, when: float) -> None:
        self.tokens = min(self.tokens, 0.0)
        self.stamp = max(self.stamp, when)


Member = tuple[int | None, int]


class FairQueue:
    """Pending jobs per member, served round-robin across members."""

    def __init__(self) -> None:
        self._members: OrderedDict[Member, deque[int]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, job_id: object) -> bool:
        return any(job_id in q for q in self._members.values())

    def push(self, member: Member, job_id: int, *, front: bool = False) -> None:
        queue = self._members.get(member)
        if queue is None:
            queue = self._members[member] = deque()
        if front:
            queue.appendleft(job_id)
            self._members.move_to_end(member, last=False)
        else:
            queue.append(job_id)
        self._size += 1

    def pop(self) -> int:
        member, queue = next(iter(self._members.items()))
        job_id = queue.popleft()
        if queue:
            self._members.move_to_end(member)
        else:
            del self._members[member]
        self._size -= 1
        return job_id

    def remove(self, member: Member, job_id: int) -> bool:
        queue = self._members.get(member)
        if queue is None or job_id not in queue:
            return False
        queue.remove(job_id)
        if not queue:
            del self._members[member]
        self._size -= 1
        return True

    def positions(self) -> dict[int, int]:
        """1-based serving order of every queued job."""
        out: dict[int, int] = {}
        queues = list(self._members.values())
        depth = 0
        place = 0
        while queues:
            still: list[deque[int]] = []
            for queue in queues:
                if depth < len(queue):
                    place += 1
                    out[queue[depth]] = place
                    if depth + 1 < len(queue):
                        still.append(queue)
            queues = still
            depth += 1
        return out

    def position(self, member: Member, job_id: int) -> int | None:
        queue = self._members.get(member)
        if queue is None or job_id not in queue:
            return None
        depth = queue.index(job_id)
        place = 0
        before = True
        for other, q in self._members.items():
            if other == member:
                before = False
                place += depth
                continue
            place += min(len(q), depth + 1 if before else depth)
        return place + 1


# ----- per-job and per-provider state --------------------------------------------------------

_SUBMIT, _POLL, _DOWNLOAD, _DELIVER, _EXPIRE = "submit", "poll", "download", "deliver", "expire"


@dataclass(eq=False)
class _Entry:
    job: JobRecord
    key: Key
    est: Estimate
    seq: int = 0
    where: str = ""  # "heap" | "queue" | "ready" | "" (busy or nowhere)
    busy: bool = False
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
    progress_at: float = -math.inf
    reported_position: int | None = None
    retry_front: bool = False
    later: float | None = None  # due time chosen while a work item runs (pushed when it ends)

    @property
    def id(self) -> int:
        return self.job.id


@dataclass(eq=False)
class _ProviderState:
    name: str
    provider: Provider
    bucket: TokenBucket
    submit_bucket: TokenBucket | None
    pace: TokenBucket  # submissions at budget / calls-per-job: take on only what we can watch
    slots: int
    queue: FairQueue = field(default_factory=FairQueue)
    ready_polls: dict[int, _Entry] = field(default_factory=dict)
    ready_downloads: deque[_Entry] = field(default_factory=deque)
    occupying: set[int] = field(default_factory=set)
    inflight: int = 0
    paused_until: float = 0.0
    error_streak: int = 0
    limited_streak: int = 0
    probing: bool = False  # after an outage pause: one call at a time until one succeeds
    # Whether the provider answers with progress/ETA ("unknown" until a running answer).
    calls_per_job: float = 4.0  # running average of provider calls per finished job
    progress_mode: str = "unknown"
    submit_credit: float = 0.0  # earned while polls take the budget from waiting submissions
    quiet_answers: int = 0  # "queued" answers without progress while unknown

    def has_work(self) -> bool:
        return bool(self.ready_polls or self.ready_downloads or self.queue)

    def can_submit(self, now: float) -> bool:
        if not self.queue or len(self.occupying) >= self.slots:
            return False
        if self.pace.available(now) < 1:
            return False
        return self.submit_bucket is None or self.submit_bucket.available(now) >= 1

    def submit_wait(self, now: float) -> float:
        wait = self.pace.wait(now)
        if self.submit_bucket is not None:
            wait = max(wait, self.submit_bucket.wait(now))
        return wait


class _Stop(Exception):
    """Internal: the job left the tracker while a call was in flight."""


class JobTracker:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        providers: Mapping[str, Provider],
        *,
        data_dir: Path,
        sink: DeliverySink,
        settings: TrackerSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.providers = providers
        self.data_dir = data_dir
        self.clips_dir = data_dir / "clips"
        self.sink = sink
        self.settings = settings or TrackerSettings()
        self.clock = clock
        self.model = DurationModel(self.settings)
        self._entries: dict[int, _Entry] = {}
        self._polling: dict[Key, set[int]] = {}  # submitted/running jobs per class
        self._states: dict[str, _ProviderState] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._ready_deliveries: deque[_Entry] = deque()
        self._delivering = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False
        self._next_wake = math.inf
        self._next_sweep = 0.0
        self._notifier: asyncio.Task[Any] | None = None
        self.stats: dict[str, int] = {"submit": 0, "poll": 0, "download": 0, "cancel": 0}

    # ----- public API ------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every unfinished job from the database and start the dispatcher."""
        if self._started:
            return
        self._started = True
        self._stopping = False
        self._next_sweep = 0.0
        loop = asyncio.get_running_loop()
        now = loop.time()
        for name, provider in self.providers.items():  # before any await: enqueue() may run
            self._states[name] = self._make_state(name, provider, now)
        for name in self.providers:
            for sample in await store.recent_durations(self.db, name):
                key = (name, sample.model, sample.duration, sample.width, sample.height, sample.fps)
                self.model.add(key, sample.seconds)
        active = await store.list_active(self.db)
        await asyncio.to_thread(self._clean_clips, {j.id for j in active})
        for job in active:
            try:
                await self._recover(job)
            except Exception:
                log.exception("job %s: could not be resumed; will retry", job.id)
        self._dispatcher = create_task(self._run(), name="job-tracker-dispatcher")
        log.info("job tracker started with %d unfinished job(s)", len(active))

    async def stop(self) -> None:
        """Stop taking work, give in-flight calls the grace period, leave the rest resumable."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                log.info(
                    "stopping: %d call(s) interrupted; their jobs resume on start", len(pending)
                )
                await asyncio.gather(*pending, return_exceptions=True)
        self._started = False
        self._entries.clear()
        self._states.clear()
        self._heap.clear()
        self._ready_deliveries.clear()

    async def enqueue(self, job_id: int) -> None:
        """Take a freshly admitted job (row already written by `insert_job`)."""
        if not self._started or self._stopping or job_id in self._entries:
            return  # start() picks it up from the table
        job = await store.get_job(self.db, job_id)
        if job is None or job.status is not Status.PENDING:
            log.warning("enqueue(%s): no pending job with that id", job_id)
            return
        if job_id in self._entries:
            return
        await self._recover(job)
        self._wake.set()

    async def cancel(self, job_id: int, *, by: int | None, reason: str) -> bool:
        """Cancel a job unless it is already finished or being posted; refunds its quota."""
        now = self.clock()
        async with self.db.transaction() as conn:
            job = await store.get_job(conn, job_id)
            if job is None or Status.CANCELLED not in store.TRANSITIONS[job.status]:
                return False
            note = reason if by is None else f"{reason} (by {by})"
            await store.transition(
                conn, job_id, Status.CANCELLED, reason=note, now=now, failure_reason=reason
            )
            await quota.refund(conn, job_id, reason=note, now=now)
            job = await store.get_job(conn, job_id)
        assert job is not None
        entry = self._entries.get(job_id)
        if entry is not None:
            entry.cancelled = True
            self._drop(entry)
        await asyncio.to_thread(self._remove_files, job)
        pjob = job.provider_job
        if pjob is not None:
            self._spawn_aux(self._cancel_remote(pjob), f"job-{job_id}-cancel")
        await self._notify("job_ended", job, "cancelled", reason)
        self._wake.set()
        return True

    def queue_position(self, job_id: int) -> int | None:
        """1-based place among the provider's pending jobs (None when not waiting)."""
        entry = self._entries.get(job_id)
        if entry is None or entry.job.status is not Status.PENDING or entry.busy:
            return None  # unknown, or already with the provider (or being sent there)
        state = self._states.get(entry.job.provider)
        if state is None:
            return None
        position = state.queue.position(entry.job.member, job_id)
        return 1 if position is None else position

    # ----- recovery ----------------------------------------------------------------------

    def _make_state(self, name: str, provider: Provider, now: float) -> _ProviderState:
        limits = provider.limits
        s = self.settings
        rate = s.requests_per_second.get(name, limits.requests_per_minute / 60)
        submits = s.submits_per_second.get(name, getattr(limits, "submits_per_minute", 0) / 60)
        return _ProviderState(
            name=name,
            provider=provider,
            bucket=TokenBucket(rate, rate * s.burst_seconds, now),
            submit_bucket=TokenBucket(submits, submits * s.burst_seconds, now)
            if submits > 0
            else None,
            # a long-run limit: it may bank a couple of seconds' worth
            pace=TokenBucket(
                rate / s.expected_calls_per_job,
                max(2.0, 2 * rate / s.expected_calls_per_job),
                now,
            ),
            calls_per_job=s.expected_calls_per_job,
            slots=s.max_concurrency.get(name, limits.max_concurrency),
        )

    def _prior(self, provider: Provider, request: NegotiatedRequest) -> float:
        hint = getattr(provider, "expected_seconds", None)
        if callable(hint):
            try:
                value = float(hint(request))
                if value > 0:
                    return value
            except Exception:
                log.debug("expected_seconds hint failed", exc_info=True)
        delay = getattr(provider, "delay_seconds", None)
        if isinstance(delay, int | float) and delay > 0:
            return float(delay)
        s = self.settings
        return s.prior_base_seconds + s.prior_seconds_per_video_second * request.duration

    def _estimate(self, entry: _Entry) -> Estimate:
        provider = self.providers[entry.job.provider]
        return self.model.estimate(entry.key, self._prior(provider, entry.job.request))

    async def _recover(self, job: JobRecord) -> None:
        """Put one unfinished job back on the schedule according to its status."""
        if job.id in self._entries:  # enqueue() and start() can race for a new job
            return
        loop = asyncio.get_running_loop()
        state = self._states.get(job.provider)
        if state is None:
            await self._end(
                None,
                job,
                Status.FAILED,
                reason=f"provider {job.provider} is not configured",
                member=f"the video service `{job.provider}` is no longer configured here",
            )
            return
        key = job_key(job.provider, job.request)
        entry = _Entry(job=job, key=key, est=Estimate(1.0, 1.0, 0, 1.0))
        entry.est = self._estimate(entry)
        self._entries[job.id] = entry
        if job.status is Status.PENDING:
            if job.attempts > 0:
                log.warning(
                    "job %s: resubmitting after a restart; it had %d earlier submission "
                    "attempt(s), so the provider may run it twice",
                    job.id,
                    job.attempts,
                )
            state.queue.push(job.member, job.id)
            entry.where = "queue"
            entry.reported_position = state.queue.position(job.member, job.id)
            return
        if job.input_dir is not None:
            await self._discard_inputs(job)
        if job.status is Status.DELIVERING and job.result_message_id is not None:
            self._entries.pop(job.id, None)
            await self._mark_delivered(None, job)
            return
        if job.status in (Status.SUBMITTED, Status.RUNNING):
            state.occupying.add(job.id)
            self._polling.setdefault(key, set()).add(job.id)
            submitted = job.submitted_at or job.created_at
            entry.submitted_mono = loop.time() - (self.clock() - submitted).total_seconds()
            self._schedule_at(entry, self._plan_due(entry))
            return
        self._schedule_at(entry, loop.time())  # downloading / delivering: now

    def _clean_clips(self, active_ids: set[int]) -> None:
        """Remove partial downloads and clips of jobs that are no longer active."""
        if not self.clips_dir.is_dir():
            return
        for path in self.clips_dir.iterdir():
            stem = path.name.split(".", 1)[0]
            if path.name.endswith(".part") or not stem.isdigit() or int(stem) not in active_ids:
                path.unlink(missing_ok=True)

    # ----- scheduling -----------------------------------------------------------------------

    def _plan_due(self, entry: _Entry) -> float:
        """Loop time of the next status call, from the ETA or the current estimate."""
        s = self.settings
        last = entry.last_poll_mono
        if entry.eta_at is not None and last is not None:
            remaining = max(0.0, entry.eta_at - last)
            due = entry.eta_at + s.eta_margin_seconds + s.eta_margin_fraction * remaining
            # An ETA that keeps missing is not trusted with short gaps.
            if entry.eta_misses <= 1:
                gap = 0.25 * s.min_poll_interval_seconds
            else:
                gap = s.min_poll_interval_seconds * 2.0 ** (entry.eta_misses - 2)
            gap = min(gap, s.max_poll_interval_seconds)
            return min(max(due, last + gap), last + s.max_eta_wait_seconds)
        state = self._states.get(entry.job.provider)
        probe = state is not None and state.progress_mode != "no"
        if last is None or entry.last_poll_elapsed is None:
            kind = "probe" if probe else "plain"
            default = first_poll_after(entry.est, s, probe=probe)
            offset = max(
                s.min_poll_interval_seconds, self.model.first_poll(entry.key, kind, default)
            )
            entry.first_poll = (kind, offset)
            return entry.submitted_mono + offset
        return last + next_poll_delay(entry.last_poll_elapsed, entry.est, s, probe=probe)

    def _schedule_at(self, entry: _Entry, due: float) -> None:
        if entry.busy:  # its work item is still running: pushed when it ends
            entry.later = due
            return
        entry.seq += 1
        entry.where = "heap"
        heapq.heappush(self._heap, (due, entry.seq, entry.id))
        if due < self._next_wake:
            self._wake.set()

    def _schedule_in(self, entry: _Entry, delay: float) -> None:
        self._schedule_at(entry, asyncio.get_running_loop().time() + max(0.0, delay))

    def _drop(self, entry: _Entry) -> None:
        """Forget a job (finished or cancelled)."""
        self._entries.pop(entry.id, None)
        self._polling.get(entry.key, set()).discard(entry.id)
        state = self._states.get(entry.job.provider)
        if state is not None:
            state.occupying.discard(entry.id)
        self._detach(entry)

    def _detach(self, entry: _Entry) -> None:
        """Take a job off the heap, the queue and the ready lists (it stays known)."""
        state = self._states.get(entry.job.provider)
        entry.seq += 1  # invalidates its heap item
        if state is not None:
            if entry.where == "queue":
                state.queue.remove(entry.job.member, entry.id)
            state.ready_polls.pop(entry.id, None)
            if entry in state.ready_downloads:
                state.ready_downloads.remove(entry)
        if entry in self._ready_deliveries:
            self._ready_deliveries.remove(entry)
        entry.where = ""

    def _make_ready(self, entry: _Entry) -> None:
        state = self._states[entry.job.provider]
        status = entry.job.status
        if status is Status.PENDING:
            state.queue.push(entry.job.member, entry.id, front=entry.retry_front)
            entry.where = "queue"
        elif status in (Status.SUBMITTED, Status.RUNNING):
            state.ready_polls[entry.id] = entry
            entry.where = "ready"
        elif status is Status.DOWNLOADING:
            state.ready_downloads.append(entry)
            entry.where = "ready"
        elif status is Status.DELIVERING:
            self._ready_deliveries.append(entry)
            entry.where = "ready"

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            now = loop.time()
            try:
                wake_at = self._dispatch(now)
            except Exception:
                log.exception("job tracker dispatcher error")
                wake_at = now + 1.0
            self._next_wake = wake_at
            delay = wake_at - loop.time()
            if delay <= 0:
                await asyncio.sleep(0)
                continue
            try:
                async with asyncio.timeout(delay if math.isfinite(delay) else None):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _dispatch(self, now: float) -> float:
        """Start all work that is due and within budget; returns when to look again."""
        while self._heap and self._heap[0][0] <= now:
            _, seq, job_id = heapq.heappop(self._heap)
            entry = self._entries.get(job_id)
            if entry is None or entry.seq != seq or entry.where != "heap":
                continue
            self._make_ready(entry)
        if now >= self._next_sweep:
            self._next_sweep = now + self.settings.sweep_interval_seconds
            self._sweep()
        wake = self._next_sweep
        if self._heap:
            wake = min(wake, self._heap[0][0])
        for state in self._states.values():
            wake = min(wake, self._dispatch_provider(state, now))
        while self._ready_deliveries and self._delivering < self.settings.max_parallel_deliveries:
            entry = self._ready_deliveries.popleft()
            self._delivering += 1
            self._spawn(entry, _DELIVER, None)
        return wake

    def _score(self, entry: _Entry, now: float) -> float:
        expected = entry.est.expected
        if entry.eta_at is not None:
            expected = max(1.0, entry.eta_at - entry.submitted_mono)
        return (now - entry.submitted_mono) / max(expected, 1.0)

    def _dispatch_provider(self, state: _ProviderState, now: float) -> float:
        if not state.has_work():
            return math.inf
        if state.paused_until > now:
            return state.paused_until
        limit = 1 if state.probing else self.settings.max_parallel_requests
        state.pace.factor = state.bucket.factor
        wake = math.inf
        order: list[_Entry] = []
        index = 0
        if state.ready_polls:
            room = min(
                self.settings.max_parallel_requests - state.inflight,
                int(state.bucket.available(now)),
            )
            if room > 0:
                polls = list(state.ready_polls.values())
                if len(polls) > room:
                    order = heapq.nlargest(room, polls, key=lambda e: self._score(e, now))
                else:
                    order = sorted(polls, key=lambda e: self._score(e, now), reverse=True)
        while state.inflight < limit:
            submit_ok = state.can_submit(now)
            if not (state.ready_downloads or state.ready_polls or submit_ok):
                if state.queue and len(state.occupying) < state.slots:
                    wake = min(wake, now + state.submit_wait(now))
                break
            if not state.bucket.take(now):
                wake = min(wake, now + state.bucket.wait(now))
                break
            if state.ready_downloads:
                entry = state.ready_downloads.popleft()
                self._spawn(entry, _DOWNLOAD, state)
                continue
            while index < len(order) and order[index].id not in state.ready_polls:
                index += 1
            best = order[index] if index < len(order) else None
            if best is None and state.ready_polls:
                best = max(state.ready_polls.values(), key=lambda e: self._score(e, now))
            # Due polls go before new submissions (a job already running must not wait for
            # one that is not), but submissions keep a minimum share of the budget.
            if best is not None and not (submit_ok and state.submit_credit >= 1):
                del state.ready_polls[best.id]
                index += 1
                if submit_ok:
                    state.submit_credit += self.settings.min_submit_share
                self._spawn(best, _POLL, state)
                continue
            state.submit_credit = max(0.0, state.submit_credit - 1)
            job_id = state.queue.pop()
            entry_or_none = self._entries.get(job_id)
            if entry_or_none is None:
                state.bucket.tokens += 1  # stale queue item: give the token back
                continue
            if state.submit_bucket is not None:
                state.submit_bucket.take(now)
            state.pace.take(now)
            state.occupying.add(job_id)
            self._spawn(entry_or_none, _SUBMIT, state)
        return wake

    def _spawn(self, entry: _Entry, kind: str, state: _ProviderState | None) -> None:
        entry.busy = True
        entry.where = ""
        if state is not None:
            state.inflight += 1
            entry.calls += 1
            self.stats[kind] = self.stats.get(kind, 0) + 1
        task = create_task(self._work(entry, kind, state), name=f"job-{entry.id}-{kind}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _spawn_aux(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not self._stopping:
            self._wake.set()

    def _sweep(self) -> None:
        """Expire overdue jobs and report changed queue positions."""
        now = self.clock()
        for entry in list(self._entries.values()):
            if entry.busy or entry.job.status is Status.DELIVERING:
                continue
            if now >= self._deadline(entry.job):
                self._detach(entry)
                self._spawn(entry, _EXPIRE, None)
        if self._notifier is None or self._notifier.done():
            changes: list[tuple[JobRecord, int]] = []
            for state in self._states.values():
                if not state.queue:
                    continue
                for job_id, position in state.queue.positions().items():
                    queued = self._entries.get(job_id)
                    if queued is None:
                        continue
                    old = queued.reported_position
                    if old is None:
                        queued.reported_position = position
                    elif old != position and (position <= 10 or abs(old - position) >= old / 10):
                        changes.append((queued.job, position))  # a real move, not churn
                        queued.reported_position = position
            if changes:
                self._notifier = self._spawn_aux(self._notify_positions(changes), "queue-positions")

    async def _notify_positions(self, changes: list[tuple[JobRecord, int]]) -> None:
        for job, position in changes:
            if job.id in self._entries and self._entries[job.id].job.status is Status.PENDING:
                await self._notify("job_queued", job, position)

    def _deadline(self, job: JobRecord) -> datetime:
        provider = self.providers.get(job.provider)
        expiry = provider.limits.job_expiry if provider is not None else None
        if expiry is None:
            expiry = timedelta(seconds=self.settings.max_job_age_seconds)
        return job.created_at + expiry

    # ----- work items ---------------------------------------------------------------------

    async def _work(self, entry: _Entry, kind: str, state: _ProviderState | None) -> None:
        released = False

        def release() -> None:
            nonlocal released
            if state is not None and not released:
                released = True
                state.inflight -= 1
                self._wake.set()

        try:
            if kind == _SUBMIT:
                assert state is not None
                await self._submit(entry, state, release)
            elif kind == _POLL:
                assert state is not None
                await self._poll(entry, state, release)
            elif kind == _DOWNLOAD:
                assert state is not None
                await self._download(entry, state, release)
            elif kind == _EXPIRE:
                await self._expire(entry)
            else:
                await self._deliver(entry)
            entry.internal_errors = 0
        except asyncio.CancelledError:
            raise
        except _Stop:
            pass
        except Exception:
            entry.internal_errors += 1
            log.exception("job %s: %s step failed unexpectedly", entry.id, kind)
            if entry.internal_errors >= self.settings.max_internal_errors and not entry.cancelled:
                await self._end(
                    entry, entry.job, Status.FAILED, reason="internal errors", member=MSG_INTERNAL
                )
            elif entry.id in self._entries and not entry.cancelled:
                if kind == _SUBMIT and state is not None:
                    state.occupying.discard(entry.id)
                    entry.retry_front = True
                self._schedule_in(entry, backoff_delay(entry.internal_errors, self.settings))
        finally:
            release()
            if kind == _DELIVER:
                self._delivering -= 1
            entry.busy = False
            later, entry.later = entry.later, None
            if entry.id in self._entries and not entry.cancelled and not self._stopping:
                if later is not None:
                    self._schedule_at(entry, later)
                elif entry.where == "":
                    log.error("job %s: %s left it unscheduled; retrying shortly", entry.id, kind)
                    self._schedule_in(entry, 5.0)

    def _check_alive(self, entry: _Entry) -> None:
        if entry.cancelled or self._entries.get(entry.id) is not entry:
            raise _Stop

    async def _expire_if_due(self, entry: _Entry) -> bool:
        if self.clock() < self._deadline(entry.job):
            return False
        await self._expire(entry)
        return True

    async def _expire(self, entry: _Entry) -> None:
        expiry = self._deadline(entry.job) - entry.job.created_at
        hours = expiry.total_seconds() / 3600
        await self._end(
            entry,
            entry.job,
            Status.EXPIRED,
            reason=f"older than {hours:g} h",
            member=f"the video service did not finish it within {hours:g} h",
        )

    def _provider_error(self, state: _ProviderState, entry: _Entry, exc: ProviderError) -> None:
        """A retryable failure: back off this job, and the provider if it keeps failing."""
        loop_now = asyncio.get_running_loop().time()
        if isinstance(exc, RateLimitedError):
            state.limited_streak += 1
            wait = exc.retry_after
            if wait is None or wait <= 0:
                wait = min(self.settings.provider_pause_max_seconds, 2.0**state.limited_streak)
            wait *= random.uniform(1.0, 1.1)  # noqa: S311
            until = loop_now + wait
            if until > state.paused_until:
                log.warning("%s: rate limited; pausing its calls for %.1fs", state.name, wait)
            state.paused_until = max(state.paused_until, until)
            state.bucket.empty_until(state.paused_until)
            state.bucket.factor = max(0.1, state.bucket.factor / 2)
            self._schedule_at(entry, state.paused_until)
            return
        entry.errors += 1
        state.error_streak += 1
        delay = backoff_delay(entry.errors, self.settings)
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            delay = max(delay, float(retry_after))
        if state.error_streak >= 3:
            pause = min(
                self.settings.provider_pause_max_seconds,
                self.settings.error_backoff_base_seconds * 2 ** (state.error_streak - 3),
            ) * random.uniform(0.8, 1.2)  # noqa: S311
            state.paused_until = max(state.paused_until, loop_now + pause)
            state.probing = True
            log.warning(
                "%s: %d failures in a row (%s); pausing its calls for %.1fs",
                state.name,
                state.error_streak,
                exc,
                pause,
            )
        else:
            log.info("job %s: %s; retrying in %.1fs", entry.id, exc, delay)
        self._schedule_in(entry, delay)

    def _provider_ok(self, state: _ProviderState) -> None:
        state.error_streak = 0
        state.probing = False
        state.limited_streak = 0
        if state.bucket.factor < 1.0:
            # Additive increase after the multiplicative decrease of a 429: back to the full
            # budget within ~10 good calls, so a short storm does not leave jobs looking stuck.
            state.bucket.factor = min(1.0, state.bucket.factor + RATE_RECOVERY_STEP)

    async def _submit(
        self, entry: _Entry, state: _ProviderState, release: Callable[[], None]
    ) -> None:
        job = entry.job
        if await self._expire_if_due(entry):
            return
        now = self.clock()
        async with self.db.transaction() as conn:
            await store.update_job(conn, job.id, now=now, attempts=job.attempts + 1)
        entry.job = job = job.model_copy(update={"attempts": job.attempts + 1})
        call_started = asyncio.get_running_loop().time()
        try:
            pjob = await state.provider.submit(job.request)
        except (InvalidRequestError, AuthenticationError, JobFailedError) as exc:
            release()
            await self._end_for_error(entry, exc, stage="submission")
            return
        except ProviderError as exc:
            release()
            state.occupying.discard(job.id)
            if not exc.retryable:
                await self._end_for_error(entry, exc, stage="submission")
                return
            self._check_alive(entry)
            if isinstance(exc, OutcomeUnknownError):
                log.warning(
                    "job %s: no answer to its submission (%s); submitting again, so %s may "
                    "run it twice",
                    job.id,
                    exc,
                    state.name,
                )
                async with self.db.transaction() as conn:
                    await store.add_note(
                        conn,
                        job.id,
                        reason="submission outcome unknown; resubmitting (duplicate possible)",
                        now=self.clock(),
                    )
            entry.retry_front = True
            self._provider_error(state, entry, exc)
            return
        except BaseException:
            state.occupying.discard(job.id)
            raise
        call_ended = asyncio.get_running_loop().time()
        release()
        self._provider_ok(state)
        entry.errors = 0
        if entry.cancelled or self._entries.get(job.id) is not entry:
            await self._abandon_submitted(job, pjob)
            raise _Stop
        now = self.clock()
        fields = _merge_provider_report(job, pjob.adjustments, pjob.cost_usd)
        try:
            async with self.db.transaction() as conn:
                await store.transition(
                    conn,
                    job.id,
                    Status.SUBMITTED,
                    reason=f"accepted by {state.name} as {pjob.job_id}",
                    now=now,
                    provider_job_id=pjob.job_id,
                    provider_data=pjob.data,
                    input_dir=None,
                    **fields,
                )
                fresh = await store.get_job(conn, job.id)
        except InvalidTransitionError:
            await self._abandon_submitted(job, pjob)
            raise _Stop from None
        assert fresh is not None
        entry.job = fresh
        # The provider's clock started while the call was under way: take the middle.
        entry.submitted_mono = (call_started + call_ended) / 2
        entry.retry_front = False
        entry.submitted_here = True
        self._polling.setdefault(entry.key, set()).add(entry.id)
        if job.input_dir is not None:
            await asyncio.to_thread(self._remove_dir, job.input_dir)
        self._schedule_at(entry, self._plan_due(entry))
        await self._notify("job_started", fresh)

    async def _abandon_submitted(self, job: JobRecord, pjob: ProviderJob) -> None:
        """Submission returned after the job was cancelled: cancel it at the provider too."""
        log.info(
            "job %s: accepted as %s after it was cancelled; cancelling there", job.id, pjob.job_id
        )
        try:
            async with self.db.transaction() as conn:
                await store.update_job(
                    conn,
                    job.id,
                    now=self.clock(),
                    provider_job_id=pjob.job_id,
                    provider_data=pjob.data,
                )
        except Exception:
            log.exception("job %s: could not record the late provider id", job.id)
        self._spawn_aux(self._cancel_remote(pjob), f"job-{job.id}-cancel")

    async def _poll(
        self, entry: _Entry, state: _ProviderState, release: Callable[[], None]
    ) -> None:
        job = entry.job
        if await self._expire_if_due(entry):
            return
        pjob = job.provider_job
        assert pjob is not None
        loop = asyncio.get_running_loop()
        try:
            status = await state.provider.status(pjob)
        except (JobNotFoundError, JobFailedError, AuthenticationError, InvalidRequestError) as exc:
            release()
            await self._end_for_error(entry, exc, stage="status")
            return
        except ProviderError as exc:
            release()
            self._check_alive(entry)
            if not exc.retryable:
                await self._end_for_error(entry, exc, stage="status")
                return
            self._provider_error(state, entry, exc)
            return
        release()
        self._provider_ok(state)
        self._check_alive(entry)
        entry.errors = 0
        entry.polls += 1
        mono = loop.time()
        elapsed = mono - entry.submitted_mono
        if entry.polls == 1 and entry.first_poll is not None:
            kind, planned = entry.first_poll
            if elapsed <= 1.5 * planned + 1:  # not a late (restart, backlog) first poll
                if status.state not in (JobState.QUEUED, JobState.RUNNING):
                    outcome = "done"
                elif status.eta_seconds is not None or (
                    status.progress is not None and 0 < status.progress < 1
                ):
                    outcome = "informed"
                else:
                    outcome = "waiting"
                before = self.model.first_poll(entry.key, kind, planned)
                after = self.model.observe_first(entry.key, kind, planned, outcome)
                if abs(after - before) > 0.02 * before:
                    self._replan({entry.key})
        if status.state is JobState.COMPLETED:
            await self._completed(entry, state, status, elapsed)
        elif status.state is JobState.FAILED:
            await self._end(
                entry,
                job,
                Status.FAILED,
                reason="provider reported failure",
                member=status.failure_reason or MSG_PROVIDER_FAILED,
            )
        elif status.state is JobState.CANCELLED:
            await self._end(
                entry,
                job,
                Status.CANCELLED,
                reason="cancelled at the provider",
                member="it was cancelled at the video service",
            )
        elif status.state is JobState.EXPIRED:
            await self._end(
                entry, job, Status.EXPIRED, reason="provider reported expiry", member=MSG_GONE
            )
        else:
            self._read_eta(entry, state, status, mono, elapsed)
            await self._still_running(entry, status, mono, elapsed)

    def _read_eta(
        self, entry: _Entry, state: _ProviderState, status: JobStatus, mono: float, elapsed: float
    ) -> None:
        """Turn a provider's ETA or progress into an expected finish time (or None)."""
        if entry.eta_at is not None and mono >= entry.eta_at:
            entry.eta_misses += 1
        entry.eta_at = None
        progress = status.progress
        informative = status.eta_seconds is not None or (progress is not None and 0 < progress < 1)
        if informative:
            state.progress_mode = "yes"
        elif status.state is JobState.RUNNING and state.progress_mode == "unknown":
            state.progress_mode = "no"
        elif state.progress_mode == "unknown":
            state.quiet_answers += 1
            if state.quiet_answers >= 10:
                state.progress_mode = "no"
        if status.eta_seconds is not None and status.eta_seconds >= 0:
            entry.eta_at = mono + status.eta_seconds
        elif progress is not None and progress >= 1:  # finishing: look again very soon
            entry.eta_at = mono
        elif progress is not None and 0.01 <= progress < 1:
            previous = entry.seen_progress
            if previous is not None and progress > previous[0] and mono > previous[1]:
                rate = (progress - previous[0]) / (mono - previous[1])
                entry.eta_at = mono + (1 - progress) / rate
            else:  # assume progress counted from the submission
                entry.eta_at = mono + elapsed * (1 - progress) / progress
            entry.seen_progress = (progress, mono)

    async def _still_running(
        self, entry: _Entry, status: JobStatus, mono: float, elapsed: float
    ) -> None:
        job = entry.job
        entry.last_poll_mono = mono
        entry.last_poll_elapsed = elapsed
        changed: dict[str, Any] = {}
        if status.state is JobState.RUNNING and job.status is Status.SUBMITTED:
            new_status: Status | None = Status.RUNNING
        else:
            new_status = None
        if status.progress is not None and (
            job.progress is None or abs(status.progress - job.progress) >= 0.01
        ):
            changed["progress"] = status.progress
        due_progress = mono - entry.progress_at >= self.settings.progress_interval_seconds
        if new_status is not None or (changed and due_progress):
            now = self.clock()
            async with self.db.transaction() as conn:
                if new_status is not None:
                    await store.transition(
                        conn, job.id, new_status, reason="provider started it", now=now, **changed
                    )
                else:
                    await store.update_job(conn, job.id, now=now, **changed)
            entry.job = job = job.model_copy(update={"status": new_status or job.status, **changed})
        self._schedule_at(entry, self._plan_due(entry))
        if due_progress:
            entry.progress_at = mono
            eta = status.eta_seconds
            if eta is None:
                eta = max(0.0, entry.est.expected - elapsed)
            await self._notify("job_progress", job, status.progress, eta)

    async def _completed(
        self, entry: _Entry, state: _ProviderState, status: JobStatus, elapsed: float
    ) -> None:
        job = entry.job
        # When did the provider finish? At its ETA if that falls in the window since the
        # last "not yet"; otherwise assume the middle of the window (capped at half the
        # current spread).
        low = entry.last_poll_elapsed
        eta = None if entry.eta_at is None else entry.eta_at - entry.submitted_mono
        window = max(2 * self.settings.min_poll_interval_seconds, 0.2 * elapsed)
        sample: float | None = None
        if eta is not None and low is not None and low < eta <= elapsed:
            sample = eta  # the provider said when
        elif low is not None and elapsed - low <= window:
            sample = (low + elapsed) / 2  # a tight bracket
        # else: only "done by now" (an upper bound), which the first-poll tracker used
        finished_after = max(0.01, sample if sample is not None else elapsed)
        now = self.clock()
        submitted_at = job.submitted_at or now
        fields = _merge_provider_report(job, status.adjustments, None)
        async with self.db.transaction() as conn:
            await store.transition(
                conn,
                job.id,
                Status.DOWNLOADING,
                reason="provider finished",
                now=now,
                progress=1.0,
                provider_done_at=min(now, submitted_at + timedelta(seconds=finished_after)),
                **fields,
            )
            fresh = await store.get_job(conn, job.id)
        assert fresh is not None
        entry.job = fresh
        state.occupying.discard(job.id)
        self._polling.get(entry.key, set()).discard(entry.id)
        if sample is not None:
            self._learn(entry.key, sample)
        self._schedule_in(entry, 0)

    def _learn(self, key: Key, seconds: float) -> None:
        self.model.add(key, seconds)
        # Re-plan the same class, and classes of the same provider/model still estimated
        # from the fit across sizes.
        keys = {key}
        keys.update(
            other
            for other in self._polling
            if other[:2] == key[:2] and not self.model.has_samples(other)
        )
        self._replan(keys)

    def _replan(self, keys: set[Key]) -> None:
        """Re-plan waiting polls of these classes whose next poll time moved noticeably."""
        loop_now = asyncio.get_running_loop().time()
        for key in keys:
            for job_id in self._polling.get(key, ()):
                entry = self._entries.get(job_id)
                if entry is None or entry.where != "heap" or entry.eta_at is not None:
                    continue
                old_due = self._plan_due(entry)
                entry.est = self._estimate(entry)
                due = self._plan_due(entry)
                if abs(due - old_due) >= max(0.05, 0.02 * (due - entry.submitted_mono)):
                    self._schedule_at(entry, max(loop_now, due))

    async def _download(
        self, entry: _Entry, state: _ProviderState, release: Callable[[], None]
    ) -> None:
        job = entry.job
        if await self._expire_if_due(entry):
            return
        pjob = job.provider_job
        assert pjob is not None
        clip = self.clips_dir / f"{job.id}.mp4"
        part = self.clips_dir / f"{job.id}.mp4.part"
        entry.downloads += 1
        try:
            try:
                await asyncio.to_thread(self.clips_dir.mkdir, parents=True, exist_ok=True)
                await state.provider.download(pjob, part)
                size = await asyncio.to_thread(_file_size, part)
                if size <= 0:
                    raise ProviderError("the provider sent an empty clip")
                await asyncio.to_thread(os.replace, part, clip)
            finally:
                release()
                await asyncio.to_thread(part.unlink, missing_ok=True)
        except (ConnectionError, TimeoutError) as exc:  # a provider leaking a network error
            self._check_alive(entry)
            self._provider_error(state, entry, TransientError(f"download: {exc!r}"))
            return
        except OSError as exc:
            self._check_alive(entry)  # (a cancel removes the partial file under our feet)
            log.error("job %s: could not store the clip (%s: %s)", job.id, type(exc).__name__, exc)
            await self._end(
                entry, job, Status.FAILED, reason=f"storing the clip failed: {exc}", member=MSG_DISK
            )
            return
        except (JobNotFoundError, AuthenticationError) as exc:
            await self._end_for_error(entry, exc, stage="download")
            return
        except ProviderError as exc:
            self._check_alive(entry)
            if isinstance(exc, RateLimitedError):
                entry.downloads -= 1  # not an attempt that counts
            elif not exc.retryable or entry.downloads >= self.settings.download_attempts:
                log.warning("job %s: download failed (%s)", job.id, exc)
                await self._end(
                    entry, job, Status.FAILED, reason=f"download failed: {exc}", member=MSG_DOWNLOAD
                )
                return
            self._provider_error(state, entry, exc)
            return
        self._provider_ok(state)
        if entry.cancelled or self._entries.get(job.id) is not entry:
            await asyncio.to_thread(clip.unlink, missing_ok=True)
            raise _Stop
        now = self.clock()
        try:
            async with self.db.transaction() as conn:
                await store.transition(
                    conn,
                    job.id,
                    Status.DELIVERING,
                    reason=f"clip downloaded ({size} bytes)",
                    now=now,
                )
                fresh = await store.get_job(conn, job.id)
        except InvalidTransitionError:
            await asyncio.to_thread(clip.unlink, missing_ok=True)
            raise _Stop from None
        assert fresh is not None
        entry.job = fresh
        self._schedule_in(entry, 0)

    async def _deliver(self, entry: _Entry) -> None:
        job = entry.job
        if job.result_message_id is not None:
            await self._mark_delivered(entry, job)
            return
        clip = self.clips_dir / f"{job.id}.mp4"
        if not await asyncio.to_thread(clip.is_file):
            async with self.db.transaction() as conn:
                await store.transition(
                    conn,
                    job.id,
                    Status.DOWNLOADING,
                    reason="clip file missing; downloading again",
                    now=self.clock(),
                )
                fresh = await store.get_job(conn, job.id)
            assert fresh is not None
            entry.job = fresh
            self._schedule_in(entry, 0)
            return
        entry.deliveries += 1
        try:
            receipt = await self.sink.job_completed(job, clip)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = _permanent_delivery_error(exc)
            if message is not None or entry.deliveries >= self.settings.delivery_attempts:
                log.warning("job %s: posting the clip failed for good: %r", job.id, exc)
                await self._end(
                    entry,
                    job,
                    Status.FAILED,
                    reason=f"delivery failed: {exc!r}",
                    member=message or MSG_POST,
                )
                return
            delay = backoff_delay(entry.deliveries, self.settings)
            log.warning(
                "job %s: posting the clip failed (%r); retrying in %.1fs", job.id, exc, delay
            )
            self._schedule_in(entry, delay)
            return
        if receipt.message_id is not None or receipt.channel_id is not None:
            async with self.db.transaction() as conn:
                await store.record_delivery(
                    conn,
                    job.id,
                    channel_id=receipt.channel_id,
                    message_id=receipt.message_id,
                    now=self.clock(),
                )
            entry.job = job = job.model_copy(
                update={
                    "result_channel_id": receipt.channel_id,
                    "result_message_id": receipt.message_id,
                }
            )
        await self._mark_delivered(entry, job)

    async def _mark_delivered(self, entry: _Entry | None, job: JobRecord) -> None:
        now = self.clock()
        where = f"message {job.result_message_id}" if job.result_message_id else "the sink"
        async with self.db.transaction() as conn:
            await store.transition(
                conn, job.id, Status.DELIVERED, reason=f"posted as {where}", now=now
            )
            await quota.settle(conn, job.id, seconds=job.seconds, cost_usd=job.cost_usd, now=now)
        if entry is not None:
            self._drop(entry)
            state = self._states.get(job.provider)
            if state is not None and entry.submitted_here:  # learn what a job costs
                state.calls_per_job += 0.05 * (entry.calls - state.calls_per_job)
                state.pace.base_rate = state.bucket.base_rate / max(1.5, state.calls_per_job)
        await asyncio.to_thread(self._remove_files, job)

    async def _end_for_error(self, entry: _Entry, exc: ProviderError, *, stage: str) -> None:
        job = entry.job
        if isinstance(exc, AuthenticationError):
            log.error(
                "%s rejected the bot's credentials during %s of job %s (%s); check its API key "
                "and account credit",
                job.provider,
                stage,
                job.id,
                exc,
            )
            await self._end(
                entry,
                job,
                Status.FAILED,
                reason=f"authentication error: {exc}",
                member=MSG_MISCONFIGURED,
            )
        elif isinstance(exc, JobNotFoundError):
            await self._end(
                entry, job, Status.EXPIRED, reason=f"unknown at provider: {exc}", member=MSG_GONE
            )
        else:
            member = exc.message or MSG_PROVIDER_FAILED
            await self._end(
                entry, job, Status.FAILED, reason=f"{stage} failed: {exc}", member=member
            )

    async def _end(
        self,
        entry: _Entry | None,
        job: JobRecord,
        status: Status,
        *,
        reason: str,
        member: str,
    ) -> None:
        """Failed / cancelled / expired: status change and refund in one transaction."""
        now = self.clock()
        try:
            async with self.db.transaction() as conn:
                await store.transition(
                    conn, job.id, status, reason=reason, now=now, failure_reason=member
                )
                await quota.refund(conn, job.id, reason=reason, now=now)
                fresh = await store.get_job(conn, job.id)
        except InvalidTransitionError as exc:
            log.info("job %s: not ended as %s (%s)", job.id, status, exc)
            if entry is not None:
                self._drop(entry)
            return
        # (any other error propagates with the job still tracked, so it is retried)
        if entry is not None:
            self._drop(entry)
        assert fresh is not None
        log.info("job %s %s: %s", job.id, status, reason)
        await asyncio.to_thread(self._remove_files, fresh)
        await self._notify("job_ended", fresh, status.value, member)

    async def _cancel_remote(self, pjob: ProviderJob) -> None:
        state = self._states.get(pjob.provider)
        provider = self.providers.get(pjob.provider)
        if provider is None:
            return
        if state is not None:
            loop = asyncio.get_running_loop()
            wait = state.bucket.borrow(loop.time())
            if wait > 0:
                await asyncio.sleep(wait)
        self.stats["cancel"] = self.stats.get("cancel", 0) + 1
        try:
            done = await provider.cancel(pjob)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: cancelling job %s there failed: %s", pjob.provider, pjob.job_id, exc)
            return
        if not done:
            log.info("%s has no cancel; job %s runs out there", pjob.provider, pjob.job_id)

    async def _notify(self, name: str, job: JobRecord, *args: Any) -> None:
        try:
            await getattr(self.sink, name)(job, *args)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("delivery sink %s failed for job %s", name, job.id, exc_info=True)

    # ----- files ------------------------------------------------------------------------

    async def _discard_inputs(self, job: JobRecord) -> None:
        if job.input_dir is not None:
            await asyncio.to_thread(self._remove_dir, job.input_dir)
            async with self.db.transaction() as conn:
                await store.update_job(conn, job.id, now=self.clock(), input_dir=None)

    def _remove_dir(self, path: Path) -> None:
        """Remove a job's input directory (only ever inside the data directory)."""
        try:
            resolved = path.resolve()
            if not resolved.is_relative_to(self.data_dir.resolve()) or resolved == (
                self.data_dir.resolve()
            ):
                log.warning("not removing input directory %s: outside the data directory", path)
                return
            shutil.rmtree(resolved, ignore_errors=True)
        except OSError:
            log.warning("could not remove %s", path, exc_info=True)

    def _remove_files(self, job: JobRecord) -> None:
        if job.input_dir is not None:
            self._remove_dir(job.input_dir)
        for name in (f"{job.id}.mp4", f"{job.id}.mp4.part"):
            (self.clips_dir / name).unlink(missing_ok=True)


# ----- helpers ------------------------------------------------------------------------------


def _file_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _permanent_delivery_error(exc: Exception) -> str | None:
    """A member-facing message when the sink says posting can never work (MediaError)."""
    if isinstance(exc, MediaError):
        return str(getattr(exc, "message", "")) or MSG_POST
    return None


def _merge_provider_report(
    job: JobRecord, adjustments: list[Adjustment], cost_usd: float | None
) -> dict[str, Any]:
    """Fields to store when the provider reports changes (duration, cost) after negotiation."""
    fields: dict[str, Any] = {}
    known = {(a.field, repr(a.actual)) for a in job.adjustments}
    new = [
        a.model_copy(update={"source": "provider"})
        for a in adjustments
        if (a.field, repr(a.actual)) not in known
    ]
    if new:
        fields["adjustments"] = [*job.adjustments, *new]
    seconds = job.seconds
    for adj in adjustments:
        if adj.field == "duration":
            try:
                reported = float(adj.actual)
            except (TypeError, ValueError, OverflowError):
                reported = math.nan
            if math.isfinite(reported):
                seconds = reported
            else:
                log.debug("job %s: unparsable duration adjustment %r", job.id, adj.actual)
    if seconds > 0 and seconds != job.seconds:
        fields["seconds"] = seconds
    if cost_usd is not None and math.isfinite(cost_usd) and cost_usd >= 0:
        fields["cost_usd"] = cost_usd
    elif "seconds" in fields and job.seconds > 0:
        fields["cost_usd"] = round(job.cost_usd * seconds / job.seconds, 6)
    return fields


def tracker_settings_from(settings: Settings, providers: dict[str, Provider]) -> TrackerSettings:
    """Tracker knobs from Settings; providers keep their published limits unless overridden."""
    rate = settings.provider_requests_per_second
    return TrackerSettings(
        requests_per_second={name: rate for name in providers} if rate else {},
    )
