"""Restart recovery: the tracker's schedule rebuilt from the `jobs` table.

State lives in SQLite; in-memory structures are only a schedule. At start the timing
history (measured provider times, first-poll times, progress modes) is reloaded, leftover
clip files are removed, and every unfinished job is put back according to its status. A
`pending` job that had submission attempts may already be at the provider: it is looked up
there where the provider allows (`SubmissionLookup`), otherwise it is submitted again and
the member and the mod-log are told it may run twice. A job that
cannot be resumed is retried with backoff (`JobTracker.resume`), then failed and refunded.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bot.jobs.tracker import lost
from bot.jobs.tracker.entry import Entry
from bot.jobs.tracker.outcomes import MSG_INTERNAL
from bot.jobs.tracker.timing import Estimate, backoff_delay, job_key
from bot.providers.base import SubmissionLookup
from bot.scheduling import create_task
from bot.store import jobs as store
from bot.store import timing as timing_store
from bot.store.jobs import JobRecord, Status

if TYPE_CHECKING:
    from bot.jobs.tracker.engine import JobTracker

log = logging.getLogger(__name__)


async def load_history(tracker: JobTracker) -> None:
    """Feed the duration model with what was learnt before: the providers' measured times of
    recent jobs, the first-poll times per class and whether each provider reports progress."""
    modes = await timing_store.progress_modes(tracker.db)
    for name in tracker.providers:
        for sample in await timing_store.recent_durations(tracker.db, name):
            key = (name, sample.model, sample.duration, sample.width, sample.height, sample.fps)
            tracker.model.add(key, sample.seconds)
        for key, kind, seconds in await timing_store.first_polls(tracker.db, name):
            tracker.model.load_first(key, kind, seconds)
        state = tracker._states.get(name)
        if state is not None and name in modes:
            state.progress_mode = modes[name]


async def resume_all(tracker: JobTracker) -> int:
    """Clean leftover clips, then resume every unfinished job no other live process holds
    (`leases`); returns how many this process took."""
    active = await store.list_active(tracker.db)
    await asyncio.to_thread(tracker.files.clean_clips, {j.id for j in active})
    claimed = await tracker.leases.claim_all()
    for job in claimed:
        await resume(tracker, job.id, job)  # an error: retried with backoff, then refunded
    return len(claimed)


async def resume(
    tracker: JobTracker, job_id: int, job: JobRecord | None = None, failures: int = 0
) -> None:
    """Put an unfinished job on the schedule; on an error retry later with backoff.

    After `max_internal_errors` failed attempts the job is failed and refunded, so its
    reservation and the member's concurrency slot are never held silently."""
    t = tracker
    try:
        if job is None:  # a new job, a retry or a release: claimed first (`leases`)
            job = await t.leases.claim_one(job_id)
            if job is None:
                log.info("job %s: finished, or held by another process; not resuming", job_id)
                return
        await recover(t, job)
    except asyncio.CancelledError:
        raise
    except Exception:
        failures += 1
        entry = t._entries.get(job_id)
        if entry is not None and not entry.busy:  # half registered: start afresh
            t.drop(entry)
        if failures >= t.settings.max_internal_errors and job is not None:
            log.exception("job %s: could not be resumed %d times; failing it", job_id, failures)
            try:
                await t.endings.end(
                    None, job, Status.FAILED, reason="could not be resumed", member=MSG_INTERNAL
                )
                return
            except Exception:
                log.exception("job %s: could not be failed either", job_id)
        delay = backoff_delay(failures, t.settings)
        log.exception("job %s: could not be resumed; retrying in %.1fs", job_id, delay)
        if t._started and not t._stopping:
            retry = create_task(
                _resume_later(t, job_id, failures, delay), name=f"job-{job_id}-resume"
            )
            t._resume_retries[job_id] = retry

            def forget(done: asyncio.Task[None]) -> None:
                if t._resume_retries.get(job_id) is done:  # not a newer retry of the job
                    del t._resume_retries[job_id]

            retry.add_done_callback(forget)
        return
    t._wake.set()


async def _resume_later(tracker: JobTracker, job_id: int, failures: int, delay: float) -> None:
    await asyncio.sleep(delay)
    if tracker._started and not tracker._stopping and job_id not in tracker._entries:
        await resume(tracker, job_id, None, failures)


async def recover(tracker: JobTracker, job: JobRecord) -> None:
    """Put one unfinished job back on the schedule according to its status."""
    t = tracker
    if job.id in t._entries:  # enqueue() and start() can race for a new job
        return
    loop = asyncio.get_running_loop()
    state = t._states.get(job.provider)
    if state is None:
        await t.endings.end(
            None,
            job,
            Status.FAILED,
            reason=f"provider {job.provider} is not configured",
            member=f"the video service `{job.provider}` is no longer configured here",
        )
        return
    key = job_key(job.provider, job.request)
    entry = Entry(job=job, key=key, est=Estimate(1.0, 1.0, 0, 1.0))
    entry.est = t.estimate(entry)
    t._entries[job.id] = entry
    if job.status is Status.PENDING:
        if job.attempts > 0:  # the last one may have reached the provider unanswered
            if isinstance(state.provider, SubmissionLookup):
                log.info(
                    "job %s: had %d submission attempt(s) before the restart; looking for "
                    "it at %s before submitting",
                    job.id,
                    job.attempts,
                    job.provider,
                )
                entry.unknown_since = job.updated_at
            else:
                log.warning(
                    "job %s: resubmitting after a restart; it had %d earlier submission "
                    "attempt(s), so the provider may run it twice",
                    job.id,
                    job.attempts,
                )
                await lost.announce_unknown(
                    t, entry, "the bot stopped during an earlier submission"
                )
        state.queue.push(job.member, job.id)
        entry.where = "queue"
        entry.reported_position = state.queue.position(job.member, job.id)
        return
    if job.input_dir is not None:  # submitted before the restart: inputs are not needed
        await asyncio.to_thread(t.files.remove_dir, job.input_dir)
        async with t.db.transaction() as conn:
            entry.job = job = await store.update_job(conn, job.id, now=t.clock(), input_dir=None)
    if job.status is Status.DELIVERING and job.result_message_id is not None:
        t._entries.pop(job.id, None)
        await t.delivery.mark_delivered(None, job)
        return
    if job.status in (Status.SUBMITTED, Status.RUNNING):
        state.occupying.add(job.id)
        t._polling.setdefault(key, set()).add(job.id)
        submitted = job.submitted_at or job.created_at
        entry.submitted_mono = loop.time() - (t.clock() - submitted).total_seconds()
        t.schedule_at(entry, t.plan_due(entry))
        return
    t.schedule_at(entry, loop.time())  # downloading / delivering: now
