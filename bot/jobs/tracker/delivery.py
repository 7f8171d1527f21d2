"""Delivery: posting the clip through the sink, exactly once.

Before the first post the job gets a random delivery key, committed in its row; the sink
puts it into the post (file name, message nonce). The sink posts the clip, its message id
is committed, then the job is marked delivered (and its quota settled) in a second
transaction. Every later attempt — a retry in the same run after an error whose post may
have been stored anyway (5xx after commit, connection reset), or a `delivering` job without
a message id resumed after a restart — is made with `maybe_posted=True`: the sink first
looks for a post carrying the key and returns it instead of posting again. The key, never
the job number, identifies the post, so another database's job of the same number (a
second deployment, a recreated database) is never taken for this one.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from bot import quota
from bot.errors import ClipHeldError, PermanentPostError, TransientPostError
from bot.jobs.tracker.budget import learn_calls_per_job
from bot.jobs.tracker.entry import Entry
from bot.jobs.tracker.outcomes import MSG_POST
from bot.jobs.tracker.timing import backoff_delay
from bot.store import jobs as store
from bot.store.jobs import JobRecord, Status

if TYPE_CHECKING:
    from bot.jobs.tracker.engine import JobTracker

log = logging.getLogger(__name__)


class DeliveryReceipt(BaseModel):
    """Where the clip was posted (message id None: nothing to remember, e.g. the CLI)."""

    channel_id: int | None
    message_id: int | None


class DeliverySink(Protocol):
    """Implemented by the Discord cog (and the CLI); bot/ has no Discord UI code.

    Notifications (`job_queued`, `job_started`, `job_progress`, `job_ended`) are best effort:
    an exception is logged and ignored. `job_completed` must post the clip and return where;
    raising means "maybe not posted": it is retried (`delivery_attempts`), except a
    `bot.errors.PermanentPostError`, which fails the job with its `message`. The post must
    carry `job.delivery_key` (set before the first attempt); with `maybe_posted` an earlier
    attempt may have been stored although it raised: look for the post with that key first
    and return it instead of posting a second one. `bot.errors.ClipHeldError` means "not
    posted on purpose, held for review": the job waits (not a failed attempt).
    """

    async def job_queued(self, job: JobRecord, position: int) -> None: ...

    async def job_started(self, job: JobRecord) -> None: ...

    async def job_progress(
        self, job: JobRecord, progress: float | None, eta_seconds: float | None
    ) -> None: ...

    async def job_completed(
        self, job: JobRecord, clip: Path, *, maybe_posted: bool
    ) -> DeliveryReceipt: ...

    async def job_ended(self, job: JobRecord, outcome: str, reason: str) -> None: ...


async def notify(sink: DeliverySink, name: str, job: JobRecord, *args: Any) -> None:
    """A best-effort sink notification: errors are logged, never raised."""
    try:
        await getattr(sink, name)(job, *args)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("delivery sink %s failed for job %s", name, job.id, exc_info=True)


class Delivery:
    """The `delivering` step of a tracker: post, record where, mark delivered."""

    def __init__(self, tracker: JobTracker) -> None:
        self.tracker = tracker

    async def deliver(self, entry: Entry) -> None:
        t = self.tracker
        job = entry.job
        if job.result_message_id is not None:
            await self.mark_delivered(entry, job)
            return
        clip = t.files.clip(job.id)
        if not await asyncio.to_thread(clip.is_file):
            async with t.db.transaction() as conn:
                entry.job = await store.transition(
                    conn,
                    job.id,
                    Status.DOWNLOADING,
                    reason="clip file missing; downloading again",
                    now=t.clock(),
                )
            t.schedule_in(entry, 0)
            return
        # A key already there means an earlier attempt (this run or before a restart) may
        # have been posted although it raised or was cut off: the sink looks for it first.
        maybe_posted = job.delivery_key is not None
        async with t.db.transaction() as conn:  # only the lease holder posts (`leases`)
            await t.leases.check(conn, entry)
            if not maybe_posted:
                entry.job = job = await store.assign_delivery_key(conn, job.id, now=t.clock())
        entry.deliveries += 1
        try:
            receipt = await t.sink.job_completed(job, clip, maybe_posted=maybe_posted)
        except asyncio.CancelledError:
            raise
        except ClipHeldError as held:  # waits for a moderator; the clip file stays
            entry.deliveries -= 1
            wait = max(0.0, (held.until - t.clock()).total_seconds())
            log.info("job %s: clip held for review; next look in %.0f s", job.id, wait)
            t.schedule_in(entry, wait)
            return
        except Exception as exc:
            message = (exc.message or MSG_POST) if isinstance(exc, PermanentPostError) else None
            if message is None and self._outage_retry(entry, exc):
                return
            if message is not None or entry.deliveries >= t.settings.delivery_attempts:
                log.warning("job %s: posting the clip failed for good: %r", job.id, exc)
                await t.endings.end(
                    entry,
                    job,
                    Status.FAILED,
                    reason=f"delivery failed: {exc!r}",
                    member=message or MSG_POST,
                )
                return
            delay = backoff_delay(entry.deliveries, t.settings)
            log.warning(
                "job %s: posting the clip failed (%r); retrying in %.1fs", job.id, exc, delay
            )
            t.schedule_in(entry, delay)
            return
        entry.outage_since, entry.outage_tries = None, 0
        if receipt.message_id is not None or receipt.channel_id is not None:
            async with t.db.transaction() as conn:  # lost meanwhile: the new holder finds
                await t.leases.check(conn, entry)  # the post by its key instead
                entry.job = job = await store.record_delivery(
                    conn,
                    job.id,
                    channel_id=receipt.channel_id,
                    message_id=receipt.message_id,
                    now=t.clock(),
                )
        await self.mark_delivered(entry, job)

    # ----- a clip held for review (the sink raised ClipHeldError) --------------------------

    async def deliver_now(self, job_id: int) -> bool:
        """Try the delivery of a waiting (held) job at once, e.g. after a moderator released
        it; False when the job is not waiting to be delivered."""
        t = self.tracker
        entry = t._entries.get(job_id)
        if entry is not None:
            if entry.job.status is not Status.DELIVERING or entry.cancelled:
                return False
            t.schedule_in(entry, 0)
            return True
        job = await store.get_job(t.db, job_id)
        if job is None or job.status is not Status.DELIVERING:
            return False
        await t.resume(job_id)  # claims it (another process may hold it)
        return True

    async def end_waiting(self, job_id: int, *, reason: str, member: str) -> bool:
        """Fail a job whose clip waits to be delivered (a moderator discarded a held clip):
        refunded like every failure, its clip file removed, the member told `member`."""
        t = self.tracker
        job = await store.get_job(t.db, job_id)
        if job is None or job.status is not Status.DELIVERING:
            return False
        entry = t._entries.get(job_id)
        if entry is not None:
            entry.cancelled = True  # a delivery in flight stops (check_alive) or is undone
        await t.endings.end(entry, job, Status.FAILED, reason=reason, member=member)
        return True

    def _outage_retry(self, entry: Entry, exc: Exception) -> bool:
        """A Discord outage: retry with backoff (not counted in `delivery_attempts`) until it
        has lasted `delivery_outage_seconds`. False when `exc` is no outage or it lasted."""
        t = self.tracker
        if not isinstance(exc, TransientPostError):
            return False
        now = asyncio.get_running_loop().time()
        if entry.outage_since is None:
            entry.outage_since = now
        if now - entry.outage_since >= t.settings.delivery_outage_seconds:
            return False
        entry.deliveries -= 1  # an outage is not a failed attempt
        entry.outage_tries += 1
        delay = backoff_delay(entry.outage_tries, t.settings)
        log.warning(
            "job %s: Discord unavailable while posting the clip (%s); retrying in %.1fs",
            entry.id,
            exc,
            delay,
        )
        t.schedule_in(entry, delay)
        return True

    async def mark_delivered(self, entry: Entry | None, job: JobRecord) -> None:
        """Delivered and settled in one transaction; `entry` None: a job resumed at start
        that was already posted."""
        t = self.tracker
        now = t.clock()
        where = f"message {job.result_message_id}" if job.result_message_id else "the sink"
        async with t.db.transaction() as conn:
            if entry is not None:
                await t.leases.check(conn, entry)
            await store.transition(
                conn, job.id, Status.DELIVERED, reason=f"posted as {where}", now=now
            )
            await quota.settle(conn, job.id, seconds=job.seconds, cost_usd=job.cost_usd, now=now)
        if entry is not None:
            t.drop(entry)
            state = t._states.get(job.provider)
            if state is not None and entry.submitted_here:  # learn what a job costs
                learn_calls_per_job(state, entry.calls)
        await asyncio.to_thread(t.files.remove_job_files, job)
