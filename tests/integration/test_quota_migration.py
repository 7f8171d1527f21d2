"""migrations/0002_quota.sql: ledger constraints and the monthly guild spend it maintains."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest

from bot.db import MIGRATIONS_DIR, Database, IntegrityError, to_db_time
from bot.store import quotas as ledger

G = 5


async def add_entry(conn, *, job_id, kind, seconds, cost, at, user_id=1, guild_id=G):
    return await ledger.insert_entry(
        conn,
        guild_id=guild_id,
        user_id=user_id,
        job_id=job_id,
        kind=kind,
        seconds=seconds,
        cost_usd=cost,
        at=at,
    )


async def add_job(conn, at: datetime, guild_id: int = G) -> int:
    job_id = await conn.fetchval(
        "INSERT INTO jobs (guild_id, user_id, provider, mode, prompt, params_json, created_at,"
        " updated_at) VALUES (?, 1, 'simulator', 'text-to-video', 'p', '{}', ?, ?) RETURNING id",
        (guild_id, to_db_time(at), to_db_time(at)),
    )
    return int(job_id)


JUNE = datetime(2025, 6, 30, 23, 59, tzinfo=UTC)
JULY = datetime(2025, 7, 1, 0, 1, tzinfo=UTC)


async def test_one_reserve_and_one_closing_entry_per_job(db):
    async with db.transaction() as conn:
        job = await add_job(conn, JUNE)
        await add_entry(conn, job_id=job, kind="reserve", seconds=5, cost=0.1, at=JUNE)
        with pytest.raises(IntegrityError):
            await add_entry(conn, job_id=job, kind="reserve", seconds=5, cost=0.1, at=JUNE)
        await add_entry(conn, job_id=job, kind="settle", seconds=0, cost=0, at=JUNE)
        with pytest.raises(IntegrityError):
            await add_entry(conn, job_id=job, kind="refund", seconds=-5, cost=-0.1, at=JUNE)


async def test_ledger_rows_cannot_be_updated(db):
    async with db.transaction() as conn:
        job = await add_job(conn, JUNE)
        await add_entry(conn, job_id=job, kind="reserve", seconds=5, cost=0.1, at=JUNE)
        with pytest.raises(IntegrityError, match="append-only"):
            await conn.execute("UPDATE quota_ledger SET seconds = 0")


async def test_spend_follows_the_reservation_month(db):
    async with db.transaction() as conn:
        june_job = await add_job(conn, JUNE)
        july_job = await add_job(conn, JULY)
        other = await add_job(conn, JUNE, guild_id=G + 1)
        await add_entry(conn, job_id=june_job, kind="reserve", seconds=5, cost=0.5, at=JUNE)
        await add_entry(
            conn, job_id=other, kind="reserve", seconds=5, cost=9, at=JUNE, guild_id=G + 1
        )
        await add_entry(conn, job_id=july_job, kind="reserve", seconds=5, cost=0.25, at=JULY)
        # June's job settles in July, cheaper than quoted: June gets the difference back.
        await add_entry(conn, job_id=june_job, kind="settle", seconds=-1, cost=-0.1, at=JULY)
        for month, expected in (("2025-06", 0.4), ("2025-07", 0.25)):
            assert await ledger.guild_spend(conn, G, month=month) == pytest.approx(expected)
            assert await ledger.guild_spend_from_ledger(conn, G, month=month) == pytest.approx(
                expected
            )
        await add_entry(conn, job_id=july_job, kind="refund", seconds=-5, cost=-0.25, at=JULY)
        assert await ledger.guild_spend(conn, G, month="2025-07") == pytest.approx(0)
        assert await ledger.guild_spend(conn, G + 1, month="2025-06") == pytest.approx(9)


async def test_migration_backfills_spend_from_an_existing_ledger(tmp_path):
    early = tmp_path / "early"
    early.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0002":
            shutil.copy(path, early / path.name)
    db = await Database.open(tmp_path / "bot.db")
    try:
        await db.migrate(early)
        async with db.transaction() as conn:
            a = await add_job(conn, JUNE)
            b = await add_job(conn, JULY)
            await add_entry(conn, job_id=a, kind="reserve", seconds=5, cost=0.5, at=JUNE)
            await add_entry(conn, job_id=a, kind="settle", seconds=0, cost=-0.2, at=JULY)
            await add_entry(conn, job_id=b, kind="reserve", seconds=5, cost=0.7, at=JULY)
        applied = await db.migrate()
        assert "0002_quota" in applied
        async with db.transaction() as conn:
            assert await ledger.guild_spend(conn, G, month="2025-06") == pytest.approx(0.3)
            assert await ledger.guild_spend(conn, G, month="2025-07") == pytest.approx(0.7)
    finally:
        await db.close()
