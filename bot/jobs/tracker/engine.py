"""JobTracker: the coordinator. Holds the per-job and per-provider state, runs the one
dispatcher task, and offers start / stop / enqueue / cancel.

One dispatcher task keeps a heap of (due time, job) and sleeps until the earliest due entry,
a refill of a provider's request budget, or a wake-up (enqueue, cancel, a finished work
item). Due work runs as short tasks (one provider call plus its bookkeeping, see `steps`,
`delivery`), bounded per provider by `max_parallel_requests`; there is no long-lived task
per job. Every status change goes through `bot/store/jobs.py`, so a restart resumes from the
table (`recovery`).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from bot import quota
from bot.db import Database, utcnow
from bot.jobs.files import JobFiles
from bot.jobs.health import HealthBoard, HealthRules
from bot.jobs.tracker import budget, recovery
from bot.jobs.tracker.budget import ProviderState
from bot.jobs.tracker.delivery import Delivery, DeliverySink, notify
from bot.jobs.tracker.entry import DELIVER, DOWNLOAD, EXPIRE, POLL, SUBMIT, Entry, Stop
from bot.jobs.tracker.leases import Leases
from bot.jobs.tracker.outcomes import MSG_INTERNAL, Endings, billed_usd
from bot.jobs.tracker.settings import TrackerSettings
from bot.jobs.tracker.steps import Steps
from bot.jobs.tracker.timing import (
    DurationModel,
    Estimate,
    Key,
    backoff_delay,
    plan_due,
    prior_seconds,
)
from bot.providers.base import Provider, ProviderError, RateLimitedError
from bot.scheduling import create_task
from bot.store import jobs as store
from bot.store.jobs import JobRecord, Status

log = logging.getLogger(__name__)


class JobTracker:
    """Drives every job from its row to a posted clip, across restarts.

    `stats` counts provider calls by kind (submit, poll, download, cancel).
    """

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
        self.files = JobFiles(data_dir)
        self.sink = sink
        self.settings = settings or TrackerSettings()
        self.clock = clock
        self.model = DurationModel(self.settings)
        self.steps = Steps(self)
        self.delivery = Delivery(self)
        self.endings = Endings(self)
        self.leases = Leases(self)  # which jobs this process drives (several processes)
        self.health = HealthBoard(HealthRules(self.settings.provider_no_answer_seconds), clock)
        self._entries: dict[int, Entry] = {}
        self._polling: dict[Key, set[int]] = {}  # submitted/running jobs per class
        self._states: dict[str, ProviderState] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._ready_deliveries: deque[Entry] = deque()
        self._delivering = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False
        self._next_wake = math.inf
        self._next_sweep = 0.0
        self._notifier: asyncio.Task[Any] | None = None
        self._task_kinds: dict[asyncio.Task[Any], str] = {}
        self._resume_retries: dict[int, asyncio.Task[None]] = {}  # by job id
        self.stats: dict[str, int] = {"submit": 0, "poll": 0, "download": 0, "cancel": 0}

    # ----- public API ------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every unfinished job from the database and start the dispatcher."""
        if self._started:
            return
        self._started = True
        self._stopping = False
        self._next_sweep = 0.0
        now = asyncio.get_running_loop().time()
        for name, provider in self.providers.items():  # before any await: enqueue() may run
            self._states[name] = budget.make_provider_state(name, provider, self.settings, now)
            self.health.attach(self._states[name])
        await recovery.load_history(self)
        await self.leases.start()
        active = await recovery.resume_all(self)
        self._dispatcher = create_task(self._run(), name="job-tracker-dispatcher")
        self.leases.run()
        log.info("job tracker started with %d unfinished job(s)", active)

    async def stop(self) -> None:
        """Stop taking work, give in-flight calls the grace period, leave the rest resumable.

        Every call gets `shutdown_grace_seconds`; a submission or an upload in flight (which
        the provider may bill, or Discord may store, even when its answer is lost) gets up
        to `inflight_grace_seconds` in all before it is interrupted."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        await self.leases.stop(release=False)  # beats end; the leases go back at the end
        for retry in self._resume_retries.values():
            retry.cancel()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(
                self._dispatcher, *self._resume_retries.values(), return_exceptions=True
            )
        tasks = set(self._tasks)
        if tasks:
            loop = asyncio.get_running_loop()
            started = loop.time()
            _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_seconds)
            billed = {t for t in pending if self._task_kinds.get(t) in (SUBMIT, DELIVER)}
            grace = self.settings.inflight_grace_seconds
            left = (grace or 0.0) - (loop.time() - started)
            if billed and left > 0:
                log.info(
                    "stopping: waiting up to %.0fs for %d submission(s)/upload(s)",
                    left,
                    len(billed),
                )
                await asyncio.wait(billed, timeout=left)
                pending = {t for t in pending if not t.done()}
            for task in pending:
                task.cancel()
            if pending:
                log.info(
                    "stopping: %d call(s) interrupted; their jobs resume on start", len(pending)
                )
                await asyncio.gather(*pending, return_exceptions=True)
        await self.leases.stop(release=True)
        self._started = False
        self._entries.clear()
        self._states.clear()
        self._heap.clear()
        self._ready_deliveries.clear()

    async def enqueue(self, job_id: int) -> None:
        """Take a freshly admitted job (row already written by `insert_job`).

        Never raises for a job it could not take at once: it retries with backoff (and in
        the end fails the job with a refund), so an admitted job always runs or is refunded.
        """
        if not self._started or self._stopping or job_id in self._entries:
            return  # start() picks it up from the table
        await self.resume(job_id)

    async def resume(self, job_id: int, job: JobRecord | None = None, failures: int = 0) -> None:
        """Put an unfinished job on the schedule, retrying with backoff (`recovery.resume`)."""
        await recovery.resume(self, job_id, job, failures)

    async def cancel(self, job_id: int, *, by: int | None, reason: str) -> bool:
        """Cancel a job unless it is already finished or being posted; refunds its quota
        (the member's seconds; what the provider billed stays in the guild's spend)."""
        now = self.clock()
        async with self.db.transaction() as conn:
            job = await store.get_job(conn, job_id)
            if job is None or Status.CANCELLED not in store.TRANSITIONS[job.status]:
                return False
            note = reason if by is None else f"{reason} (by {by})"
            billed = billed_usd(job)
            job = await store.transition(
                conn, job_id, Status.CANCELLED, reason=note, now=now, failure_reason=reason
            )
            await quota.refund(conn, job_id, reason=note, now=now, billed_usd=billed)
        entry = self._entries.get(job_id)
        if entry is not None:
            entry.cancelled = True
            self.drop(entry)
        await asyncio.to_thread(self.files.remove_job_files, job)
        pjob = job.provider_job
        if pjob is not None:
            self.spawn_aux(self.endings.cancel_remote(pjob), f"job-{job_id}-cancel")
        await self.notify("job_ended", job, "cancelled", reason)
        self._wake.set()
        return True

    def queue_position(self, job_id: int) -> int | None:
        """1-based place among the provider's pending jobs (None when not waiting)."""
        return budget.queue_position(self._entries, self._states, job_id)

    # ----- for the steps ---------------------------------------------------------------

    def estimate(self, entry: Entry) -> Estimate:
        provider = self.providers[entry.job.provider]
        prior = prior_seconds(provider, entry.job.request, self.settings)
        return self.model.estimate(entry.key, prior)

    def plan_due(self, entry: Entry) -> float:
        """Loop time of the job's next status call."""
        state = self._states.get(entry.job.provider)
        probe = state is not None and state.progress_mode != "no"
        return plan_due(entry, self.model, self.settings, probe=probe)

    def schedule_at(self, entry: Entry, due: float) -> None:
        if entry.busy:  # its work item is still running: pushed when it ends
            entry.later = due
            return
        entry.seq += 1
        entry.where, entry.due = "heap", due
        heapq.heappush(self._heap, (due, entry.seq, entry.id))
        if due < self._next_wake:
            self._wake.set()

    def schedule_in(self, entry: Entry, delay: float) -> None:
        self.schedule_at(entry, asyncio.get_running_loop().time() + max(0.0, delay))

    def drop(self, entry: Entry) -> None:
        """Forget a job (finished or cancelled)."""
        self._entries.pop(entry.id, None)
        self._polling.get(entry.key, set()).discard(entry.id)
        state = self._states.get(entry.job.provider)
        if state is not None:
            state.occupying.discard(entry.id)
        self._detach(entry)

    def check_alive(self, entry: Entry) -> None:
        """Raise Stop when the job left the tracker while its call was in flight."""
        if entry.cancelled or self._entries.get(entry.id) is not entry:
            raise Stop

    def provider_error(self, state: ProviderState, entry: Entry, exc: ProviderError) -> None:
        """A retryable failure: back off this job, and the provider if it keeps failing."""
        loop_now = asyncio.get_running_loop().time()
        if isinstance(exc, RateLimitedError):
            self.schedule_at(entry, budget.rate_limited(state, exc, self.settings, loop_now))
            return
        entry.errors += 1
        delay = backoff_delay(entry.errors, self.settings)
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            delay = max(delay, float(retry_after))
        if not budget.failed_call(state, exc, self.settings, loop_now):
            log.info("job %s: %s; retrying in %.1fs", entry.id, exc, delay)
        self.schedule_in(entry, delay)

    def spawn_aux(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A side task (remote cancel, queue notices) that `stop()` waits for."""
        task = create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    async def notify(self, name: str, job: JobRecord, *args: Any) -> None:
        await notify(self.sink, name, job, *args)

    async def notice(self, job: JobRecord, text: str) -> None:
        """Tell the member something about a job that goes on (sinks may lack `job_notice`)."""
        if hasattr(self.sink, "job_notice"):
            await notify(self.sink, "job_notice", job, text)

    # ----- the dispatcher --------------------------------------------------------------

    def _detach(self, entry: Entry) -> None:
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

    def _make_ready(self, entry: Entry) -> None:
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
            wake = min(
                wake,
                budget.dispatch_provider(state, now, self.settings, self._entries, self._spawn),
            )
        while self._ready_deliveries and self._delivering < self.settings.max_parallel_deliveries:
            entry = self._ready_deliveries.popleft()
            self._delivering += 1
            self._spawn(entry, DELIVER, None)
        return wake

    def _spawn(self, entry: Entry, kind: str, state: ProviderState | None) -> None:
        entry.busy = True
        entry.where = ""
        if state is not None:
            entry.call = state.begin_call()
            entry.calls += 1
            self.stats[kind] = self.stats.get(kind, 0) + 1
        task = create_task(self._run_step(entry, kind, state), name=f"job-{entry.id}-{kind}")
        self._tasks.add(task)
        self._task_kinds[task] = kind
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._task_kinds.pop(task, None)
        if not self._stopping:
            self._wake.set()

    def _sweep(self) -> None:
        """Expire overdue jobs and report changed queue positions."""
        now = self.clock()
        for entry in list(self._entries.values()):
            if entry.busy or entry.job.status is Status.DELIVERING:
                continue
            if now >= self.endings.deadline(entry.job):
                self._detach(entry)
                self._spawn(entry, EXPIRE, None)
        if self._notifier is None or self._notifier.done():
            changes: list[tuple[JobRecord, int]] = []
            for state in self._states.values():
                changes.extend(budget.queue_moves(state, self._entries))
            if changes:
                self._notifier = self.spawn_aux(self._notify_positions(changes), "queue-positions")

    async def _notify_positions(self, changes: list[tuple[JobRecord, int]]) -> None:
        for job, position in changes:
            if job.id in self._entries and self._entries[job.id].job.status is Status.PENDING:
                await self.notify("job_queued", job, position)

    async def _run_step(self, entry: Entry, kind: str, state: ProviderState | None) -> None:
        """One work item of a job: the step of its kind, then back on the schedule."""
        released = False

        def release() -> None:
            nonlocal released
            if state is not None and not released:
                released = True
                state.end_call(entry.call)
                self._wake.set()

        try:
            if kind == SUBMIT:
                assert state is not None
                await self.steps.submit(entry, state, release)
            elif kind == POLL:
                assert state is not None
                await self.steps.poll(entry, state, release)
            elif kind == DOWNLOAD:
                assert state is not None
                await self.steps.download(entry, state, release)
            elif kind == EXPIRE:
                await self.endings.expire(entry)
            else:
                await self.delivery.deliver(entry)
            entry.internal_errors = 0
        except asyncio.CancelledError:
            raise
        except Stop:
            pass
        except Exception:
            entry.internal_errors += 1
            log.exception("job %s: %s step failed unexpectedly", entry.id, kind)
            if entry.internal_errors >= self.settings.max_internal_errors and not entry.cancelled:
                await self.endings.end(
                    entry, entry.job, Status.FAILED, reason="internal errors", member=MSG_INTERNAL
                )
            elif entry.id in self._entries and not entry.cancelled:
                if kind == SUBMIT and state is not None:
                    state.occupying.discard(entry.id)
                    entry.retry_front = True
                self.schedule_in(entry, backoff_delay(entry.internal_errors, self.settings))
        finally:
            release()
            if kind == DELIVER:
                self._delivering -= 1
            entry.busy = False
            later, entry.later = entry.later, None
            if entry.id in self._entries and not entry.cancelled and not self._stopping:
                if later is not None:
                    self.schedule_at(entry, later)
                elif entry.where == "":
                    log.error("job %s: %s left it unscheduled; retrying shortly", entry.id, kind)
                    self.schedule_in(entry, 5.0)
