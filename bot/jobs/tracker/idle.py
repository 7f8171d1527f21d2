"""Early polls on idle budget: detection delay stays small however wrong the estimate is.

The polling plan (`timing`) puts each status call where the job is *predicted* to be done;
with a poor prior (a fresh database, a provider that got faster) that is long after the
provider finished. So while a provider's request budget has headroom, a share of the idle
part (`idle_poll_share` of the calls per second the regular work leaves unused) polls the
jobs most likely done before their planned time: provider says "running" first, then by
elapsed time over the estimate (`timing.score`). The plan stays the fallback whenever calls
are contended: there are no early polls while a due poll or download waits, while
submissions are held back for budget, or during an outage pause.

Each job is polled early at most every `max(idle_poll_gap_seconds, GAP_FRACTION * elapsed)`
(so the delay is about that gap, and a long job costs a few calls, not one per second; half
its elapsed time once the provider said it is still queued, not started), never while the
provider's own ETA stands (that answer already times the next poll). For a class with
measured times the plan is no guess: with a provider that reports progress its learnt probe
finds the ETA, so there are no early polls; without progress, none before the class's early
quantile (`Estimate.low`), as the measurements say few jobs finish that soon. An early "not
yet" leaves the planned poll where it was (`steps`), so it never pulls the plan forward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.jobs.tracker.entry import POLL, Entry
from bot.jobs.tracker.settings import TrackerSettings
from bot.jobs.tracker.timing import score
from bot.store.jobs import Status

if TYPE_CHECKING:
    from bot.jobs.tracker.budget import ProviderState

GAP_FRACTION = 0.2  # a job's early polls are at least this share of its elapsed time apart
QUEUED_GAP_FRACTION = 0.5  # ... after the provider said it has not started it yet
WINDOW_CALLS = 5.0  # the usage window spans at least this many calls of the budget
WATCHED = (Status.SUBMITTED, Status.RUNNING)

Start = Callable[[Entry, str, "ProviderState"], None]


def note_call(state: ProviderState, now: float, settings: TrackerSettings) -> None:
    """A regular (planned) provider call started: it uses up budget early polls cannot."""
    state.recent_calls.append(now)
    _forget(state, now, _window(state, settings.idle_poll_share))


def _window(state: ProviderState, share: float) -> float:
    """Seconds of usage looked at: at least one, and enough for one early poll at `share`."""
    calls = max(WINDOW_CALLS, 1.0 / share) if share > 0 else WINDOW_CALLS
    return max(1.0, calls / max(state.bucket.rate, 1e-9))


def _forget(state: ProviderState, now: float, window: float) -> None:
    for times in (state.recent_calls, state.recent_early):
        while times and times[0] <= now - window:
            times.popleft()


def _allowance(state: ProviderState, now: float, share: float) -> tuple[float, float]:
    """(early polls that may start now, when the next one frees up)."""
    window = _window(state, share)
    _forget(state, now, window)
    spare = state.bucket.rate * window - len(state.recent_calls)
    allowed = share * max(0.0, spare) - len(state.recent_early)
    oldest = [times[0] for times in (state.recent_calls, state.recent_early) if times]
    return allowed, (min(oldest) + window if oldest else math.inf)


def _eligible_at(
    entry: Entry, now: float, settings: TrackerSettings, *, informative: bool
) -> float | None:
    """Loop time from which the job may be polled early (None: not a candidate).

    `informative`: the provider reports progress/ETA (or may: not known yet)."""
    if entry.busy or entry.cancelled or entry.where != "heap" or entry.job.status not in WATCHED:
        return None
    if entry.eta_at is not None and entry.eta_misses <= 1:
        return None  # the provider said when: the plan polls just after it
    if informative and entry.est.samples > 0:
        return None  # measured class: its probe is learnt, and the answer gives the ETA
    elapsed = now - entry.submitted_mono
    last = entry.submitted_mono if entry.last_poll_mono is None else entry.last_poll_mono
    queued = entry.last_poll_mono is not None and entry.job.status is Status.SUBMITTED
    gap = max(
        settings.idle_poll_gap_seconds,
        settings.min_poll_interval_seconds,
        (QUEUED_GAP_FRACTION if queued else GAP_FRACTION) * elapsed,
    )
    at = last + gap
    if entry.est.samples > 0:  # measured, not a prior: few jobs are done before `low`
        at = max(at, entry.submitted_mono + entry.est.low)
    return at


def early_polls(
    state: ProviderState,
    now: float,
    settings: TrackerSettings,
    entries: dict[int, Entry],
    start: Start,
) -> float:
    """Start early polls within the idle share of the budget; returns when to look again."""
    share = settings.idle_poll_share
    if share <= 0 or not state.occupying or state.probing or state.paused_until > now:
        return math.inf
    if state.ready_polls or state.ready_downloads:
        return math.inf  # due work first; it is handed out as the budget refills
    if state.queue and len(state.occupying) < state.slots:
        return math.inf  # submissions wait for budget: what is left is theirs
    wake = math.inf
    ready: list[Entry] = []
    informative = state.progress_mode != "no"
    for job_id in state.occupying:
        entry = entries.get(job_id)
        at = None if entry is None else _eligible_at(entry, now, settings, informative=informative)
        if entry is None or at is None:
            continue
        if at <= now:
            ready.append(entry)
        else:
            wake = min(wake, at)
    if not ready:
        return wake
    allowed, frees_at = _allowance(state, now, share)
    ready.sort(key=lambda e: (e.job.status is Status.RUNNING, score(e, now)), reverse=True)
    for entry in ready:
        if allowed < 1:
            return min(wake, frees_at)
        if state.inflight >= settings.max_parallel_requests:
            return wake  # a finished call wakes the dispatcher
        if not state.bucket.take(now):
            return min(wake, now + state.bucket.wait(now))
        entry.seq += 1  # its planned poll is superseded: re-planned from this answer, but
        entry.early_due = entry.due  # a bare "not yet" leaves the plan where it was (steps)
        state.recent_early.append(now)
        state.early_polls += 1
        allowed -= 1
        start(entry, POLL, state)
    return wake
