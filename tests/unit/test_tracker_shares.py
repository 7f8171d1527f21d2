"""One provider budget across processes on PostgreSQL (`bot.jobs.tracker.shares`).

Each tracker stands for one process (its own INSTANCE_NAME and connection pool) on one real
PostgreSQL database (tests/backends.py), and all of them call one `FakeProvider`: one API
key, whose calls are recorded with their times. Early polls take every idle call
(`idle_poll_share=1`), so a process with running jobs spends all of the budget it has: what
the provider sees is the sum of the processes' budgets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.db import Database
from bot.jobs.tracker import JobTracker
from bot.jobs.tracker.budget import TokenBucket
from bot.jobs.tracker.shares import fair_share, next_share
from bot.store import shares as share_store
from bot.store.shares import ShareRow
from tests.unit.test_tracker_support import (
    FakeProvider,
    RecordingSink,
    admit,
    eventually,
    fast_settings,
    make_request,
    make_tracker,
)

RATE = 3.0  # the provider's limit, calls per second, for all processes together


def peak_per_second(times: list[float], start: float, end: float) -> int:
    """Most calls in any 1-second window starting at a call between start and end."""
    times = sorted(t for t in times if start <= t <= end)
    best = 0
    j = 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + 1.0:
            j += 1
        best = max(best, j - i)
    return best


# ----- the split itself (pure) -------------------------------------------------------------


def test_fair_share_follows_demand_and_leaves_an_idle_process_a_little() -> None:
    others = [ShareRow(owner="b", share=0.5, demand=9)]
    assert fair_share(29, others) == pytest.approx(30 / 40)
    assert fair_share(0, []) == 1.0
    assert 0 < fair_share(0, [ShareRow(owner="b", share=1.0, demand=1000)]) < 0.001


def test_next_share_lowers_at_once_but_raises_only_into_what_is_free() -> None:
    busy_other = [ShareRow(owner="b", share=0.9, demand=1)]
    # wants 3/4 (demand 5 vs 1), holds 0.05: the other still holds 0.9, so only 0.1 is free
    assert next_share(0.05, 5, busy_other) == pytest.approx(0.1)
    # the other gave way: now the whole fair part
    assert next_share(0.1, 5, [ShareRow(owner="b", share=0.25, demand=1)]) == pytest.approx(0.75)
    # more than fair: lowered to fair whatever is free
    assert next_share(0.9, 1, [ShareRow(owner="b", share=0.0, demand=5)]) == pytest.approx(0.25)
    # a newcomer while everything is held: nothing yet
    assert next_share(0.0, 3, [ShareRow(owner="b", share=1.0, demand=0)]) == 0.0


def test_a_bucket_with_no_share_makes_no_call_and_a_lowered_one_drops_its_bank() -> None:
    bucket = TokenBucket(rate=10, capacity=5, now=0.0)
    bucket.set_share(0.0, 0.0)
    assert not bucket.take(10.0) and bucket.wait(10.0) == float("inf")
    bucket.set_share(1.0, 10.0)
    assert bucket.available(10.5) == pytest.approx(5.0)
    bucket.set_share(0.2, 10.5)  # 2 calls/s, a bank of 1
    assert bucket.available(10.5) == pytest.approx(1.0)
    assert bucket.rate == pytest.approx(2.0)


# ----- several processes, one PostgreSQL database -------------------------------------------


@pytest.fixture
async def pools(pg_url: str) -> AsyncIterator[list[Database]]:
    dbs = [await Database.open(pg_url, pool_size=4) for _ in range(3)]
    try:
        yield dbs
    finally:
        for db in dbs:
            await db.close()


def process(
    db: Database, name: str, tmp_path: Path, provider: FakeProvider, sink: RecordingSink
) -> JobTracker:
    data_dir = tmp_path / name
    data_dir.mkdir()
    settings = fast_settings(
        instance_name=name,
        lease_seconds=6.0,
        share_settle_seconds=0.1,
        requests_per_second={"fake": RATE},
        idle_poll_share=1.0,
        idle_poll_gap_seconds=0.05,
        min_poll_interval_seconds=0.5,
        max_poll_interval_seconds=5.0,
        expected_calls_per_job=1.0,  # submissions paced at the budget, not a part of it
    )
    return make_tracker(db, data_dir, {"fake": provider}, sink, settings)


async def admit_to(db: Database, tracker: JobTracker, count: int, first_user: int) -> list[int]:
    ids = []
    for i in range(count):
        job_id = await admit(
            db, make_request(f"{tracker.settings.instance_name}{i}"), user_id=first_user + i,
            lease_to=tracker,
        )  # fmt: skip
        await tracker.enqueue(job_id)
        ids.append(job_id)
    return ids


async def test_three_processes_stay_within_one_budget_split_by_demand(
    pools: list[Database], tmp_path: Path
) -> None:
    provider = FakeProvider(job_seconds=30.0)  # none ends during the test
    sink = RecordingSink()
    names = ("a", "b", "c")
    trackers = [process(pools[i], n, tmp_path, provider, sink) for i, n in enumerate(names)]
    for t in trackers:
        await t.start()
    try:
        started = time.monotonic()
        await admit_to(pools[0], trackers[0], 6, 100)
        await admit_to(pools[1], trackers[1], 2, 200)
        # c has no job: it keeps a sliver
        await eventually(lambda: provider.count("submit") == 8, within=10)
        steady = time.monotonic()  # every job is running: polls only
        await asyncio.sleep(4.0)
        shares = await share_store.all_shares(pools[0], "fake")
        rates = [t._states["fake"].bucket.rate for t in trackers]
        end = time.monotonic()
    finally:
        for t in trackers:
            await t.stop()
    times = [at for _, _, at in provider.calls]
    # One banked call per process on top of the rate (each bucket holds at least one call).
    assert peak_per_second(times, started, end - 1.0) <= RATE + len(trackers)
    assert sum(shares.values()) <= 1.0 + 1e-9
    assert sum(rates) <= RATE + 1e-6
    assert shares["a"] > shares["b"] > shares["c"] > 0
    assert shares["a"] == pytest.approx(7 / 11, abs=0.05)  # (6+1) / (7+3+1)
    # On average within the budget, and the budget is used, not merely split.
    polls = [t for t in times if steady <= t <= end]
    assert 0.6 * RATE <= len(polls) / (end - steady) <= 1.1 * RATE


async def test_a_stopped_process_gives_its_part_back_and_a_dead_one_loses_it(
    pools: list[Database], tmp_path: Path
) -> None:
    provider = FakeProvider(job_seconds=30.0)
    sink = RecordingSink()
    a = process(pools[0], "a", tmp_path, provider, sink)
    b = process(pools[1], "b", tmp_path, provider, sink)
    c = process(pools[2], "c", tmp_path, provider, sink)
    await a.start()
    assert a._states["fake"].bucket.share == 1.0  # alone: the whole budget
    await b.start()
    await c.start()
    try:
        await admit_to(pools[0], a, 3, 100)
        await eventually(
            lambda: a._states["fake"].bucket.share == pytest.approx(4 / 6, abs=1e-6), within=3
        )
        # b stops gracefully: its part is free at once and the others take it
        await b.stop()
        shares = await share_store.all_shares(pools[0], "fake")
        assert "b" not in shares
        await eventually(
            lambda: a._states["fake"].bucket.share == pytest.approx(4 / 5, abs=1e-6), within=3
        )
        # c dies (no stop, no more re-splits): its row stays until it is lease_seconds old
        c_task = c.leases.shares._task
        assert c_task is not None
        c_task.cancel()
        await asyncio.gather(c_task, return_exceptions=True)
        c.leases.shares._task = None
        await asyncio.sleep(1.0)
        assert "c" in await share_store.all_shares(pools[0], "fake")
        assert a._states["fake"].bucket.share == pytest.approx(4 / 5, abs=1e-6)
        await eventually(lambda: a._states["fake"].bucket.share == 1.0, within=10)
        assert "c" not in await share_store.all_shares(pools[0], "fake")
    finally:
        await a.stop()
        await c.stop()
    assert await share_store.all_shares(pools[0], "fake") == {}
