"""Provider health, in one place: what the tracker saw of each provider, and the rules that
call a provider "failing" (so a new `/video` is not queued behind it, `bot.jobs.failover`).

The tracker feeds one `HealthRecord` per provider (`HealthBoard`) as its calls end: a good
answer, a failed call (network trouble, 5xx: what the circuit breaker counts), a rejected
key (401/403) or an empty account (402), and every call's start and end. `assess()` turns a
record into a `Verdict`; a provider is failing when, recently (`error_memory_seconds`, and
nothing good since):

* its circuit breaker is open (three failed calls in a row, `tracker.budget.failed_call`),
* it rejected the bot's API key, or answered 402 (out of credit) — cleared by the next
  accepted submission,
* or it gave no answer for `no_answer_seconds`: a call in flight that long, or only failed
  calls for that long.

"Recently" matters: while a provider is failing no new work reaches it, so nothing would
ever clear the verdict; after `error_memory_seconds` without new trouble the provider is
tried again (the next job is the probe). The records live in memory: a restart starts every
provider healthy, as it resets the breaker.

`provider_health()` adds what an admin wants beside the verdict (`/videoadmin provider
status`): budget use from the tracker's provider state and the recent submit→result
latency from the jobs table.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count
from typing import TYPE_CHECKING

from bot.db import utcnow
from bot.providers.base import AuthenticationError, InsufficientCreditsError, ProviderError
from bot.store import providers as provider_store

if TYPE_CHECKING:
    from bot.db import Database
    from bot.jobs.tracker.budget import ProviderState

CALL_WINDOW = timedelta(minutes=1)  # budget use: calls started in the last minute
ERROR_MEMORY_SECONDS = 600.0  # how long a problem counts as recent without a new one
LATENCY_SAMPLES = 20  # recent jobs in the latency median
LATENCY_WINDOW = timedelta(days=1)

# Verdict kinds (what `reason` explains).
BREAKER = "breaker"
AUTH = "auth"
CREDITS = "credits"
NO_ANSWER = "no_answer"


@dataclass(frozen=True)
class HealthRules:
    no_answer_seconds: float = 120.0
    error_memory_seconds: float = ERROR_MEMORY_SECONDS


@dataclass(frozen=True)
class Verdict:
    """Failing or not; when failing, why (`reason`, admin- and member-readable, no secret)
    and since when."""

    failing: bool
    kind: str = ""
    reason: str = ""
    since: datetime | None = None


HEALTHY = Verdict(failing=False)


@dataclass
class Problem:
    """A rejection kind (auth, credits): first and latest time in a row, and what was said."""

    first: datetime
    last: datetime
    detail: str


@dataclass
class HealthRecord:
    """What the tracker saw of one provider. Methods take `now` (default: the clock)."""

    name: str
    clock: Callable[[], datetime] = utcnow
    answered_at: datetime | None = None  # latest good answer
    trouble_since: datetime | None = None  # first failed call since the latest good answer
    trouble_at: datetime | None = None  # latest failed call
    trouble: str = ""
    failures: int = 0  # failed calls in a row
    breaker_open: bool = False
    rejections: dict[str, Problem] = field(default_factory=dict)
    pending: dict[int, datetime] = field(default_factory=dict)  # calls in flight
    calls: deque[datetime] = field(default_factory=deque)  # starts within CALL_WINDOW
    _tokens: count[int] = field(default_factory=count)

    def _now(self, now: datetime | None) -> datetime:
        return self.clock() if now is None else now

    def call_started(self, now: datetime | None = None) -> int:
        """A call to the provider begins; give the token to `call_ended`."""
        at = self._now(now)
        token = next(self._tokens)
        self.pending[token] = at
        self.calls.append(at)
        while self.calls and self.calls[0] < at - CALL_WINDOW:
            self.calls.popleft()
        return token

    def call_ended(self, token: int) -> None:
        self.pending.pop(token, None)

    def answered(self, now: datetime | None = None) -> None:
        """A good answer (or a refusal that proves the provider is up): no trouble now."""
        self.answered_at = self._now(now)
        self.trouble_since = None
        self.failures = 0
        self.breaker_open = False
        self.rejections.pop(AUTH, None)  # the key works

    def submitted(self, now: datetime | None = None) -> None:
        """The provider accepted a new job: its key and its account are fine."""
        self.answered(now)
        self.rejections.clear()

    def failed(self, exc: ProviderError, *, opened: bool, now: datetime | None = None) -> None:
        """A failed call (network, 5xx, ...); `opened`: the circuit breaker paused it."""
        at = self._now(now)
        if self.trouble_since is None:
            self.trouble_since = at
        self.trouble_at = at
        self.trouble = exc.message
        self.failures += 1
        self.breaker_open = self.breaker_open or opened

    def rejected(self, exc: ProviderError, now: datetime | None = None) -> None:
        """A final error answer: a rejected key or an empty account is a problem, anything
        else (refused request, failed or unknown job) proves the provider answers."""
        at = self._now(now)
        if isinstance(exc, InsufficientCreditsError):
            kind = CREDITS
        elif isinstance(exc, AuthenticationError):
            kind = AUTH
        else:
            self.answered(at)
            return
        old = self.rejections.get(kind)
        first = old.first if old is not None else at
        self.rejections[kind] = Problem(first=first, last=at, detail=exc.message)

    def calls_in_window(self, now: datetime | None = None) -> int:
        at = self._now(now)
        return sum(1 for t in self.calls if t >= at - CALL_WINDOW)


def assess(record: HealthRecord, rules: HealthRules, now: datetime | None = None) -> Verdict:
    """The rules (see the module docstring), most specific reason first."""
    at = record.clock() if now is None else now
    memory = timedelta(seconds=rules.error_memory_seconds)
    silence = timedelta(seconds=rules.no_answer_seconds)
    credits = record.rejections.get(CREDITS)
    if credits is not None and at - credits.last <= memory:
        return Verdict(
            True, CREDITS, f"its account is out of credit ({credits.detail})", credits.first
        )
    auth = record.rejections.get(AUTH)
    if auth is not None and at - auth.last <= memory:
        return Verdict(True, AUTH, f"it rejected the bot's API key ({auth.detail})", auth.first)
    recent = record.trouble_at is not None and at - record.trouble_at <= memory
    if record.breaker_open and recent:
        reason = (
            f"its circuit breaker is open after {record.failures} failed calls in a row "
            f"(last: {record.trouble})"
        )
        return Verdict(True, BREAKER, reason, record.trouble_since)
    if record.pending:
        oldest = min(record.pending.values())
        if at - oldest >= silence:
            waited = (at - oldest).total_seconds()
            return Verdict(True, NO_ANSWER, f"no answer to a call for {waited:.0f} s", oldest)
    since = record.trouble_since
    if since is not None and recent and at - since >= silence:
        reason = f"no good answer for {(at - since).total_seconds():.0f} s (last: {record.trouble})"
        return Verdict(True, NO_ANSWER, reason, since)
    return HEALTHY


class HealthBoard:
    """Every provider's record (the tracker owns one; it outlives tracker restarts)."""

    def __init__(self, rules: HealthRules, clock: Callable[[], datetime] = utcnow) -> None:
        self.rules = rules
        self.clock = clock
        self._records: dict[str, HealthRecord] = {}
        self._states: dict[str, ProviderState] = {}

    def record(self, name: str) -> HealthRecord:
        found = self._records.get(name)
        if found is None:
            found = self._records[name] = HealthRecord(name, clock=self.clock)
        return found

    def attach(self, state: ProviderState) -> None:
        """The tracker (re)started a provider: its calls feed this provider's record, and
        its budget is what `/videoadmin provider status` shows."""
        state.health = self.record(state.name)
        self._states[state.name] = state

    def state(self, name: str) -> ProviderState | None:
        return self._states.get(name)

    def verdict(self, name: str) -> Verdict:
        return assess(self.record(name), self.rules, self.clock())


# ----- the admin's view ---------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetUse:
    calls_last_minute: int
    calls_per_minute: float  # the budget (lowered after rate limiting)
    slots_used: int
    slots: int
    queued: int
    paused_seconds: float  # calls paused for this long (rate limit or breaker), 0: not


@dataclass(frozen=True)
class ProviderHealth:
    name: str
    verdict: Verdict
    budget: BudgetUse | None  # None: the tracker is not running
    latency_p50: float | None  # seconds, submission → provider finished
    latency_jobs: int


def budget_use(record: HealthRecord, state: ProviderState, loop_now: float) -> BudgetUse:
    return BudgetUse(
        calls_last_minute=record.calls_in_window(),
        calls_per_minute=state.bucket.rate * 60,
        slots_used=len(state.occupying),
        slots=state.slots,
        queued=len(state.queue),
        paused_seconds=max(0.0, state.paused_until - loop_now),
    )


async def recent_latency(db: Database, provider: str, now: datetime) -> tuple[float | None, int]:
    """Median submit → result seconds over the provider's recent jobs, and how many."""
    samples = await provider_store.recent_latencies(
        db, provider, since=now - LATENCY_WINDOW, limit=LATENCY_SAMPLES
    )
    return (statistics.median(samples) if samples else None), len(samples)


async def provider_health(
    db: Database,
    board: HealthBoard,
    name: str,
    state: ProviderState | None,
    loop_now: float,
) -> ProviderHealth:
    record = board.record(name)
    p50, n = await recent_latency(db, name, board.clock())
    return ProviderHealth(
        name=name,
        verdict=board.verdict(name),
        budget=budget_use(record, state, loop_now) if state is not None else None,
        latency_p50=p50,
        latency_jobs=n,
    )
