"""Wake-ups between processes on PostgreSQL (LISTEN/NOTIFY): new jobs and cancels reach the
other processes at once, not at their next lease beat.

Each tracker stands for one process (its own INSTANCE_NAME, connection pool and data
directory) on one real PostgreSQL database (tests/backends.py); the lease beat is set to
20 s, so anything that happens within a second was woken by a notification.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.db import Database
from bot.jobs.tracker import JobTracker
from bot.store import jobs as job_store
from bot.store import wakeups
from bot.store.jobs import Status
from bot.store.leases import lease_of
from tests.unit.test_tracker_support import (
    FakeProvider,
    RecordingSink,
    admit,
    eventually,
    fast_settings,
    ledger_kinds,
    make_request,
    make_tracker,
    status_of,
)

LEASE_SECONDS = 60.0  # one beat every 20 s


@pytest.fixture
async def dbs(pg_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two processes' own pools on one PostgreSQL database."""
    a = await Database.open(pg_url, pool_size=4)
    b = await Database.open(pg_url, pool_size=4)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def tracker(
    db: Database, name: str, tmp_path: Path, provider: FakeProvider, sink: RecordingSink
) -> JobTracker:
    data_dir = tmp_path / name
    data_dir.mkdir()
    settings = fast_settings(instance_name=name, lease_seconds=LEASE_SECONDS)
    return make_tracker(db, data_dir, {"fake": provider}, sink, settings)


async def test_notify_fires_on_commit_only(dbs: tuple[Database, Database]) -> None:
    db, _ = dbs
    heard: list[tuple[str, int | None]] = []
    listener = wakeups.Listener(db.url, lambda kind, job_id: heard.append((kind, job_id)))
    await listener.start()
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await job_store.insert_job(
                    conn, guild_id=10, channel_id=20, user_id=1,
                    request=make_request("never"), input_dir=None, now=datetime.now(UTC),
                )  # fmt: skip
                raise RuntimeError("roll back")
        job_id = await admit(db, make_request("p"), user_id=2)
        await eventually(lambda: ("new", job_id) in heard, within=2)
        async with db.transaction() as conn:
            await job_store.transition(
                conn, job_id, Status.CANCELLED, reason="test", now=datetime.now(UTC)
            )
        await eventually(lambda: ("cancel", job_id) in heard, within=2)
        await asyncio.sleep(0.1)
    finally:
        await listener.stop()
    assert heard == [("new", job_id), ("cancel", job_id)]  # none rolled back


async def test_job_admitted_elsewhere_is_claimed_well_before_a_beat(
    dbs: tuple[Database, Database], tmp_path: Path
) -> None:
    db_a, db_b = dbs
    provider = FakeProvider(job_seconds=0.05)
    sink = RecordingSink()
    b = tracker(db_b, "b", tmp_path, provider, sink)
    await b.start()
    try:
        beats = b.leases.beats
        pickups = []
        for i in range(3):
            admitted = time.monotonic()
            job_id = await admit(db_a, make_request(f"p{i}"), user_id=i)  # via A's handle
            await eventually(lambda j=job_id: j in b._entries or j in sink.completed, within=2)
            pickups.append(time.monotonic() - admitted)
        await sink.wait_all([1, 2, 3], within=10)
        assert b.leases.beats == beats  # no heartbeat ran: the NOTIFY woke it
    finally:
        await b.stop()
    assert max(pickups) < 1.0, pickups
    assert sink.completed == {1: 1, 2: 1, 3: 1}
    for job_id in (1, 2, 3):
        assert await status_of(db_a, job_id) is Status.DELIVERED


async def test_admitting_process_keeps_its_job(
    dbs: tuple[Database, Database], tmp_path: Path
) -> None:
    db_a, db_b = dbs
    provider = FakeProvider(job_seconds=0.2)
    sink = RecordingSink()
    a = tracker(db_a, "a", tmp_path, provider, sink)
    b = tracker(db_b, "b", tmp_path, provider, sink)
    await a.start()
    await b.start()
    try:
        ids = [await admit(db_a, make_request(f"p{i}"), user_id=i, lease_to=a) for i in range(4)]
        for job_id in ids:
            await a.enqueue(job_id)
        await sink.wait_all(ids, within=10)
        assert b.leases.wakeups >= 1  # b heard the NOTIFYs, and left the jobs to a
    finally:
        await a.stop()
        await b.stop()
    assert sink.completed == {job_id: 1 for job_id in ids}
    assert provider.count("submit") == 4


async def test_cancel_written_elsewhere_reaches_the_holder_at_once(
    dbs: tuple[Database, Database], tmp_path: Path
) -> None:
    db_a, db_b = dbs
    provider = FakeProvider(job_seconds=30)
    sink = RecordingSink()
    a = tracker(db_a, "a", tmp_path, provider, sink)
    b = tracker(db_b, "b", tmp_path, provider, sink)
    await a.start()
    await b.start()
    try:
        job_id = await admit(db_a, make_request("p"), user_id=1, lease_to=a)
        await a.enqueue(job_id)
        await eventually(lambda: a._entries[job_id].job.status is not Status.PENDING)
        beats = a.leases.beats
        cancelled = time.monotonic()
        assert await b.cancel(job_id, by=7, reason="cancelled by the member")  # b's button
        await eventually(lambda: job_id not in a._entries, within=2)
        noticed = time.monotonic() - cancelled
        assert a.leases.beats == beats
        await eventually(lambda: len(provider.cancelled) == 1)
    finally:
        await a.stop()
        await b.stop()
    assert noticed < 1.0
    assert await status_of(db_a, job_id) is Status.CANCELLED
    assert await ledger_kinds(db_a, job_id) == ["reserve", "refund"]
    assert sink.completed == {}


async def test_leases_handed_back_at_a_graceful_stop_are_claimed_at_once(
    dbs: tuple[Database, Database], tmp_path: Path
) -> None:
    """A SIGTERM hands a's leases back; b takes the jobs on at the NOTIFY, not at its next
    beat (20 s here). Found by bench/takeover.py: after a SIGTERM the others waited for a
    beat (up to a third of LEASE_SECONDS)."""
    db_a, db_b = dbs
    provider = FakeProvider(job_seconds=30)
    sink = RecordingSink()
    a = tracker(db_a, "a", tmp_path, provider, sink)
    b = tracker(db_b, "b", tmp_path, provider, sink)
    await a.start()
    await b.start()
    try:
        ids = [await admit(db_a, make_request(f"p{i}"), user_id=i, lease_to=a) for i in range(2)]
        for job_id in ids:
            await a.enqueue(job_id)
        await eventually(lambda: all(a._entries[j].job.status is not Status.PENDING for j in ids))
        beats = b.leases.beats
        stopped = time.monotonic()
        await a.stop()
        await eventually(lambda: all(j in b._entries for j in ids), within=3)
        taken = time.monotonic() - stopped
        assert b.leases.beats == beats  # no heartbeat ran: the NOTIFY woke it
        for job_id in ids:
            assert (await lease_of(db_b, job_id))[0] == "b"
    finally:
        await a.stop()
        await b.stop()
    assert taken < 1.0, taken


async def test_listener_reconnects_when_its_connection_drops(
    dbs: tuple[Database, Database], tmp_path: Path
) -> None:
    db_a, db_b = dbs
    provider = FakeProvider(job_seconds=0.05)
    sink = RecordingSink()
    b = tracker(db_b, "b", tmp_path, provider, sink)
    await b.start()
    try:
        listener = b.leases.listener
        assert listener is not None and listener.connects == 1
        listener.retry_seconds = 0.05
        # the server ends the listening session (as on a restart or a failover)
        await db_a.fetchval("SELECT pg_terminate_backend(?)", (listener.backend_pid,))
        await eventually(lambda: listener.connects == 2, within=5)
        await eventually(lambda: b.leases.beats == 1)  # the rescan after a reconnect
        admitted = time.monotonic()
        job_id = await admit(db_a, make_request("after"), user_id=1)
        await eventually(lambda: job_id in b._entries or job_id in sink.completed, within=2)
        pickup = time.monotonic() - admitted
        await sink.wait_all([job_id], within=10)
    finally:
        await b.stop()
    assert pickup < 1.0
    assert sink.completed == {job_id: 1}
