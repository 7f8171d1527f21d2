"""When to call the provider next: per-class duration model and the polling plan.

Polling adapts per job class (provider, model, duration, width, height, fps):

* providers that report progress or an ETA get an early *probe* poll; one "running, 40 %"
  answer gives the finish time and the next poll lands just after it (`eta_margin_*`). The
  probe time is a per-class stochastic quantile estimate (`probe_quantile`), so few jobs
  finish before it.
* providers without progress get a first poll at the class median (`first_poll_quantile`),
  then polls every `spread`, backing off slowly once a job is long overdue.
* medians/spreads come from measured provider times (the ETA, or a tight bracket between two
  polls; a first poll that finds a job long done is only a bound, never a sample); unseen
  classes use their siblings, a fit across sizes, a provider hint, or
  `prior_base_seconds + prior_seconds_per_video_second * duration`.
* a first poll is never later than `max_poll_interval_seconds` after the submission; the
  measured times, first-poll times and progress modes outlive a restart
  (`bot/store/timing.py`, loaded by `recovery.load_history`).
* while the budget is idle, `idle` polls ahead of this plan; the plan is the fallback.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.jobs.tracker.settings import TrackerSettings
from bot.providers.base import JobState, JobStatus, NegotiatedRequest, Provider
from bot.scheduling import exponential_backoff

if TYPE_CHECKING:
    from bot.jobs.tracker.budget import ProviderState
    from bot.jobs.tracker.entry import Entry

log = logging.getLogger(__name__)

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


def work_size(key: Key) -> float:
    """How much video a class makes (frames x pixels, in 1e9): the x of the fit across sizes."""
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

    def observe_first(
        self, key: Key, kind: str, at: float, outcome: str, default: float | None = None
    ) -> float:
        """Move the class's first-poll time `x` after a first poll at `at` seconds.

        `outcome`: "done" (too late: move earlier), "waiting" (not done and nothing learnt,
        e.g. still queued: move later noticeably), "informed" (running with progress/ETA,
        the aim of a probe: move later a little). For probes this settles `x` where about
        `probe_quantile` of jobs are already done; for plain first polls, where
        `first_poll_quantile` are (a stochastic quantile estimate, which needs only what a
        first poll tells). An answer counts only if it says something about `x` ("done" at
        or before `x`, "not done" at or after it), so a burst of answers to polls planned
        with an older `x` moves it once (and an early poll, before `x`, moves it only when it
        finds the job done). Without a measured sample yet, "done" halves `x` (a fast search
        from a poor prior). `default`: `x` of a class with nothing learnt yet (else `at`).
        Returns the new value."""
        s = self.settings
        tau = s.probe_quantile if kind == "probe" else s.first_poll_quantile
        current = self.first_poll(key, kind, at if default is None else default)
        if outcome == "done" and at <= current * 1.02:
            hit = 0.5 if not self.has_samples(key) else math.exp(-s.quantile_step * (1 - tau))
            current *= hit
        elif outcome != "done" and at >= current * 0.98:
            grow = 0.5 if outcome == "waiting" and kind == "probe" else tau
            current *= math.exp(s.quantile_step * grow)
        value = self.cap_first(current)
        self._first[(key, kind)] = value
        return value

    def cap_first(self, seconds: float) -> float:
        """A first poll lands within the poll-interval bounds: never later than
        `max_poll_interval_seconds` after the submission, whatever was learnt or assumed."""
        s = self.settings
        return min(max(seconds, s.min_poll_interval_seconds), s.max_poll_interval_seconds)

    def load_first(self, key: Key, kind: str, seconds: float) -> None:
        """A first-poll time learnt before a restart (`bot/store/timing.py`)."""
        if math.isfinite(seconds) and seconds > 0:
            self._first[(key, kind)] = self.cap_first(seconds)

    def add(self, key: Key, seconds: float) -> None:
        if seconds <= 0 or not math.isfinite(seconds):
            return
        size = self.settings.history_size
        self._samples.setdefault(key, deque(maxlen=size)).append(seconds)
        self._by_model.setdefault(key[:2], deque(maxlen=max(size * 4, 200))).append(
            (work_size(key), seconds)
        )
        self._cache = {k: v for k, v in self._cache.items() if k[:2] != key[:2]}
        self._fits.pop(key[:2], None)

    def has_first(self, key: Key, kind: str) -> bool:
        return (key, kind) in self._first

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
        return max(1.0, coef[0] + coef[1] * work_size(key))

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
    raw = exponential_backoff(
        errors, settings.error_backoff_base_seconds, settings.error_backoff_max_seconds
    )
    return raw / 2 + random.uniform(0, raw / 2)  # noqa: S311 - jitter, not crypto


def prior_seconds(
    provider: Provider, request: NegotiatedRequest, settings: TrackerSettings
) -> float:
    """Expected provider time before any measurement: the provider's hint, else the prior."""
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
    return settings.prior_base_seconds + settings.prior_seconds_per_video_second * request.duration


def plan_due(
    entry: Entry, model: DurationModel, settings: TrackerSettings, *, probe: bool
) -> float:
    """Loop time of the next status call, from the ETA or the current estimate.

    `probe`: the provider (probably) reports progress or an ETA."""
    s = settings
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
    if last is None or entry.last_poll_elapsed is None:
        kind = "probe" if probe else "plain"
        default = first_poll_after(entry.est, s, probe=probe)
        offset = model.cap_first(model.first_poll(entry.key, kind, default))
        entry.first_poll = (kind, offset)
        return entry.submitted_mono + offset
    return last + next_poll_delay(entry.last_poll_elapsed, entry.est, s, probe=probe)


def first_poll_outcome(status: JobStatus) -> str:
    """What a first poll learnt, for `DurationModel.observe_first`."""
    if status.state not in (JobState.QUEUED, JobState.RUNNING):
        return "done"
    if status.eta_seconds is not None or (status.progress is not None and 0 < status.progress < 1):
        return "informed"
    return "waiting"


def read_eta(
    entry: Entry, state: ProviderState, status: JobStatus, mono: float, elapsed: float
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


def finish_sample(entry: Entry, elapsed: float, settings: TrackerSettings) -> float | None:
    """When did the provider finish (seconds after submission), if a poll pins it down?

    Only a bracketed time is a sample: the provider's ETA when it falls between the last
    "not yet" answer and this "done" one and this poll came soon after it; otherwise the
    middle of a tight bracket. None: only "done by now" (an upper bound, e.g. the first poll
    after a restart or a backlog found the job long done), which the first-poll tracker uses
    and which is never stored as a measured time."""
    low = entry.last_poll_elapsed
    eta = None if entry.eta_at is None else entry.eta_at - entry.submitted_mono
    window = max(2 * settings.min_poll_interval_seconds, 0.2 * elapsed)
    if eta is not None and low is not None and low < eta <= elapsed and elapsed - eta <= window:
        return eta  # the provider said when
    if low is not None and elapsed - low <= window:
        return (low + elapsed) / 2  # a tight bracket
    return None


def score(entry: Entry, now: float) -> float:
    """How likely a due poll finds the job done: elapsed / expected time (or the ETA)."""
    expected = entry.est.expected
    if entry.eta_at is not None:
        expected = max(1.0, entry.eta_at - entry.submitted_mono)
    return (now - entry.submitted_mono) / max(expected, 1.0)
