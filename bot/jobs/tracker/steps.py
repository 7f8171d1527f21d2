"""The provider steps of a job: submit, poll (and what an answer means), download.

Each step is one provider call plus its bookkeeping, run as a short task by the engine; it
writes the job's new state through the store and replaces the entry's row with the one the
store returns. Retryable errors go back to the engine (`provider_error`), which backs off the
job and, when they repeat, the provider.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.jobs.files import file_size
from bot.jobs.tracker import lost
from bot.jobs.tracker.budget import ProviderState, call_succeeded
from bot.jobs.tracker.entry import Entry, Stop
from bot.jobs.tracker.outcomes import (
    MSG_DISK,
    MSG_DOWNLOAD,
    MSG_GONE,
    MSG_PROVIDER_FAILED,
)
from bot.jobs.tracker.timing import Key, finish_sample, first_poll_outcome, read_eta
from bot.providers.base import (
    Adjustment,
    AuthenticationError,
    InvalidRequestError,
    JobFailedError,
    JobNotFoundError,
    JobState,
    JobStatus,
    OutcomeUnknownError,
    ProviderError,
    ProviderJob,
    RateLimitedError,
    SubmissionLookup,
    TransientError,
)
from bot.store import jobs as store
from bot.store import timing as timing_store
from bot.store.jobs import InvalidTransitionError, JobRecord, Status

if TYPE_CHECKING:
    from bot.jobs.tracker.engine import JobTracker

log = logging.getLogger(__name__)

Release = Callable[[], None]  # gives the provider's request slot back (idempotent)


class Steps:
    """Submit, poll and download for one tracker (its db, clock, files and schedule)."""

    def __init__(self, tracker: JobTracker) -> None:
        self.tracker = tracker

    # ----- submit ------------------------------------------------------------------------

    async def submit(self, entry: Entry, state: ProviderState, release: Release) -> None:
        t = self.tracker
        job = entry.job
        if await t.endings.expire_if_due(entry):
            return
        lookup = state.provider if isinstance(state.provider, SubmissionLookup) else None
        if entry.unknown_since is not None and lookup is not None:
            await lost.find_lost(self, entry, state, lookup, release)
            return
        attempt_at = t.clock()
        async with t.db.transaction() as conn:
            entry.job = job = await store.update_job(
                conn, job.id, now=attempt_at, attempts=job.attempts + 1
            )
        call_started = asyncio.get_running_loop().time()
        try:
            pjob = await state.provider.submit(job.request)
        except (InvalidRequestError, AuthenticationError, JobFailedError) as exc:
            release()
            await t.endings.end_for_error(entry, exc, stage="submission")
            return
        except ProviderError as exc:
            release()
            state.occupying.discard(job.id)
            if not exc.retryable:
                await t.endings.end_for_error(entry, exc, stage="submission")
                return
            t.check_alive(entry)
            if isinstance(exc, OutcomeUnknownError):
                if lookup is not None:  # look for it there before submitting again
                    log.warning(
                        "job %s: no answer to its submission (%s); looking for it at %s",
                        job.id,
                        exc,
                        state.name,
                    )
                    entry.unknown_since = attempt_at
                else:
                    await lost.announce_unknown(t, entry, f"no answer to its submission ({exc})")
            entry.retry_front = True
            t.provider_error(state, entry, exc)
            return
        except BaseException:
            state.occupying.discard(job.id)
            raise
        call_ended = asyncio.get_running_loop().time()
        release()
        # The provider's clock started while the call was under way: take the middle.
        await self.accepted(entry, state, pjob, (call_started + call_ended) / 2)

    async def accepted(
        self, entry: Entry, state: ProviderState, pjob: ProviderJob, started_mono: float
    ) -> None:
        """The provider has the job (submitted, or found after a lost answer)."""
        t = self.tracker
        job = entry.job
        call_succeeded(state)
        if state.health is not None:
            state.health.submitted()
        entry.errors = 0
        fields = _merge_provider_report(job, pjob.adjustments, pjob.cost_usd)
        fresh = await self._advance(
            entry,
            Status.SUBMITTED,
            reason=f"accepted by {state.name} as {pjob.job_id}",
            undo=lambda: self._abandon_submitted(job, pjob),
            provider_job_id=pjob.job_id,
            provider_data=pjob.data,
            input_dir=None,
            **fields,
        )
        entry.submitted_mono = started_mono
        entry.est = t.estimate(entry)  # what is known now, not at admission (it may have waited)
        entry.retry_front = False
        entry.unknown_since = None
        entry.submitted_here = True
        t._polling.setdefault(entry.key, set()).add(entry.id)
        if job.input_dir is not None:
            await asyncio.to_thread(t.files.remove_dir, job.input_dir)
        t.schedule_at(entry, t.plan_due(entry))
        await t.notify("job_started", fresh)

    async def _abandon_submitted(self, job: JobRecord, pjob: ProviderJob) -> None:
        """Submission returned after the job was cancelled: cancel it at the provider too."""
        t = self.tracker
        log.info(
            "job %s: accepted as %s after it was cancelled; cancelling there", job.id, pjob.job_id
        )
        try:
            async with t.db.transaction() as conn:
                await store.update_job(
                    conn,
                    job.id,
                    now=t.clock(),
                    provider_job_id=pjob.job_id,
                    provider_data=pjob.data,
                )
        except Exception:
            log.exception("job %s: could not record the late provider id", job.id)
        t.spawn_aux(t.endings.cancel_remote(pjob), f"job-{job.id}-cancel")

    async def _provider_job(self, entry: Entry) -> ProviderJob | None:
        """The provider's handle of a submitted job, or None when the job just expired."""
        if await self.tracker.endings.expire_if_due(entry):
            return None
        pjob = entry.job.provider_job
        assert pjob is not None
        return pjob

    # ----- poll --------------------------------------------------------------------------

    async def poll(self, entry: Entry, state: ProviderState, release: Release) -> None:
        t = self.tracker
        job = entry.job
        pjob = await self._provider_job(entry)
        if pjob is None:
            return
        loop = asyncio.get_running_loop()
        try:
            status = await state.provider.status(pjob)
        except (JobNotFoundError, JobFailedError, AuthenticationError, InvalidRequestError) as exc:
            release()
            await t.endings.end_for_error(entry, exc, stage="status")
            return
        except ProviderError as exc:
            release()
            t.check_alive(entry)
            if not exc.retryable:
                await t.endings.end_for_error(entry, exc, stage="status")
                return
            entry.early_due = None  # the retry is planned (backoff), not an early poll
            t.provider_error(state, entry, exc)
            return
        release()
        call_succeeded(state)
        t.check_alive(entry)
        entry.errors = 0
        entry.polls += 1
        mono = loop.time()
        elapsed = mono - entry.submitted_mono
        if entry.polls == 1 and entry.first_poll is not None:
            kind, planned = entry.first_poll
            if elapsed <= 1.5 * planned + 1:  # not a late (restart, backlog) first poll
                # an early poll (`idle`) answers for its own time, a planned one for the plan's
                at = min(elapsed, planned) if entry.early_due is not None else planned
                await self._observe_first(entry, kind, planned, at, status)
        if status.state is JobState.COMPLETED:
            await self._completed(entry, state, status, elapsed)
        elif status.state is JobState.FAILED:
            await t.endings.end(
                entry,
                job,
                Status.FAILED,
                reason="provider reported failure",
                member=status.failure_reason or MSG_PROVIDER_FAILED,
            )
        elif status.state is JobState.CANCELLED:
            await t.endings.end(
                entry,
                job,
                Status.CANCELLED,
                reason="cancelled at the provider",
                member="it was cancelled at the video service",
            )
        elif status.state is JobState.EXPIRED:
            await t.endings.end(
                entry, job, Status.EXPIRED, reason="provider reported expiry", member=MSG_GONE
            )
        else:
            mode = state.progress_mode
            read_eta(entry, state, status, mono, elapsed)
            if state.progress_mode != mode:
                async with t.db.transaction() as conn:
                    await timing_store.save_progress_mode(
                        conn, state.name, state.progress_mode, now=t.clock()
                    )
            await self._still_running(entry, status, mono, elapsed)

    async def _observe_first(
        self, entry: Entry, kind: str, planned: float, at: float, status: JobStatus
    ) -> None:
        """Move the class's first-poll time after its first poll (planned, or an early one
        at `at` < planned), and keep the new value for restarts."""
        t = self.tracker
        known = t.model.has_first(entry.key, kind)
        before = t.model.first_poll(entry.key, kind, planned)
        after = t.model.observe_first(
            entry.key, kind, at, first_poll_outcome(status), default=planned
        )
        if after != before or not known:
            async with t.db.transaction() as conn:
                await timing_store.save_first_poll(conn, entry.key, kind, after, now=t.clock())
        if abs(after - before) > 0.02 * before:
            self._replan({entry.key})

    async def _still_running(
        self, entry: Entry, status: JobStatus, mono: float, elapsed: float
    ) -> None:
        # Progress goes to the sink on every such answer: polls are already spaced by the
        # plan, and the Discord cog throttles (coalesces) its status edits itself.
        t = self.tracker
        job = entry.job
        entry.last_poll_mono = mono
        entry.last_poll_elapsed = elapsed
        changed: dict[str, Any] = {}
        if status.progress is not None and (
            job.progress is None or abs(status.progress - job.progress) >= 0.01
        ):
            changed["progress"] = status.progress
        started = status.state is JobState.RUNNING and job.status is Status.SUBMITTED
        if started or changed:
            async with t.db.transaction() as conn:
                if started:
                    entry.job = job = await store.transition(
                        conn,
                        job.id,
                        Status.RUNNING,
                        reason="provider started it",
                        now=t.clock(),
                        **changed,
                    )
                else:
                    entry.job = job = await store.update_job(conn, job.id, now=t.clock(), **changed)
        due = t.plan_due(entry)
        early_due, entry.early_due = entry.early_due, None
        if early_due is not None and entry.eta_at is None:
            due = max(due, early_due)  # an early poll said only "not yet": keep the plan
        t.schedule_at(entry, due)
        eta = status.eta_seconds
        if eta is None:
            eta = max(0.0, entry.est.expected - elapsed)
        await t.notify("job_progress", job, status.progress, eta)

    async def _completed(
        self, entry: Entry, state: ProviderState, status: JobStatus, elapsed: float
    ) -> None:
        t = self.tracker
        job = entry.job
        sample = finish_sample(entry, elapsed, t.settings)
        finished_after = max(0.01, sample if sample is not None else elapsed)
        now = t.clock()
        submitted_at = job.submitted_at or now
        fields = _merge_provider_report(job, status.adjustments, None)
        if status.nsfw:  # the provider's own verdict on the clip, for the safety check
            fields["provider_flagged"] = True
        async with t.db.transaction() as conn:
            entry.job = await store.transition(
                conn,
                job.id,
                Status.DOWNLOADING,
                reason="provider finished",
                now=now,
                progress=1.0,
                provider_done_at=min(now, submitted_at + timedelta(seconds=finished_after)),
                **fields,
            )
            if sample is not None:  # bracketed: a measured time (else only a bound)
                await timing_store.record_measured(conn, job.id, sample)
        state.occupying.discard(job.id)
        t._polling.get(entry.key, set()).discard(entry.id)
        if sample is not None:
            self._learn(entry.key, sample)
        t.schedule_in(entry, 0)

    def _learn(self, key: Key, seconds: float) -> None:
        t = self.tracker
        t.model.add(key, seconds)
        # Re-plan the same class, and classes of the same provider/model still estimated
        # from the fit across sizes.
        keys = {key}
        keys.update(
            other for other in t._polling if other[:2] == key[:2] and not t.model.has_samples(other)
        )
        self._replan(keys)

    def _replan(self, keys: set[Key]) -> None:
        """Re-plan waiting polls of these classes whose next poll time moved noticeably."""
        t = self.tracker
        loop_now = asyncio.get_running_loop().time()
        for key in keys:
            for job_id in t._polling.get(key, ()):
                entry = t._entries.get(job_id)
                if entry is None or entry.where != "heap" or entry.eta_at is not None:
                    continue
                old_due = t.plan_due(entry)
                entry.est = t.estimate(entry)
                due = t.plan_due(entry)
                if abs(due - old_due) >= max(0.05, 0.02 * (due - entry.submitted_mono)):
                    t.schedule_at(entry, max(loop_now, due))

    # ----- download ----------------------------------------------------------------------

    async def download(self, entry: Entry, state: ProviderState, release: Release) -> None:
        t = self.tracker
        job = entry.job
        pjob = await self._provider_job(entry)
        if pjob is None:
            return
        clip = t.files.clip(job.id)
        part = t.files.partial_clip(job.id)
        entry.downloads += 1
        try:
            try:
                await asyncio.to_thread(t.files.clips_dir.mkdir, parents=True, exist_ok=True)
                await state.provider.download(pjob, part)
                size = await asyncio.to_thread(file_size, part)
                if size <= 0:
                    raise ProviderError("the provider sent an empty clip")
                await asyncio.to_thread(os.replace, part, clip)
            finally:
                release()
                await asyncio.to_thread(part.unlink, missing_ok=True)
        except (ConnectionError, TimeoutError) as exc:  # a provider leaking a network error
            t.check_alive(entry)
            t.provider_error(state, entry, TransientError(f"download: {exc!r}"))
            return
        except OSError as exc:
            t.check_alive(entry)  # (a cancel removes the partial file under our feet)
            log.error("job %s: could not store the clip (%s: %s)", job.id, type(exc).__name__, exc)
            await t.endings.end(
                entry, job, Status.FAILED, reason=f"storing the clip failed: {exc}", member=MSG_DISK
            )
            return
        except (JobNotFoundError, AuthenticationError) as exc:
            await t.endings.end_for_error(entry, exc, stage="download")
            return
        except ProviderError as exc:
            t.check_alive(entry)
            if isinstance(exc, RateLimitedError):
                entry.downloads -= 1  # not an attempt that counts
            elif not exc.retryable or entry.downloads >= t.settings.download_attempts:
                log.warning("job %s: download failed (%s)", job.id, exc)
                await t.endings.end(
                    entry, job, Status.FAILED, reason=f"download failed: {exc}", member=MSG_DOWNLOAD
                )
                return
            t.provider_error(state, entry, exc)
            return
        call_succeeded(state)
        await self._advance(
            entry,
            Status.DELIVERING,
            reason=f"clip downloaded ({size} bytes)",
            undo=lambda: asyncio.to_thread(clip.unlink, missing_ok=True),
        )
        t.schedule_in(entry, 0)

    async def _advance(
        self,
        entry: Entry,
        status: Status,
        *,
        reason: str,
        undo: Callable[[], Awaitable[None]],
        **fields: Any,
    ) -> JobRecord:
        """After a successful call: write the job's next status (the entry takes the fresh
        row), or `undo` what the call made and stop when the job left the tracker meanwhile
        (cancelled, or ended elsewhere)."""
        t = self.tracker
        if entry.cancelled or t._entries.get(entry.id) is not entry:
            await undo()
            raise Stop
        try:
            async with t.db.transaction() as conn:
                entry.job = await store.transition(
                    conn, entry.id, status, reason=reason, now=t.clock(), **fields
                )
        except InvalidTransitionError:
            await undo()
            raise Stop from None
        return entry.job


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
