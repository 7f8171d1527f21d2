"""Issue 13 items 4, 5, 8: jobs that fail to resume or to be handed over are retried (or
refunded), and a submission whose answer was lost is never resubmitted silently."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.db import utcnow
from bot.jobs.service import Requester, RequestRefused, VideoService
from bot.jobs.tracker import recovery
from bot.jobs.tracker.delivery import Delivery
from bot.providers.base import OutcomeUnknownError, ProviderJob
from bot.store import jobs as store
from bot.store.jobs import Status
from tests.unit.test_tracker_support import (
    FakeJob,
    FakeProvider,
    RecordingSink,
    admit,
    fast_settings,
    ledger_kinds,
    make_request,
    make_tracker,
    status_of,
    wait_status,
)

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def fail_once(monkeypatch: Any, target: Any, name: str, exc: Exception) -> list[int]:
    """Patch `target.name` (an async function) to raise `exc` on its first call."""
    original = getattr(target, name)
    calls = [0]

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise exc
        return await original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)
    return calls


# ----- item 4: a job that fails to resume is retried ----------------------------------------


async def test_a_job_that_fails_to_resume_is_retried(db, data_dir, monkeypatch) -> None:
    provider = FakeProvider(job_seconds=0.02)
    sink = RecordingSink()
    job_id = await admit(db, make_request())
    calls = fail_once(monkeypatch, recovery, "recover", RuntimeError("database is locked"))
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink)
    await tracker.start()
    try:
        assert await asyncio.wait_for(sink.wait(job_id), 5) == "delivered"
    finally:
        await tracker.stop()
    assert calls[0] >= 2
    assert sink.completed == {job_id: 1}


async def test_resume_half_done_leaves_no_stale_entry(db, data_dir, monkeypatch) -> None:
    """recover() failing after it registered the job must not block the retry."""
    provider = FakeProvider(job_seconds=0.02)
    sink = RecordingSink()
    inputs = data_dir / "inputs" / "x"
    inputs.mkdir(parents=True)
    job_id = await admit(db, make_request(), input_dir=inputs)
    async with db.transaction() as conn:
        await store.transition(
            conn,
            job_id,
            Status.SUBMITTED,
            reason="test",
            now=utcnow(),
            provider_job_id="j1",
            provider_data={"n": "j1"},
        )
    provider.jobs["j1"] = FakeJob("j1", 0.0, 0.0, make_request())
    fail_once(monkeypatch, store, "update_job", RuntimeError("disk I/O error"))
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink)
    await tracker.start()
    try:
        assert await asyncio.wait_for(sink.wait(job_id), 5) == "delivered"
    finally:
        await tracker.stop()


async def test_marking_a_posted_job_delivered_at_start_is_retried(
    db, data_dir, monkeypatch
) -> None:
    provider = FakeProvider()
    sink = RecordingSink()
    job_id = await admit(db, make_request())
    now = utcnow()
    async with db.transaction() as conn:
        for status in (Status.SUBMITTED, Status.DOWNLOADING, Status.DELIVERING):
            await store.transition(
                conn, job_id, status, reason="test", now=now, provider_job_id="j1"
            )
        await store.update_job(conn, job_id, now=now, result_message_id=77, result_channel_id=5)
    fail_once(monkeypatch, Delivery, "mark_delivered", RuntimeError("database is locked"))
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink)
    await tracker.start()
    try:
        assert await wait_status(db, job_id, Status.DELIVERED, within=5) is Status.DELIVERED
    finally:
        await tracker.stop()
    assert await ledger_kinds(db, job_id) == ["reserve", "settle"]


async def test_a_job_that_never_resumes_is_failed_and_refunded(db, data_dir, monkeypatch) -> None:
    provider = FakeProvider()
    sink = RecordingSink()
    job_id = await admit(db, make_request())

    async def broken(tracker: Any, job: Any) -> None:
        raise RuntimeError("always broken")

    monkeypatch.setattr(recovery, "recover", broken)
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink, fast_settings())
    await tracker.start()
    try:
        assert await asyncio.wait_for(sink.wait(job_id), 5) == "failed"
    finally:
        await tracker.stop()
    assert await ledger_kinds(db, job_id) == ["reserve", "refund"]


# ----- item 5: the hand-over to the tracker after the commit --------------------------------


async def test_enqueue_that_fails_once_still_runs_the_job(db, data_dir, monkeypatch) -> None:
    provider = FakeProvider(job_seconds=0.02)
    sink = RecordingSink()
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink)
    await tracker.start()
    try:
        job_id = await admit(db, make_request())
        fail_once(monkeypatch, store, "get_job", RuntimeError("database is locked"))
        await tracker.enqueue(job_id)  # must not raise: the job is the tracker's now
        assert await asyncio.wait_for(sink.wait(job_id), 5) == "delivered"
    finally:
        await tracker.stop()


def make_service(db, data_dir, tracker, provider) -> VideoService:
    return VideoService(
        db,
        {provider.name: provider},
        tracker,
        data_dir=data_dir,
        default_provider=provider.name,
        default_quota_seconds=10**6,
        max_active_per_member=5,
    )


async def test_a_failed_hand_over_is_refunded_and_says_so(db, data_dir, monkeypatch) -> None:
    provider = FakeProvider()
    sink = RecordingSink()
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink)
    service = make_service(db, data_dir, tracker, provider)

    async def broken_enqueue(job_id: int) -> None:
        raise RuntimeError("tracker exploded")

    monkeypatch.setattr(tracker, "enqueue", broken_enqueue)
    who = Requester(user_id=1, guild_id=10, channel_id=20)
    with pytest.raises(RequestRefused) as info:
        await service.admit(who, make_request(), input_dir=None)
    assert "nothing was charged" in info.value.message.lower()
    job_id = await db.fetchval("SELECT MAX(id) FROM jobs")
    assert await status_of(db, job_id) is Status.CANCELLED
    assert await ledger_kinds(db, job_id) == ["reserve", "refund"]


async def test_a_failed_hand_over_that_cannot_be_refunded_says_it_runs(
    db, data_dir, monkeypatch
) -> None:
    provider = FakeProvider()
    sink = RecordingSink()
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink)
    service = make_service(db, data_dir, tracker, provider)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracker exploded")

    monkeypatch.setattr(tracker, "enqueue", broken)
    monkeypatch.setattr(tracker, "cancel", broken)
    who = Requester(user_id=1, guild_id=10, channel_id=20)
    admitted = await service.admit(who, make_request(), input_dir=None)
    assert admitted.note is not None and "will still" in admitted.note
    assert await status_of(db, admitted.job_id) is Status.PENDING


# ----- item 8: a submission whose answer was lost -------------------------------------------


class LookupProvider(FakeProvider):
    """A provider whose API can list recent jobs: the lost submission is found there."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.lookups = 0
        self.lose_answer = 1

    async def submit(self, request):  # type: ignore[no-untyped-def]
        pjob = await super().submit(request)
        if self.lose_answer:
            self.lose_answer -= 1
            raise OutcomeUnknownError("fake: no answer (ReadTimeout)")
        return pjob

    async def find_submission(self, request, since) -> ProviderJob | None:  # type: ignore[no-untyped-def]
        self.lookups += 1
        for job_id, fake in self.jobs.items():
            if fake.request == request:
                return ProviderJob(provider=self.name, job_id=job_id, data={"n": job_id})
        return None


async def test_lost_submission_answer_is_found_at_the_provider(db, data_dir) -> None:
    provider = LookupProvider(job_seconds=0.02)
    sink = RecordingSink()
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink)
    await tracker.start()
    try:
        job_id = await admit(db, make_request())
        await tracker.enqueue(job_id)
        assert await asyncio.wait_for(sink.wait(job_id), 5) == "delivered"
    finally:
        await tracker.stop()
    assert provider.count("submit") == 1  # adopted, not resubmitted
    assert provider.lookups == 1
    job = await store.get_job(db, job_id)
    assert job is not None and job.provider_job_id == "j1"


async def test_lost_submission_without_lookup_tells_member_and_mod_log(db, data_dir) -> None:
    provider = FakeProvider(job_seconds=0.02)
    provider.fail_next("submit", OutcomeUnknownError("fake: no answer (ReadTimeout)"))
    sink = RecordingSink()
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink)
    await tracker.start()
    try:
        job_id = await admit(db, make_request())
        await tracker.enqueue(job_id)
        assert await asyncio.wait_for(sink.wait(job_id), 5) == "delivered"
    finally:
        await tracker.stop()
    notices = [e for e in sink.events if e[0] == "notice" and e[1] == job_id]
    assert notices and "twice" in notices[0][2][0]
    audit = await db.fetchall("SELECT * FROM audit_log WHERE kind = 'submission_unknown'")
    assert len(audit) == 1


async def test_shutdown_waits_for_a_slow_submit(db, data_dir) -> None:
    provider = FakeProvider(job_seconds=0.02)
    sink = RecordingSink()
    entered = asyncio.Event()

    async def slow(kind: str, job_id: str | None) -> None:
        if kind == "submit":
            entered.set()
            await asyncio.sleep(0.6)

    provider.hook = slow
    tracker = make_tracker(
        db,
        data_dir,
        {"fake": provider},
        sink,
        fast_settings(shutdown_grace_seconds=0.05, inflight_grace_seconds=3.0),
    )
    await tracker.start()
    job_id = await admit(db, make_request())
    await tracker.enqueue(job_id)
    await asyncio.wait_for(entered.wait(), 5)
    await tracker.stop()
    job = await store.get_job(db, job_id)
    assert job is not None and job.status is Status.SUBMITTED and job.provider_job_id == "j1"


async def _stop_during_submit(db, data_dir, provider) -> int:
    """Stop the tracker (no grace) while the provider is accepting the job: answer lost."""
    sink = RecordingSink()
    accepted = asyncio.Event()
    original = provider.submit

    async def submit_then_hang(request):  # type: ignore[no-untyped-def]
        await original(request)
        accepted.set()
        await asyncio.Event().wait()

    provider.submit = submit_then_hang
    first = make_tracker(
        db,
        data_dir,
        {"fake": provider},
        sink,
        fast_settings(shutdown_grace_seconds=0, inflight_grace_seconds=0),
    )
    await first.start()
    job_id = await admit(db, make_request())
    await first.enqueue(job_id)
    await asyncio.wait_for(accepted.wait(), 5)
    await first.stop()
    provider.submit = original
    assert await status_of(db, job_id) is Status.PENDING
    return job_id


async def test_restart_after_an_interrupted_submit_finds_it_at_the_provider(db, data_dir) -> None:
    provider = LookupProvider(job_seconds=0.02)
    provider.lose_answer = 0
    job_id = await _stop_during_submit(db, data_dir, provider)
    sink = RecordingSink()
    second = make_tracker(db, data_dir, {"fake": provider}, sink)
    await second.start()
    try:
        assert await asyncio.wait_for(sink.wait(job_id), 5) == "delivered"
    finally:
        await second.stop()
    assert len(provider.jobs) == 1 and provider.count("submit") == 1
    assert provider.lookups == 1
    assert "notice" not in sink.kinds(job_id)


async def test_restart_after_an_interrupted_submit_without_lookup_says_so(db, data_dir) -> None:
    provider = FakeProvider(job_seconds=0.02)
    job_id = await _stop_during_submit(db, data_dir, provider)
    sink = RecordingSink()
    second = make_tracker(db, data_dir, {"fake": provider}, sink)
    await second.start()
    try:
        assert await asyncio.wait_for(sink.wait(job_id), 5) == "delivered"
    finally:
        await second.stop()
    assert "notice" in sink.kinds(job_id)
    audit = await db.fetchall(
        "SELECT * FROM audit_log WHERE kind = 'submission_unknown' AND job_id = ?", (job_id,)
    )
    assert len(audit) == 1


def test_the_bot_gives_in_flight_submissions_twenty_seconds(monkeypatch) -> None:
    from bot.config import Settings
    from bot.jobs.tracker import tracker_settings_from

    monkeypatch.delenv("SHUTDOWN_GRACE_SECONDS", raising=False)
    settings = Settings(_env_file=None, DISCORD_TOKEN="x")  # type: ignore[call-arg]
    tracker = tracker_settings_from(settings, {})
    assert tracker.inflight_grace_seconds == 20.0
    assert tracker.shutdown_grace_seconds == 5.0
    monkeypatch.setenv("SHUTDOWN_GRACE_SECONDS", "45")
    assert tracker_settings_from(Settings(_env_file=None), {}).inflight_grace_seconds == 45.0  # type: ignore[call-arg]
