"""Job leases: which process drives which job when several share one database.

A tracker drives only the jobs it holds a lease on (`bot.store.leases`). `claim_all` at
start and `claim_one` for a job admitted here take jobs; the heartbeat (every third of
`lease_seconds`) extends the leases, registers the process in `instances`, forgets the jobs
it no longer holds (taken over after a stall, or ended by another process) and claims
unheld unfinished jobs — new ones admitted by another process, and those of a process that
died (after its lease expired, so at most `lease_seconds` plus one beat). On PostgreSQL the
loop also wakes at once on a NOTIFY (`bot.store.wakeups`): a new job admitted elsewhere is
claimed, a cancel written elsewhere stops the job here, without waiting for the beat. The
admitting process leases a new job in its admission transaction (`take`), so the others'
wake-ups leave it to that process (whose data directory holds its input files). `check`
guards the step that posts: inside the transaction that records the post, the lease must
still be this process's, or the step stops without posting or recording. A graceful stop
hands every lease back at once. A job this process holds but has not driven for a whole
beat (its enqueue was lost) is taken on at that beat.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.jobs.tracker.entry import Entry, Stop
from bot.jobs.tracker.shares import Shares
from bot.scheduling import create_task, wait_event
from bot.store import jobs as job_store
from bot.store import leases as store
from bot.store import wakeups
from bot.store._conn import Connection
from bot.store.jobs import JobRecord

if TYPE_CHECKING:
    from bot.jobs.tracker.engine import JobTracker

log = logging.getLogger(__name__)


class LeaseLost(Stop):
    """Another process holds the job now (or it ended there): this one stops driving it."""


class Leases:
    """The lease side of one tracker (`tracker.leases`)."""

    def __init__(self, tracker: JobTracker) -> None:
        self.tracker = tracker
        self.owner = tracker.settings.instance_name
        self.seconds = tracker.settings.lease_seconds
        self.shards = tracker.settings.instance_shards
        self._task: asyncio.Task[None] | None = None
        self.beats = 0
        self.lost = 0
        self.wakeups = 0  # wake-ups handled (LISTEN/NOTIFY, PostgreSQL)
        self.listener: wakeups.Listener | None = None
        self._woken = asyncio.Event()
        self._cancels: set[int] = set()
        self._new = False
        self._rescan = False
        self._untracked: set[int] = set()  # held but not driven at the last beat
        self.adopted = 0  # such jobs taken on at the next beat (a lost enqueue)
        self.shares = Shares(tracker)  # this process's part of each provider's budget

    def _until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.seconds)

    async def start(self) -> None:
        """Register this process (first heartbeat); the beat loop starts with `run`."""
        now = self.tracker.clock()
        await store.renew(
            self.tracker.db, self.owner, shards=self.shards, now=now, until=self._until(now)
        )
        db = self.tracker.db
        if db.dialect == "postgresql" and self.listener is None:
            self.listener = wakeups.Listener(db.url, self.wake, ping_seconds=self.seconds / 3)
            await self.listener.start()
        await self.shares.start()

    def run(self) -> None:
        if self._task is None or self._task.done():
            self._task = create_task(self._loop(), name=f"leases-{self.owner}")

    async def stop(self, *, release: bool = True) -> None:
        """Stop the heartbeat; with `release`, hand every lease back (a graceful stop)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        await self.shares.stop(release=release)
        if release:
            count = await store.release(self.tracker.db, self.owner)
            log.info("%s: handed back %d job lease(s)", self.owner, count)

    async def claim_all(self, *, include_own: bool = True) -> list[JobRecord]:
        """Every claimable unfinished job: at start including this process's own (a restart
        under the same name), at each beat and wake-up only the unheld ones (a job this
        process holds but does not track yet is one it admitted and is enqueuing itself)."""
        t = self.tracker
        now = t.clock()
        async with t.db.transaction() as conn:
            return await store.claim(
                conn,
                self.owner,
                now=now,
                until=self._until(now),
                limit=1000,
                include_own=include_own,
            )

    async def claim_one(self, job_id: int) -> JobRecord | None:
        """The job, if this process holds it now (claimed, or already its own)."""
        t = self.tracker
        now = t.clock()
        async with t.db.transaction() as conn:
            jobs = await store.claim(
                conn, self.owner, now=now, until=self._until(now), job_id=job_id
            )
        return jobs[0] if jobs else None

    async def take(self, conn: Connection, job_id: int) -> None:
        """Inside the admission transaction: lease the new job to this process, so that the
        other processes, woken by its NOTIFY at commit, leave it to the one admitting it."""
        now = self.tracker.clock()
        await store.claim(conn, self.owner, now=now, until=self._until(now), job_id=job_id)

    async def check(self, conn: Connection, entry: Entry) -> None:
        """Inside a transaction: raise LeaseLost (and forget the job) unless this process
        still holds it; extends the lease on success."""
        if await store.hold(conn, entry.id, self.owner, until=self._until(self.tracker.clock())):
            return
        log.warning("job %s: no longer %s's (lease); not posting it here", entry.id, self.owner)
        self._forget(entry)
        raise LeaseLost

    def _forget(self, entry: Entry) -> None:
        self.lost += 1
        entry.cancelled = True  # a call in flight stops at check_alive
        self.tracker.drop(entry)

    def wake(self, kind: str, job_id: int | None) -> None:
        """A wake-up from another process (`bot.store.wakeups`): a new job to claim, a cancel
        to notice, or a reconnect (notifications may have been missed: a full beat)."""
        if kind == wakeups.CANCEL and job_id is not None:
            self._cancels.add(job_id)
        elif kind == wakeups.NEW:
            self._new = True
        else:
            self._rescan = True
        self._woken.set()

    async def _on_wake(self) -> None:
        t = self.tracker
        cancels, self._cancels = self._cancels, set()
        new, self._new = self._new, False
        rescan, self._rescan = self._rescan, False
        self.wakeups += 1
        if rescan:
            await self.beat()
            return
        for job_id in cancels:
            entry = t._entries.get(job_id)
            job = await job_store.get_job(t.db, job_id) if entry is not None else None
            if entry is None or t._entries.get(job_id) is not entry:
                continue
            if job is None or job.status in job_store.TERMINAL_STATUSES:
                await self._drop_ended(job_id, entry, job)
        if new:
            await self._claim_unheld()

    async def beat(self) -> None:
        """Renew, forget lost jobs, claim unheld ones."""
        t = self.tracker
        before = dict(t._entries)  # claimed before the renewal: the answer must list them
        now = t.clock()
        until = self._until(now)
        held = await store.renew(t.db, self.owner, shards=self.shards, now=now, until=until)
        self.beats += 1
        for job_id, entry in before.items():
            if job_id in held or t._entries.get(job_id) is not entry:
                continue
            job = await job_store.get_job(t.db, job_id)
            ended = job is None or job.status in job_store.TERMINAL_STATUSES
            if ended:
                await self._drop_ended(job_id, entry, job)
            else:
                log.info("job %s: taken over; %s stops driving it", job_id, self.owner)
                self._forget(entry)
        await self._adopt_untracked(held)
        await self._claim_unheld()

    async def _adopt_untracked(self, held: set[int]) -> None:
        """Drive the jobs this process holds but has not driven for a whole beat. A job it
        admitted is enqueued within milliseconds; one still untracked a beat later lost its
        enqueue (the hand-over failed, or the tracker was not running yet) and would
        otherwise stay held here, renewed and never run, until a restart."""
        t = self.tracker
        untracked = {  # a job whose resume failed waits for its retry: not lost
            job_id
            for job_id in held
            if job_id not in t._entries and job_id not in t._resume_retries
        }
        for job_id in sorted(untracked & self._untracked):
            if t._stopping or job_id in t._entries:
                continue
            log.warning("job %s: held by %s but not driven; taking it on", job_id, self.owner)
            self.adopted += 1
            await t.resume(job_id)
        self._untracked = {job_id for job_id in untracked if job_id not in t._entries}

    async def _drop_ended(self, job_id: int, entry: Entry, job: JobRecord | None) -> None:
        log.info("job %s: ended elsewhere; %s stops driving it", job_id, self.owner)
        self._forget(entry)
        if job is not None:
            await asyncio.to_thread(self.tracker.files.remove_job_files, job)

    async def _claim_unheld(self) -> None:
        t = self.tracker
        for job in await self.claim_all(include_own=False):
            if job.id not in t._entries and not t._stopping:
                log.info("job %s (%s): claimed by %s", job.id, job.status.value, self.owner)
                await t.resume(job.id, job)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.seconds / 3
        next_beat = loop.time() + interval
        while True:
            await wait_event(self._woken, next_beat - loop.time())
            try:
                if self._woken.is_set():
                    self._woken.clear()
                    await self._on_wake()
                if loop.time() >= next_beat:
                    next_beat = loop.time() + interval
                    await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: lease heartbeat failed; retrying", self.owner)
