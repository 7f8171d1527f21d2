"""Request budget per provider, and choosing which due call goes next.

Every submit/status/download/cancel call takes a token from the provider's bucket
(`requests_per_second`, plus `submits_per_second` for submits), and at most
`max_parallel_requests` calls are in flight. When more calls are due than the budget allows,
downloads go first, then due polls, most likely finished first, then new submissions (which
keep at least `min_submit_share` of the calls). Submissions are also *paced* at budget /
calls-per-job (learned): a burst of jobs is taken on only as fast as the budget can watch
them. Pending jobs wait in a per-provider round-robin queue across members for a provider
slot (`max_concurrency`).

While the budget has headroom, a share of its idle part goes to early polls (`idle`).

Errors: `RateLimitedError` pauses the whole provider for `retry_after` and halves its rate
(recovering gradually); after three transient errors in a row the provider is paused
(circuit breaker) and probed with one call at a time.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.jobs.tracker import idle
from bot.jobs.tracker.entry import DOWNLOAD, POLL, SUBMIT, Entry
from bot.jobs.tracker.settings import TrackerSettings
from bot.jobs.tracker.timing import score
from bot.providers.base import Provider, ProviderError, RateLimitedError
from bot.scheduling import exponential_backoff
from bot.store.jobs import JobRecord, Status

if TYPE_CHECKING:
    from bot.jobs.health import HealthRecord

log = logging.getLogger(__name__)

RATE_RECOVERY_STEP = 0.1  # share of the budget regained per successful call after a 429


class TokenBucket:
    """A token bucket on the loop clock; `factor` scales the rate (lowered after 429s), and
    `share` is this process's part of the provider's budget when several processes share it
    (`shares`): rate and bucket size both follow it."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.base_rate = rate
        self.factor = 1.0
        self.share = 1.0
        self.base_capacity = capacity
        self.tokens = self.capacity
        self.stamp = now

    @property
    def rate(self) -> float:
        return self.base_rate * self.factor * self.share

    @property
    def capacity(self) -> float:
        return max(1.0, self.base_capacity * self.share) if self.share > 0 else 0.0

    def set_share(self, share: float, now: float) -> None:
        """This process's part from now on; tokens banked above the new size are dropped."""
        self._refill(now)
        self.share = share
        self.tokens = min(self.tokens, self.capacity)

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
        if self.rate <= 0:
            return math.inf  # no share of the budget yet (`shares`): woken when it comes
        return (1 - self.tokens) / self.rate + max(0.0, self.stamp - now)

    def borrow(self, now: float) -> float:
        """Take a token now, going into debt; returns how long the caller should wait."""
        self._refill(now)
        self.tokens -= 1
        return self.owed(now)

    def owed(self, now: float) -> float:
        """Seconds until the bucket is out of debt (inf while it has no share: `shares`)."""
        self._refill(now)
        if self.tokens >= 0:
            return max(0.0, self.stamp - now)
        if self.rate <= 0:
            return math.inf
        return max(0.0, self.stamp - now) - self.tokens / self.rate

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


@dataclass(eq=False)
class ProviderState:
    """One provider's request budget, slots, fair queue and ready work."""

    name: str
    provider: Provider
    bucket: TokenBucket
    submit_bucket: TokenBucket | None
    pace: TokenBucket  # submissions at budget / calls-per-job: take on only what we can watch
    slots: int
    queue: FairQueue = field(default_factory=FairQueue)
    ready_polls: dict[int, Entry] = field(default_factory=dict)
    ready_downloads: deque[Entry] = field(default_factory=deque)
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
    health: HealthRecord | None = None  # what provider health sees (`bot.jobs.health`)
    # Start times of recent planned calls and early polls (`idle`), and early polls made.
    recent_calls: deque[float] = field(default_factory=deque)
    recent_early: deque[float] = field(default_factory=deque)
    early_polls: int = 0
    # Several processes (`shares`): calls stop when the last re-split of the budget is older.
    share_until: float = math.inf

    def begin_call(self) -> int:
        """A call starts (counted in flight, and seen by provider health): its token."""
        self.inflight += 1
        return self.health.call_started() if self.health is not None else 0

    def end_call(self, token: int) -> None:
        self.inflight -= 1
        if self.health is not None:
            self.health.call_ended(token)

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


def make_provider_state(
    name: str, provider: Provider, settings: TrackerSettings, now: float
) -> ProviderState:
    """A provider's budget from its published limits (or the settings' overrides)."""
    limits = provider.limits
    s = settings
    rate = s.requests_per_second.get(name, limits.requests_per_minute / 60)
    submits = s.submits_per_second.get(name, getattr(limits, "submits_per_minute", 0) / 60)
    return ProviderState(
        name=name,
        provider=provider,
        bucket=TokenBucket(rate, rate * s.burst_seconds, now),
        submit_bucket=TokenBucket(submits, submits * s.burst_seconds, now) if submits > 0 else None,
        # a long-run limit: it may bank a couple of seconds' worth
        pace=TokenBucket(
            rate / s.expected_calls_per_job,
            max(2.0, 2 * rate / s.expected_calls_per_job),
            now,
        ),
        calls_per_job=s.expected_calls_per_job,
        slots=s.max_concurrency.get(name, limits.max_concurrency),
    )


def learn_calls_per_job(state: ProviderState, calls: int) -> None:
    """A job delivered after `calls` provider calls: re-pace submissions."""
    state.calls_per_job += 0.05 * (calls - state.calls_per_job)
    state.pace.base_rate = state.bucket.base_rate / max(1.5, state.calls_per_job)


def rate_limited(
    state: ProviderState, exc: RateLimitedError, settings: TrackerSettings, now: float
) -> float:
    """A 429: pause the provider and halve its rate. Returns when calls may resume."""
    state.limited_streak += 1
    wait = exc.retry_after
    if wait is None or wait <= 0:
        wait = exponential_backoff(
            state.limited_streak + 1, 1.0, settings.provider_pause_max_seconds
        )
    wait *= random.uniform(1.0, 1.1)  # noqa: S311
    until = now + wait
    if until > state.paused_until:
        log.warning("%s: rate limited; pausing its calls for %.1fs", state.name, wait)
    state.paused_until = max(state.paused_until, until)
    state.bucket.empty_until(state.paused_until)
    state.bucket.factor = max(0.1, state.bucket.factor / 2)
    return state.paused_until


def failed_call(
    state: ProviderState, exc: ProviderError, settings: TrackerSettings, now: float
) -> bool:
    """A transient failure: after three in a row, pause the provider and probe it with one
    call at a time (circuit breaker). Returns whether it was paused."""
    state.error_streak += 1
    if state.error_streak < 3:
        return False
    pause = exponential_backoff(
        state.error_streak - 2,
        settings.error_backoff_base_seconds,
        settings.provider_pause_max_seconds,
    ) * random.uniform(0.8, 1.2)  # noqa: S311
    state.paused_until = max(state.paused_until, now + pause)
    state.probing = True
    if state.health is not None:
        state.health.failed(exc, opened=True)
    log.warning(
        "%s: %d failures in a row (%s); pausing its calls for %.1fs",
        state.name,
        state.error_streak,
        exc,
        pause,
    )
    return True


def call_succeeded(state: ProviderState) -> None:
    if state.health is not None:
        state.health.answered()
    state.error_streak = 0
    state.probing = False
    state.limited_streak = 0
    if state.bucket.factor < 1.0:
        # Additive increase after the multiplicative decrease of a 429: back to the full
        # budget within ~10 good calls, so a short storm does not leave jobs looking stuck.
        state.bucket.factor = min(1.0, state.bucket.factor + RATE_RECOVERY_STEP)


Start = Callable[[Entry, str, ProviderState], None]


def dispatch_provider(
    state: ProviderState,
    now: float,
    settings: TrackerSettings,
    entries: dict[int, Entry],
    start: Start,
) -> float:
    """Start the provider's due calls within its budget (`start(entry, kind, state)`);
    returns when to look again."""
    if now > state.share_until:
        return now + 1.0  # this process's part of the budget is out of date (`shares`)
    if not state.has_work():
        return idle.early_polls(state, now, settings, entries, start)
    if state.paused_until > now:
        return state.paused_until
    limit = 1 if state.probing else settings.max_parallel_requests
    state.pace.factor = state.bucket.factor
    wake = math.inf
    order: list[Entry] = []
    index = 0
    if state.ready_polls:
        room = min(
            settings.max_parallel_requests - state.inflight,
            int(state.bucket.available(now)),
        )
        if room > 0:
            polls = list(state.ready_polls.values())
            if len(polls) > room:
                order = heapq.nlargest(room, polls, key=lambda e: score(e, now))
            else:
                order = sorted(polls, key=lambda e: score(e, now), reverse=True)
    while state.inflight < limit:
        submit_ok = state.can_submit(now)
        if not (state.ready_downloads or state.ready_polls or submit_ok):
            if state.queue and len(state.occupying) < state.slots:
                wake = min(wake, now + state.submit_wait(now))
            break
        if not state.bucket.take(now):
            wake = min(wake, now + state.bucket.wait(now))
            break
        idle.note_call(state, now, settings)
        if state.ready_downloads:
            entry = state.ready_downloads.popleft()
            start(entry, DOWNLOAD, state)
            continue
        while index < len(order) and order[index].id not in state.ready_polls:
            index += 1
        best = order[index] if index < len(order) else None
        if best is None and state.ready_polls:
            best = max(state.ready_polls.values(), key=lambda e: score(e, now))
        # Due polls go before new submissions (a job already running must not wait for
        # one that is not), but submissions keep a minimum share of the budget.
        if best is not None and not (submit_ok and state.submit_credit >= 1):
            del state.ready_polls[best.id]
            index += 1
            if submit_ok:
                state.submit_credit += settings.min_submit_share
            start(best, POLL, state)
            continue
        state.submit_credit = max(0.0, state.submit_credit - 1)
        job_id = state.queue.pop()
        entry_or_none = entries.get(job_id)
        if entry_or_none is None:
            state.bucket.tokens += 1  # stale queue item: give the token back
            state.recent_calls.pop()
            continue
        if state.submit_bucket is not None:
            state.submit_bucket.take(now)
        state.pace.take(now)
        state.occupying.add(job_id)
        start(entry_or_none, SUBMIT, state)
    return min(wake, idle.early_polls(state, now, settings, entries, start))


def queue_moves(state: ProviderState, entries: dict[int, Entry]) -> list[tuple[JobRecord, int]]:
    """Queued jobs whose place moved for real since last reported (not churn), with their new
    place; updates `reported_position`."""
    moved: list[tuple[JobRecord, int]] = []
    if not state.queue:
        return moved
    for job_id, position in state.queue.positions().items():
        queued = entries.get(job_id)
        if queued is None:
            continue
        old = queued.reported_position
        if old is None:
            queued.reported_position = position
        elif old != position and (position <= 10 or abs(old - position) >= old / 10):
            moved.append((queued.job, position))
            queued.reported_position = position
    return moved


def queue_position(
    entries: dict[int, Entry], states: dict[str, ProviderState], job_id: int
) -> int | None:
    """1-based place among the provider's pending jobs (None when not waiting)."""
    entry = entries.get(job_id)
    if entry is None or entry.job.status is not Status.PENDING or entry.busy:
        return None  # unknown, or already with the provider (or being sent there)
    state = states.get(entry.job.provider)
    if state is None:
        return None
    position = state.queue.position(entry.job.member, job_id)
    return 1 if position is None else position
