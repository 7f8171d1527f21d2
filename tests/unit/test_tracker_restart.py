"""Restarts: kill the tracker mid-flight in each state, rebuild from the DB, deliver once."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import quota
from bot.store import jobs as store
from bot.store.jobs import Status
from tests.unit.test_tracker_support import (
    CLIP_BYTES,
    FakeProvider,
    RecordingSink,
    admit,
    fast_settings,
    ledger_kinds,
    make_request,
    make_tracker,
    status_of,
)

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


async def hang() -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize(
    ("stage", "left_in"),
    [
        ("submit", {Status.PENDING}),
        ("status", {Status.SUBMITTED, Status.RUNNING}),
        ("download", {Status.DOWNLOADING}),
        ("deliver", {Status.DELIVERING}),
    ],
)
async def test_kill_mid_flight_then_restart_delivers_exactly_once(
    db, data_dir: Path, stage: str, left_in: set[Status], caplog
) -> None:
    provider = FakeProvider(job_seconds=0.05)
    sink = RecordingSink()
    reached = asyncio.Event()

    async def block(kind: str, job_id: str | None) -> None:
        if kind == stage:
            reached.set()
            await hang()

    async def block_delivery(job) -> None:
        reached.set()
        await hang()

    if stage == "deliver":
        sink.completed_hook = block_delivery
    else:
        provider.hook = block
    first = make_tracker(
        db, data_dir, {"fake": provider}, sink, fast_settings(shutdown_grace_seconds=0)
    )
    await first.start()
    job_id = await admit(db, make_request())
    await first.enqueue(job_id)
    await asyncio.wait_for(reached.wait(), 5)
    await first.stop()  # like a crash: the call in flight is abandoned
    assert await status_of(db, job_id) in left_in
    assert sink.completed == {}

    provider.hook = None
    sink.completed_hook = None
    second = make_tracker(db, data_dir, {"fake": provider}, sink)
    with caplog.at_level(logging.WARNING, logger="bot.jobs.tracker"):
        await second.start()
        try:
            assert await sink.wait(job_id) == "delivered"
            await asyncio.sleep(0.05)
        finally:
            await second.stop()
    assert sink.completed == {job_id: 1}
    assert await status_of(db, job_id) is Status.DELIVERED
    assert await ledger_kinds(db, job_id) == ["reserve", "settle"]
    if stage == "submit":
        # it had been sent once (and never answered): resubmitted, with a warning
        assert provider.count("submit") == 2
        assert any("may run it twice" in r.getMessage() for r in caplog.records)
    else:
        assert provider.count("submit") == 1
    assert not (data_dir / "clips").exists() or not list((data_dir / "clips").iterdir())


async def test_crash_between_post_and_delivered_does_not_post_again(
    db, data_dir: Path, monkeypatch
) -> None:
    provider = FakeProvider()
    sink = RecordingSink()
    real_settle = quota.settle

    async def broken_settle(*args, **kwargs):
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(quota, "settle", broken_settle)
    first = make_tracker(db, data_dir, {"fake": provider}, sink)
    await first.start()
    job_id = await admit(db, make_request())
    await first.enqueue(job_id)
    await sink.wait(job_id)
    await asyncio.sleep(0.05)
    await first.stop()
    job = await store.get_job(db, job_id)
    assert job is not None
    assert job.status is Status.DELIVERING and job.result_message_id == 1000

    monkeypatch.setattr(quota, "settle", real_settle)
    second = make_tracker(db, data_dir, {"fake": provider}, sink)
    await second.start()
    await second.stop()
    assert sink.completed == {job_id: 1}  # not posted a second time
    assert await status_of(db, job_id) is Status.DELIVERED
    assert await ledger_kinds(db, job_id) == ["reserve", "settle"]


async def set_state(db, job_id: int, *path: Status, **fields) -> None:
    for status in path:
        async with db.transaction() as conn:
            await store.transition(
                conn,
                job_id,
                status,
                reason="before the restart",
                now=datetime.now(UTC),
                **(fields if status is Status.SUBMITTED else {}),
            )


async def test_recovery_of_rows_in_each_state(db, data_dir: Path, caplog) -> None:
    provider = FakeProvider(job_seconds=0.02)
    pj_running = await provider.submit(make_request("was running"))
    pj_done = await provider.submit(make_request("was downloading"))
    pj_delivering = await provider.submit(make_request("clip on disk"))
    pj_missing = await provider.submit(make_request("clip lost"))
    pj_posted = await provider.submit(make_request("already posted"))
    provider.calls.clear()

    retried = await admit(db, make_request("retry me"), user_id=1)
    async with db.transaction() as conn:
        await store.update_job(conn, retried, now=datetime.now(UTC), attempts=1)
    leftover_inputs = data_dir / "inputs" / "left"
    leftover_inputs.mkdir(parents=True)
    running = await admit(db, make_request("was running"), user_id=2, input_dir=leftover_inputs)
    await set_state(
        db, running, Status.SUBMITTED, Status.RUNNING, provider_job_id=pj_running.job_id
    )
    downloading = await admit(db, make_request("was downloading"), user_id=3)
    await set_state(
        db, downloading, Status.SUBMITTED, Status.DOWNLOADING, provider_job_id=pj_done.job_id
    )
    on_disk = await admit(db, make_request("clip on disk"), user_id=4)
    await set_state(
        db,
        on_disk,
        Status.SUBMITTED,
        Status.DOWNLOADING,
        Status.DELIVERING,
        provider_job_id=pj_delivering.job_id,
    )
    lost = await admit(db, make_request("clip lost"), user_id=5)
    await set_state(
        db,
        lost,
        Status.SUBMITTED,
        Status.DOWNLOADING,
        Status.DELIVERING,
        provider_job_id=pj_missing.job_id,
    )
    posted = await admit(db, make_request("already posted"), user_id=6)
    await set_state(
        db,
        posted,
        Status.SUBMITTED,
        Status.DOWNLOADING,
        Status.DELIVERING,
        provider_job_id=pj_posted.job_id,
    )
    async with db.transaction() as conn:
        await store.record_delivery(
            conn, posted, channel_id=1, message_id=77, now=datetime.now(UTC)
        )
    orphan = await admit(db, make_request("elsewhere", provider="gone"), user_id=7)

    clips = data_dir / "clips"
    clips.mkdir()
    (clips / f"{on_disk}.mp4").write_bytes(b"kept clip")
    (clips / f"{downloading}.mp4.part").write_bytes(b"half")  # stale partial download
    (clips / "999.mp4").write_bytes(b"orphan")  # a clip of no active job

    sink = RecordingSink()
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink)
    with caplog.at_level(logging.WARNING, logger="bot.jobs.tracker"):
        await tracker.start()
        try:
            assert not (clips / "999.mp4").exists()
            assert not (clips / f"{downloading}.mp4.part").exists()
            assert not leftover_inputs.exists()
            await sink.wait_all([retried, running, downloading, on_disk, lost, orphan])
            await asyncio.sleep(0.05)
        finally:
            await tracker.stop()

    for job_id in (retried, running, downloading, on_disk, lost, posted):
        assert await status_of(db, job_id) is Status.DELIVERED, job_id
        assert await ledger_kinds(db, job_id) == ["reserve", "settle"], job_id
    assert sink.completed == {retried: 1, running: 1, downloading: 1, on_disk: 1, lost: 1}
    assert sink.clips[on_disk] == b"kept clip"  # delivered from disk, not downloaded again
    assert sink.clips[lost] == CLIP_BYTES
    assert posted not in sink.outcome  # never posted twice
    assert await status_of(db, orphan) is Status.FAILED
    assert await ledger_kinds(db, orphan) == ["reserve", "refund"]
    assert (
        "ended",
        orphan,
        ("failed", "the video service `gone` is no longer configured here"),
    ) in sink.events
    downloaded = {j for k, j, _ in provider.calls if k == "download"}
    # not the clip already on disk, nor the one already posted
    assert downloaded == {pj_running.job_id, pj_done.job_id, pj_missing.job_id, "j6"}
    assert [r.prompt for r in provider.submitted[-1:]] == ["retry me"]
    assert any("may run it twice" in r.getMessage() for r in caplog.records)
    events = await store.list_events(db, lost)
    assert [e.to_status for e in events][-3:] == [
        Status.DOWNLOADING,
        Status.DELIVERING,
        Status.DELIVERED,
    ]


async def test_stop_lets_short_calls_finish_and_cuts_long_ones(db, data_dir: Path) -> None:
    provider = FakeProvider(job_seconds=0.01)
    slow = {"download"}

    async def hook(kind: str, job_id: str | None) -> None:
        if kind in slow:
            await asyncio.sleep(0.2 if kind == "download" else 60)

    provider.hook = hook
    sink = RecordingSink()
    tracker = make_tracker(
        db, data_dir, {"fake": provider}, sink, fast_settings(shutdown_grace_seconds=1.0)
    )
    await tracker.start()
    job_id = await admit(db, make_request())
    await tracker.enqueue(job_id)
    for _ in range(1000):
        if provider.count("download"):
            break
        await asyncio.sleep(0.005)
    started = time.monotonic()
    await tracker.stop()
    assert time.monotonic() - started < 0.9  # waited for the 0.2 s download only
    assert await status_of(db, job_id) is Status.DELIVERING  # its result was recorded
    assert sink.completed == {}  # but no new work was started

    slow.clear()
    slow.add("status")
    provider2 = FakeProvider(job_seconds=0.01)
    provider2.hook = hook
    tracker2 = make_tracker(
        db, data_dir, {"fake": provider2}, sink, fast_settings(shutdown_grace_seconds=0.1)
    )
    await tracker2.start()  # the delivering job is posted at once
    other = await admit(db, make_request("slow poll"))
    await tracker2.enqueue(other)
    await sink.wait(job_id)
    for _ in range(1000):
        if provider2.count("status"):
            break
        await asyncio.sleep(0.005)
    started = time.monotonic()
    await tracker2.stop()
    assert time.monotonic() - started < 0.5  # the 60 s call was cut at the grace
    assert await status_of(db, other) in {Status.SUBMITTED, Status.RUNNING}  # resumable
    assert sink.completed == {job_id: 1}


async def test_expired_while_the_bot_was_down(db, data_dir: Path) -> None:
    provider = FakeProvider(job_seconds=0.01)
    old = datetime.now(UTC) - timedelta(hours=30)
    pjob = await provider.submit(make_request())
    job_id = await admit(db, make_request(), now=old)
    async with db.transaction() as conn:
        await store.transition(
            conn, job_id, Status.SUBMITTED, reason="", now=old, provider_job_id=pjob.job_id
        )
    sink = RecordingSink()
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink)
    await tracker.start()
    try:
        assert await sink.wait(job_id) == "expired"
    finally:
        await tracker.stop()
    assert provider.count("status") == 0
    assert await ledger_kinds(db, job_id) == ["reserve", "refund"]
