"""Several processes on one database: job leases in the store, and two trackers sharing jobs.

Each tracker stands for one process (its own INSTANCE_NAME, its own connection pool on
PostgreSQL, its own data directory); the fake provider stands for the one remote service.
A crash is simulated by cancelling every task of a tracker without handing anything back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.db import Database
from bot.jobs.tracker import JobTracker
from bot.store import leases
from bot.store.jobs import Status
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

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)

LEASE = timedelta(seconds=20)


@pytest.fixture
async def db2(db: Database) -> AsyncIterator[Database]:
    """A second process's own connection(s) to the same database."""
    other = await Database.open(db.url if db.dialect == "postgresql" else str(db.path))
    try:
        yield other
    finally:
        await other.close()


async def claim(db: Database, owner: str, now: datetime, **kwargs: object) -> list[int]:
    async with db.transaction() as conn:
        jobs = await leases.claim(conn, owner, now=now, until=now + LEASE, **kwargs)  # type: ignore[arg-type]
    return [job.id for job in jobs]


async def holds(db: Database, owner: str, job_id: int, now: datetime) -> bool:
    async with db.transaction() as conn:
        return await leases.hold(conn, job_id, owner, until=now + LEASE)


# ----- the store ---------------------------------------------------------------------------


async def test_claim_renew_expire_takeover(db: Database, db2: Database) -> None:
    t0 = datetime.now(UTC)
    ids = [await admit(db, make_request(f"p{i}"), user_id=i) for i in range(3)]
    assert await claim(db, "a", t0) == ids
    assert await claim(db2, "b", t0) == []  # held by a
    assert await leases.renew(db, "a", shards="0", now=t0, until=t0 + LEASE) == set(ids)
    assert await claim(db2, "b", t0 + LEASE - timedelta(seconds=1)) == []  # still a's
    assert (await leases.lease_of(db, ids[0]))[0] == "a"

    later = t0 + LEASE + timedelta(seconds=1)  # a stopped beating: its leases expired
    assert await claim(db2, "b", later) == ids
    assert await leases.renew(db, "a", shards="0", now=later, until=later + LEASE) == set()
    assert not await holds(db, "a", ids[0], later)  # a may no longer post it
    assert await holds(db2, "b", ids[0], later)
    owner, until = await leases.lease_of(db, ids[0])
    assert owner == "b" and until == later + LEASE


async def test_concurrent_claims_never_share_a_job(db: Database, db2: Database) -> None:
    t0 = datetime.now(UTC)
    ids = [await admit(db, make_request(f"p{i}"), user_id=i) for i in range(6)]
    for _ in range(3):
        first, second = await asyncio.gather(
            claim(db, "a", t0, limit=3), claim(db2, "b", t0, limit=3)
        )
        assert not set(first) & set(second)
        assert sorted(first + second) == ids
        t0 += LEASE * 2  # both expire: the next round claims everything again


async def test_release_hands_back_at_once_and_ended_jobs_are_not_claimed(
    db: Database, db2: Database
) -> None:
    t0 = datetime.now(UTC)
    ids = [await admit(db, make_request(f"p{i}"), user_id=i) for i in range(3)]
    await leases.renew(db, "a", shards="0,1", now=t0, until=t0 + LEASE)
    await leases.renew(db2, "b", shards=None, now=t0, until=t0 + LEASE)
    assert await claim(db, "a", t0) == ids
    live = await leases.live_instances(db, since=t0 - LEASE, now=t0)
    assert [(i.name, i.shards, i.jobs) for i in live] == [("a", "0,1", 3), ("b", None, 0)]

    await db.execute("UPDATE jobs SET status = 'cancelled' WHERE id = ?", (ids[0],))
    assert await leases.release(db, "a") == 3
    assert await claim(db2, "b", t0) == ids[1:]  # at once, no wait for expiry; not the ended
    live = await leases.live_instances(db, since=t0 - LEASE, now=t0)
    assert [(i.name, i.jobs) for i in live] == [("b", 2)]
    assert await leases.live_instances(db, since=t0 + LEASE, now=t0) == []  # no recent beat


# ----- two trackers ------------------------------------------------------------------------


def two_trackers(
    db: Database, db2: Database, tmp_path: Path, provider: FakeProvider, sink: RecordingSink,
    lease_seconds: float,
) -> tuple[JobTracker, JobTracker]:  # fmt: skip
    made = []
    for name, database in (("a", db), ("b", db2)):
        settings = fast_settings(instance_name=name, lease_seconds=lease_seconds)
        data_dir = tmp_path / name
        data_dir.mkdir()
        made.append(make_tracker(database, data_dir, {"fake": provider}, sink, settings))
    return made[0], made[1]


async def crash(tracker: JobTracker) -> None:
    """A process killed: every task stops, nothing is handed back or written."""
    tasks = [
        tracker._dispatcher,
        tracker.leases._task,
        *tracker._tasks,
        *tracker._resume_retries.values(),
    ]
    for task in tasks:
        if task is not None:
            task.cancel()
    await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)


async def test_crashed_process_jobs_are_taken_over_and_delivered_once(
    db: Database, db2: Database, tmp_path: Path
) -> None:
    provider = FakeProvider(job_seconds=1.0)
    sink = RecordingSink()
    a, b = two_trackers(db, db2, tmp_path, provider, sink, lease_seconds=1.5)
    await a.start()
    await b.start()
    try:
        ids = [await admit(db, make_request(f"p{i}"), user_id=i, lease_to=a) for i in range(3)]
        for job_id in ids:
            await a.enqueue(job_id)  # admitted on a: a holds them
        for job_id in ids:
            await eventually(lambda j=job_id: a._entries[j].job.status is not Status.PENDING)
        assert set(b._entries) == set()
        await crash(a)
        crashed = time.monotonic()
        await sink.wait_all(ids, within=15)
        taken_over = time.monotonic() - crashed
        await asyncio.sleep(0.2)
    finally:
        await b.stop()
    assert sink.completed == {job_id: 1 for job_id in ids}
    assert provider.count("submit") == 3  # b polled a's submissions, never sent them again
    for job_id in ids:
        assert await status_of(db, job_id) is Status.DELIVERED
        assert await ledger_kinds(db, job_id) == ["reserve", "settle"]
    assert taken_over < 1.5 + 0.5 + 2.0  # lease + one beat + the clip's remaining work


async def test_graceful_stop_hands_leases_back_at_once(
    db: Database, db2: Database, tmp_path: Path
) -> None:
    provider = FakeProvider(job_seconds=0.3)
    sink = RecordingSink()
    a, b = two_trackers(db, db2, tmp_path, provider, sink, lease_seconds=60)  # beats: 20 s
    await a.start()
    await b.start()
    try:
        ids = [await admit(db, make_request(f"p{i}"), user_id=i, lease_to=a) for i in range(2)]
        for job_id in ids:
            await a.enqueue(job_id)
        await b.leases.beat()
        assert set(b._entries) == set()  # a holds them
        live = await leases.live_instances(
            db, since=datetime.now(UTC) - LEASE, now=datetime.now(UTC)
        )
        assert {(i.name, i.jobs) for i in live} == {("a", 2), ("b", 0)}
        await a.stop()
        # Handed back at once: free, or (PostgreSQL) already b's, woken by the release.
        assert all([(await leases.lease_of(db, j))[0] in (None, "b") for j in ids])
        await b.leases.beat()  # b's next beat takes them, long before a's lease would expire
        assert set(b._entries) == set(ids)
        await sink.wait_all(ids, within=10)
    finally:
        await b.stop()
    assert sink.completed == {job_id: 1 for job_id in ids}


async def test_a_process_that_lost_its_lease_does_not_post(
    db: Database, db2: Database, tmp_path: Path
) -> None:
    provider = FakeProvider(job_seconds=0.05)
    sink = RecordingSink()
    downloading = asyncio.Event()
    go_on = asyncio.Event()

    async def pause_download(kind: str, job_id: str | None) -> None:
        if kind == "download":
            downloading.set()
            await go_on.wait()

    provider.hook = pause_download
    a, _ = two_trackers(db, db2, tmp_path, provider, sink, lease_seconds=60)
    await a.start()
    try:
        job_id = await admit(db, make_request("p"), user_id=1)
        await a.enqueue(job_id)
        await asyncio.wait_for(downloading.wait(), 5)
        # a stalls past its lease; b claims the job (as its clock sees the lease expired)
        assert await claim(db2, "b", datetime.now(UTC) + timedelta(seconds=61)) == [job_id]
        go_on.set()
        await eventually(lambda: job_id not in a._entries)
        await asyncio.sleep(0.1)
    finally:
        await a.stop()
    assert sink.completed == {}  # a downloaded the clip but did not post it
    assert await status_of(db, job_id) is Status.DELIVERING
    assert (await leases.lease_of(db, job_id))[0] == "b"  # a's stop released only its own
    assert a.leases.lost == 1


async def test_cancel_written_elsewhere_is_noticed_by_the_holder(
    db: Database, db2: Database, tmp_path: Path
) -> None:
    provider = FakeProvider(job_seconds=30)
    sink = RecordingSink()
    a, b = two_trackers(db, db2, tmp_path, provider, sink, lease_seconds=60)
    await a.start()
    await b.start()
    try:
        job_id = await admit(db, make_request("p"), user_id=1, lease_to=a)
        await a.enqueue(job_id)
        await eventually(lambda: a._entries[job_id].job.status is not Status.PENDING)
        assert await b.cancel(job_id, by=7, reason="cancelled by the member")  # b's button
        if db.dialect == "sqlite":  # no NOTIFY: the holder notices at its next heartbeat
            assert job_id in a._entries
            await a.leases.beat()
            assert job_id not in a._entries
        else:  # PostgreSQL: the NOTIFY wakes the holder at once (test_tracker_wakeups.py)
            await eventually(lambda: job_id not in a._entries, within=2)
        await eventually(lambda: len(provider.cancelled) == 1)
    finally:
        await a.stop()
        await b.stop()
    assert await status_of(db, job_id) is Status.CANCELLED
    assert await ledger_kinds(db, job_id) == ["reserve", "refund"]
    assert sink.completed == {}


async def test_a_new_job_whose_row_is_busy_at_enqueue_is_still_driven(
    db: Database, db2: Database, tmp_path: Path
) -> None:
    """The admitting process enqueues its new job while another transaction has the row
    (another process's beat, claim or cancel): the enqueue waits for the row instead of
    skipping it as "held elsewhere" — the job is this process's and nobody else would ever
    drive it (seen in the 1,000-job PostgreSQL run: 10 jobs pending for ever)."""
    provider = FakeProvider(job_seconds=0.1)
    sink = RecordingSink()
    a, _ = two_trackers(db, db2, tmp_path, provider, sink, lease_seconds=60)  # beats: 20 s
    await a.start()
    try:
        job_id = await admit(db, make_request("busy row"), lease_to=a)
        async with db2.transaction() as other:  # holds the row (PostgreSQL) / the writer lock
            await other.execute("UPDATE jobs SET updated_at = updated_at WHERE id = ?", (job_id,))
            enqueue = asyncio.create_task(a.enqueue(job_id))
            await asyncio.sleep(0.3)
        await asyncio.wait_for(enqueue, 10)
        assert job_id in a._entries or job_id in sink.completed
        await sink.wait_all([job_id], within=10)
    finally:
        await a.stop()
    assert sink.completed == {job_id: 1}
    assert await status_of(db, job_id) is Status.DELIVERED


async def test_a_held_job_whose_enqueue_was_lost_is_taken_on_at_the_next_beat(
    db: Database, db2: Database, tmp_path: Path
) -> None:
    """Admitted and leased here, but never enqueued (the hand-over failed after the commit):
    the other processes leave it alone (it is held) and, before, so did this one until a
    restart. One beat later than the one that first sees it untracked, it is driven."""
    provider = FakeProvider(job_seconds=0.1)
    sink = RecordingSink()
    a, _ = two_trackers(db, db2, tmp_path, provider, sink, lease_seconds=60)  # beats: 20 s
    await a.start()
    try:
        job_id = await admit(db, make_request("lost enqueue"), lease_to=a)
        await a.leases.beat()
        assert job_id not in a._entries  # maybe being enqueued right now: not yet
        await a.leases.beat()
        assert job_id in a._entries and a.leases.adopted == 1
        await sink.wait_all([job_id], within=10)
        await a.leases.beat()
        assert a.leases.adopted == 1
    finally:
        await a.stop()
    assert sink.completed == {job_id: 1}
    assert await status_of(db, job_id) is Status.DELIVERED


async def test_a_held_job_waiting_for_its_resume_retry_is_left_to_it(
    db: Database, db2: Database, tmp_path: Path
) -> None:
    """A job whose resume failed waits for its own retry (with its failure count, which in
    the end fails and refunds it): the beat does not start a second resume beside it."""
    provider = FakeProvider(job_seconds=0.1)
    sink = RecordingSink()
    a, _ = two_trackers(db, db2, tmp_path, provider, sink, lease_seconds=60)
    await a.start()
    retry = asyncio.create_task(asyncio.sleep(60))
    try:
        job_id = await admit(db, make_request("retrying"), lease_to=a)
        a._resume_retries[job_id] = retry  # as recovery.resume keeps its retry
        for _ in range(3):
            await a.leases.beat()
        assert job_id not in a._entries and a.leases.adopted == 0
    finally:
        retry.cancel()
        await a.stop()
