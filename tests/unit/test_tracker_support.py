"""Shared helpers for the tracker tests (no tests here): a deterministic in-process
Provider, a recording DeliverySink, and admission helpers."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot import quota
from bot.db import Database
from bot.errors import PermanentPostError
from bot.jobs.tracker import DeliveryReceipt, JobTracker, TrackerSettings
from bot.media import MediaError
from bot.providers.base import (
    CheckResult,
    JobState,
    JobStatus,
    Mode,
    NegotiatedRequest,
    ProviderJob,
    ProviderLimits,
    VideoRequest,
)
from bot.store import jobs as store
from bot.store.jobs import JobRecord, Status

CLIP_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8


def fake_limits(**overrides: Any) -> ProviderLimits:
    values: dict[str, Any] = {
        "models": ("m",),
        "default_model": "m",
        "durations": (5,),
        "default_duration": 5,
        "fps_options": (25,),
        "default_fps": 25,
        "aspect_ratios": ("16:9",),
        "default_aspect_ratio": "16:9",
        "requests_per_minute": 600_000,
        "max_concurrency": 10_000,
        "job_expiry": timedelta(hours=24),
    }
    values.update(overrides)
    return ProviderLimits(**values)


def make_request(
    prompt: str = "a red fox in snow",
    *,
    provider: str = "fake",
    duration: int = 5,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    cost_usd: float = 0.1,
) -> NegotiatedRequest:
    return NegotiatedRequest(
        prompt=prompt,
        provider=provider,
        model="m",
        mode=Mode.TEXT,
        duration=duration,
        width=width,
        height=height,
        fps=fps,
        cost_usd=cost_usd,
    )


@dataclass
class FakeJob:
    id: str
    created: float
    run_seconds: float
    request: NegotiatedRequest
    fail_reason: str | None = None
    state: JobState | None = None  # forced state

    def current(self) -> JobState:
        if self.state is not None:
            return self.state
        if self.fail_reason is not None:
            return JobState.FAILED
        elapsed = time.monotonic() - self.created
        if elapsed >= self.run_seconds:
            return JobState.COMPLETED
        return JobState.RUNNING if elapsed >= 0.2 * self.run_seconds else JobState.QUEUED

    @property
    def done_at(self) -> float:
        return self.created + self.run_seconds


Hook = Callable[[str, str | None], Awaitable[None]]


class FakeProvider:
    """A Provider implemented in memory, with fault injection and call recording."""

    def __init__(
        self,
        *,
        name: str = "fake",
        job_seconds: float | Callable[[NegotiatedRequest], float] = 0.05,
        progress: bool = True,
        can_cancel: bool = True,
        limits: ProviderLimits | None = None,
    ) -> None:
        self.name = name
        self.limits = limits or fake_limits()
        self.job_seconds = job_seconds
        self.progress = progress
        self.can_cancel = can_cancel
        self.jobs: dict[str, FakeJob] = {}
        self.calls: list[tuple[str, str | None, float]] = []
        self.errors: dict[str, deque[BaseException]] = {
            "submit": deque(),
            "status": deque(),
            "download": deque(),
        }
        self.hook: Hook | None = None
        self.cancelled: list[str] = []
        self.clip = CLIP_BYTES
        self.submitted: list[NegotiatedRequest] = []
        self._ids = itertools.count(1)
        if not callable(job_seconds):
            self.delay_seconds = job_seconds

    # helpers for tests
    def fail_next(self, kind: str, *excs: BaseException) -> None:
        self.errors[kind].extend(excs)

    def count(self, kind: str) -> int:
        return sum(1 for k, _, _ in self.calls if k == kind)

    def job_for(self, prompt: str) -> FakeJob:
        return next(j for j in self.jobs.values() if j.request.prompt == prompt)

    async def _enter(self, kind: str, job_id: str | None) -> None:
        self.calls.append((kind, job_id, time.monotonic()))
        if self.hook is not None:
            await self.hook(kind, job_id)
        queue = self.errors.get(kind)
        if queue:
            raise queue.popleft()

    # the protocol
    def negotiate(self, request: VideoRequest) -> NegotiatedRequest:
        return make_request(request.prompt, provider=self.name)

    async def submit(self, request: NegotiatedRequest) -> ProviderJob:
        await self._enter("submit", None)
        seconds = self.job_seconds(request) if callable(self.job_seconds) else self.job_seconds
        job_id = f"j{next(self._ids)}"
        self.jobs[job_id] = FakeJob(job_id, time.monotonic(), seconds, request)
        self.submitted.append(request)
        return ProviderJob(provider=self.name, job_id=job_id, data={"n": job_id})

    async def status(self, job: ProviderJob) -> JobStatus:
        await self._enter("status", job.job_id)
        fake = self.jobs[job.job_id]
        state = fake.current()
        if state is JobState.FAILED:
            return JobStatus(state=state, failure_reason=fake.fail_reason)
        progress = None
        if state is JobState.RUNNING and self.progress:
            progress = round((time.monotonic() - fake.created) / fake.run_seconds, 4)
        return JobStatus(state=state, progress=progress)

    async def download(self, job: ProviderJob, dest: Path) -> None:
        await self._enter("download", job.job_id)
        await asyncio.to_thread(dest.write_bytes, self.clip)

    async def check(self) -> CheckResult:
        return CheckResult(provider=self.name, ok=True, detail="fake")

    async def cancel(self, job: ProviderJob) -> bool:
        await self._enter("cancel", job.job_id)
        if not self.can_cancel:
            return False
        self.cancelled.append(job.job_id)
        return True

    async def aclose(self) -> None:
        return None


@dataclass
class RecordingSink:
    """Records every call; `job_completed` behaviour is configurable."""

    events: list[tuple[str, int, tuple[Any, ...]]] = field(default_factory=list)
    completed: dict[int, int] = field(default_factory=dict)
    clips: dict[int, bytes] = field(default_factory=dict)
    fail_completed: deque[BaseException] = field(default_factory=deque)
    completed_hook: Callable[[JobRecord], Awaitable[None]] | None = None
    message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _done: dict[int, asyncio.Event] = field(default_factory=dict)
    outcome: dict[int, str] = field(default_factory=dict)
    # (job id, maybe_posted, delivery key) of every job_completed call
    maybe_posted: list[tuple[int, bool, str | None]] = field(default_factory=list)

    def _event(self, job_id: int) -> asyncio.Event:
        return self._done.setdefault(job_id, asyncio.Event())

    async def job_queued(self, job: JobRecord, position: int) -> None:
        self.events.append(("queued", job.id, (position,)))

    async def job_started(self, job: JobRecord) -> None:
        self.events.append(("started", job.id, ()))

    async def job_progress(
        self, job: JobRecord, progress: float | None, eta_seconds: float | None
    ) -> None:
        self.events.append(("progress", job.id, (progress, eta_seconds)))

    async def job_completed(
        self, job: JobRecord, clip: Path, *, maybe_posted: bool = False
    ) -> DeliveryReceipt:
        self.events.append(("completed", job.id, (clip,)))
        self.maybe_posted.append((job.id, maybe_posted, job.delivery_key))
        if self.completed_hook is not None:
            await self.completed_hook(job)
        if self.fail_completed:
            exc = self.fail_completed.popleft()
            if isinstance(exc, MediaError):  # as the video cog does: it can never be posted
                raise PermanentPostError(exc.message) from exc
            raise exc
        self.clips[job.id] = await asyncio.to_thread(clip.read_bytes)
        self.completed[job.id] = self.completed.get(job.id, 0) + 1
        self.outcome[job.id] = "delivered"
        self._event(job.id).set()
        return DeliveryReceipt(channel_id=555, message_id=next(self.message_ids))

    async def job_notice(self, job: JobRecord, text: str) -> None:
        self.events.append(("notice", job.id, (text,)))

    async def job_ended(self, job: JobRecord, outcome: str, reason: str) -> None:
        self.events.append(("ended", job.id, (outcome, reason)))
        self.outcome[job.id] = outcome
        self._event(job.id).set()

    async def wait(self, job_id: int, within: float = 10.0) -> str:
        await asyncio.wait_for(self._event(job_id).wait(), within)
        return self.outcome[job_id]

    async def wait_all(self, job_ids: list[int], within: float = 30.0) -> None:
        await asyncio.wait_for(asyncio.gather(*(self._event(j).wait() for j in job_ids)), within)

    def kinds(self, job_id: int) -> list[str]:
        return [k for k, j, _ in self.events if j == job_id]


def fast_settings(**overrides: Any) -> TrackerSettings:
    values: dict[str, Any] = {
        "min_poll_interval_seconds": 0.01,
        "max_poll_interval_seconds": 0.5,
        "sweep_interval_seconds": 0.05,
        "error_backoff_base_seconds": 0.01,
        "error_backoff_max_seconds": 0.05,
        "provider_pause_max_seconds": 0.1,
        "shutdown_grace_seconds": 0.5,
        "eta_margin_seconds": 0.005,
        "share_settle_seconds": 0.05,  # several trackers on PostgreSQL: budget re-split often
    }
    values.update(overrides)
    return TrackerSettings(**values)


async def admit(
    db: Database,
    request: NegotiatedRequest,
    *,
    user_id: int = 1,
    guild_id: int | None = 10,
    input_dir: Path | None = None,
    now: datetime | None = None,
    reserve: bool = True,
    lease_to: JobTracker | None = None,
) -> int:
    """What the service layer does: job row + quota reservation in one transaction (and,
    with `lease_to`, the admitting tracker's lease on it, as `JobService.admit` takes)."""
    now = now or datetime.now(UTC)
    async with db.transaction() as conn:
        job_id = await store.insert_job(
            conn,
            guild_id=guild_id,
            channel_id=20 if guild_id is not None else None,
            user_id=user_id,
            request=request,
            input_dir=input_dir,
            origin="discord" if guild_id is not None else "cli",
            now=now,
        )
        if lease_to is not None:
            await lease_to.leases.take(conn, job_id)
        if reserve and guild_id is not None:
            await quota.reserve(
                conn,
                guild_id=guild_id,
                user_id=user_id,
                job_id=job_id,
                seconds=float(request.duration),
                width=request.width,
                height=request.height,
                cost_usd=request.cost_usd,
                role_ids=[],
                now=now,
                default_seconds=10**6,
            )
    return job_id


async def ledger_kinds(db: Database, job_id: int) -> list[str]:
    rows = await db.fetchall(
        "SELECT kind FROM quota_ledger WHERE job_id = ? ORDER BY id", (job_id,)
    )
    return [r["kind"] for r in rows]


async def status_of(db: Database, job_id: int) -> Status:
    job = await store.get_job(db, job_id)
    assert job is not None
    return job.status


async def wait_status(db: Database, job_id: int, *wanted: Status, within: float = 10.0) -> Status:
    for _ in range(int(within / 0.005)):
        current = await status_of(db, job_id)
        if current in wanted:
            return current
        await asyncio.sleep(0.005)
    raise AssertionError(f"job {job_id} stayed {await status_of(db, job_id)}, wanted {wanted}")


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


def make_tracker(
    db: Database,
    data_dir: Path,
    providers: dict[str, Any],
    sink: RecordingSink,
    settings: TrackerSettings | None = None,
    clock: Callable[[], datetime] | None = None,
) -> JobTracker:
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["clock"] = clock
    return JobTracker(
        db, providers, data_dir=data_dir, sink=sink, settings=settings or fast_settings(), **kwargs
    )


__all__ = [
    "CLIP_BYTES",
    "FakeProvider",
    "MediaError",
    "RecordingSink",
    "admit",
    "eventually",
    "fake_limits",
    "fast_settings",
    "ledger_kinds",
    "make_request",
    "make_tracker",
    "status_of",
    "wait_status",
]
