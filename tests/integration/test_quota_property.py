"""Property: under any interleaving of reserve / settle / refund / reset from concurrent tasks
on one Database, a member's balance never goes negative, the open-job cap holds, and the
ledger sums match an independent model of what each job should cost."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import quota
from bot.db import MIGRATIONS_DIR, Database, to_db_time
from bot.store import guilds as guild_store
from bot.store import quotas as ledger

T0 = datetime(2025, 6, 1, tzinfo=UTC)
WINDOW = 3600
USERS = (1, 2)
_guilds = itertools.count(1)

op = st.one_of(
    st.tuples(
        st.just("reserve"),
        st.integers(1, 25),  # seconds
        st.booleans(),  # HD
        st.sampled_from(USERS),
    ),
    st.tuples(st.just("settle"), st.floats(0, 1.5), st.integers(0, 20)),  # fraction, pick
    st.tuples(st.just("refund"), st.integers(0, 20)),
    st.tuples(st.just("reset"), st.sampled_from(USERS)),
    st.tuples(st.just("tick"), st.integers(1, 1800)),  # seconds of clock
)

HAS_SPEND_TABLE = (MIGRATIONS_DIR / "0002_quota.sql").exists()  # see test_quota_migration


@dataclass
class Job:
    user_id: int
    raw: float
    weight: float
    reserved_at: datetime
    state: str = "open"  # open | settled | refunded
    final: float = 0.0


@dataclass
class World:
    guild_id: int
    allowance: int
    cap: int
    now: datetime = T0
    jobs: dict[int, Job] = field(default_factory=dict)
    resets: dict[int, int] = field(default_factory=dict)  # user → ledger id of latest reset

    def tick(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)


async def check_invariants(world: World, conn) -> None:
    """Inside the writer's transaction: nothing else can interleave with these reads."""
    for user_id in USERS:
        got = await quota.usage_in(
            conn,
            guild_id=world.guild_id,
            user_id=user_id,
            role_ids=(),
            now=world.now,
            default_seconds=world.allowance,
        )
        counted = got.used + got.reserved
        assert counted <= world.allowance + 1e-6, "balance went negative"
        assert got.active_jobs <= world.cap
        # An independent model of the same figure.
        start = world.now - timedelta(seconds=WINDOW)
        reset_id = world.resets.get(user_id, 0)
        expected = 0.0
        open_jobs = 0
        for job_id, job in world.jobs.items():
            if job.user_id != user_id:
                continue
            open_jobs += job.state == "open"
            reserve_id = await conn.fetchone(
                "SELECT id FROM quota_ledger WHERE job_id = ? AND kind = 'reserve'", (job_id,)
            )
            if job.reserved_at <= start or reserve_id[0] < reset_id:
                continue
            if job.state == "open":
                expected += job.raw * job.weight
            elif job.state == "settled":
                expected += min(job.final, job.raw) * job.weight
        assert counted == pytest.approx(expected, abs=1e-6)
        assert got.active_jobs == open_jobs


async def run_task(world: World, db: Database, ops: list[tuple]) -> None:
    mine: list[int] = []
    for step in ops:
        kind = step[0]
        await asyncio.sleep(0)  # let the other tasks run between steps
        async with db.transaction() as conn:
            if kind == "tick":
                world.tick(step[1])
            elif kind == "reserve":
                _, seconds, hd, user_id = step
                at = to_db_time(world.now)
                job_id = await conn.fetchval(
                    "INSERT INTO jobs (guild_id, user_id, provider, mode, prompt, params_json,"
                    " created_at, updated_at) VALUES (?, ?, 'simulator', 'text-to-video', 'p',"
                    " '{}', ?, ?) RETURNING id",
                    (world.guild_id, user_id, at, at),
                )
                size = (1920, 1080) if hd else (1280, 720)
                try:
                    await quota.reserve(
                        conn,
                        guild_id=world.guild_id,
                        user_id=user_id,
                        job_id=job_id,
                        seconds=seconds,
                        width=size[0],
                        height=size[1],
                        cost_usd=seconds * 0.02,
                        role_ids=(),
                        now=world.now,
                        default_seconds=world.allowance,
                    )
                except quota.QuotaExceeded:
                    await conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                else:
                    world.jobs[job_id] = Job(user_id, seconds, 2.0 if hd else 1.0, world.now)
                    mine.append(job_id)
            elif kind in ("settle", "refund") and mine:
                job_id = mine[step[-1] % len(mine)]
                job = world.jobs[job_id]
                if kind == "settle":
                    final = job.raw * step[1]
                    await quota.settle(
                        conn, job_id, seconds=final, cost_usd=final * 0.02, now=world.now
                    )
                    if job.state == "open":
                        job.state, job.final = "settled", final
                else:
                    await quota.refund(conn, job_id, reason="failed", now=world.now)
                    if job.state == "open":
                        job.state = "refunded"
            elif kind == "reset":
                user_id = step[1]
                await quota.reset_member(
                    conn, guild_id=world.guild_id, user_id=user_id, now=world.now
                )
                world.resets[user_id] = await conn.fetchval(
                    "SELECT MAX(id) FROM quota_ledger WHERE kind='reset'"
                    " AND guild_id = ? AND user_id = ?",
                    (world.guild_id, user_id),
                )
            await check_invariants(world, conn)


async def scenario(path: Path, allowance: int, cap: int, tasks: list[list[tuple]]) -> None:
    db = await Database.open(path)
    try:
        await db.migrate()
        world = World(guild_id=next(_guilds), allowance=allowance, cap=cap)
        await guild_store.update_guild_settings(
            db, world.guild_id, quota_window_seconds=WINDOW, max_concurrent_jobs=cap
        )
        await asyncio.gather(*(run_task(world, db, ops) for ops in tasks))
        # Ledger sums per job match the model exactly.
        for job_id, job in world.jobs.items():
            rows = await db.fetchall(
                "SELECT kind, seconds, cost_usd FROM quota_ledger WHERE job_id = ? ORDER BY id",
                (job_id,),
            )
            kinds = [r["kind"] for r in rows]
            total = sum(r["seconds"] for r in rows)
            cost = sum(r["cost_usd"] for r in rows)
            if job.state == "open":
                assert kinds == ["reserve"]
                assert total == pytest.approx(job.raw * job.weight)
            elif job.state == "settled":
                assert kinds == ["reserve", "settle"]
                assert total == pytest.approx(min(job.final, job.raw) * job.weight)
                # The quote is a ceiling (issue 13 item 9): never more than reserved.
                assert cost == pytest.approx(min(job.final, job.raw) * 0.02)
            else:
                assert kinds == ["reserve", "refund"]
                assert (total, cost) == (pytest.approx(0), pytest.approx(0))
        # The monthly guild spend kept by the trigger equals the ledger's own sums.
        months = {ledger.month_key(job.reserved_at) for job in world.jobs.values()}
        async with db.transaction() as conn:
            for month in months if HAS_SPEND_TABLE else ():
                kept = await ledger.guild_spend(conn, world.guild_id, month=month)
                summed = await ledger.guild_spend_from_ledger(conn, world.guild_id, month=month)
                assert kept == pytest.approx(summed, abs=1e-9)
        # Every entry references a job, except resets.
        orphans = await db.fetchval(
            "SELECT COUNT(*) FROM quota_ledger WHERE (job_id IS NULL) != (kind = 'reset')"
        )
        assert orphans == 0
    finally:
        await db.close()


@pytest.fixture(scope="module")
def property_db(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("quota_property") / "bot.db"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    allowance=st.integers(0, 120),
    cap=st.integers(1, 6),
    tasks=st.lists(st.lists(op, max_size=12), min_size=2, max_size=6),
)
def test_balance_never_negative_and_ledger_reconciles(property_db, allowance, cap, tasks):
    asyncio.run(scenario(property_db, allowance, cap, tasks))
