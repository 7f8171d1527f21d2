"""PostgreSQL as the database: its migrated schema, `migrate` / `check` on it, and quota
reservations racing from several pools (as several bot processes would) never overspent.

Needs a PostgreSQL server (tests/backends.py finds or starts one; skipped, saying why, when
none can be had).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot import quota
from bot.db import Database, discover_migrations, migrations_dir
from bot.store import guilds as guild_store
from bot.store import quotas as ledger
from tests.integration.test_cli import run_cli
from tests.integration.test_quota_ledger import T0, G, U, submit
from tests.pg_server import find_bin_dir

EXPECTED_SCHEMA = Path(__file__).resolve().parent.parent / "expected_schema_postgresql.sql"


async def test_migrated_schema_equals_the_expected_one(pg_empty_url: str) -> None:
    db = await Database.open(pg_empty_url)
    try:
        applied = await db.migrate()
        assert applied == [name for _, name, _ in discover_migrations(migrations_dir("postgresql"))]
        assert await db.migrate() == []  # idempotent
        assert await db.schema_version() == len(applied)
        assert await db.schema_sql() == EXPECTED_SCHEMA.read_text()
    finally:
        await db.close()


def test_both_dialects_have_the_same_migrations() -> None:
    sqlite = [(v, name) for v, name, _ in discover_migrations(migrations_dir("sqlite"))]
    postgres = [(v, name) for v, name, _ in discover_migrations(migrations_dir("postgresql"))]
    assert postgres == sqlite


async def test_two_processes_migrating_at_once_apply_each_migration_once(
    pg_empty_url: str,
) -> None:
    first, second = await Database.open(pg_empty_url), await Database.open(pg_empty_url)
    try:
        a, b = await asyncio.gather(first.migrate(), second.migrate())
        assert sorted(a + b) == sorted(
            n for _, n, _ in discover_migrations(migrations_dir("postgresql"))
        )
        assert await first.fetchval("SELECT COUNT(*) FROM schema_migrations") == len(a + b)
    finally:
        await first.close()
        await second.close()


async def test_migrate_and_check_commands_on_postgresql(tmp_path: Path, pg_empty_url: str) -> None:
    # A password in the URL (the test server trusts local connections and ignores it) must
    # never be printed.
    parts = urlsplit(pg_empty_url)
    url = urlunsplit(parts._replace(netloc=f"postgres:s3cret-pw@{parts.hostname}:{parts.port}"))
    code, out, err = await run_cli(tmp_path, "migrate", DATABASE_URL=url)
    assert code == 0, err
    latest = len(discover_migrations(migrations_dir("postgresql")))
    assert f"schema version {latest}" in out and "applied 0001_initial" in out
    code, out, err = await run_cli(tmp_path, "check", DATABASE_URL=url)
    assert code == 0, out + err
    row = next(line for line in out.splitlines() if line.startswith("database"))
    assert f"version {latest}, up to date" in row and "postgres:***@" in row
    assert "s3cret-pw" not in out + err


async def test_check_says_when_postgresql_is_unreachable(tmp_path: Path) -> None:
    url = "postgresql://bot:s3cret-pw@127.0.0.1:9/nowhere"  # port 9: nothing listens
    code, out, err = await run_cli(tmp_path, "check", DATABASE_URL=url)
    assert code != 0
    row = next(line for line in out.splitlines() if line.startswith("database"))
    assert " FAIL " in row or "FAIL" in row
    assert "s3cret-pw" not in out + err


# ----- several processes, one database -----------------------------------------------------


@pytest.fixture
async def pools(pg_url: str) -> list[Database]:
    """Three Database objects on one PostgreSQL database: what three bot processes have."""
    opened = [await Database.open(pg_url, pool_size=5) for _ in range(3)]
    yield opened
    for db in opened:
        await db.close()


async def test_one_member_racing_from_three_processes_is_never_overspent(
    pools: list[Database],
) -> None:
    await guild_store.update_guild_settings(pools[0], G, max_concurrent_jobs=1000)
    await guild_store.set_member_allowance(pools[0], G, U, 60, now=T0)

    async def one(i: int) -> bool:
        try:
            await submit(pools[i % 3], seconds=7, now=T0 + timedelta(microseconds=i))
        except quota.QuotaExceeded as exc:
            assert exc.reason == "allowance"
            return False
        return True

    results = await asyncio.gather(*(one(i) for i in range(45)))
    assert sum(results) == 60 // 7
    assert await pools[1].fetchval("SELECT SUM(seconds) FROM quota_ledger") == 7 * (60 // 7)


async def test_a_guilds_monthly_budget_racing_from_three_processes_holds(
    pools: list[Database],
) -> None:
    await guild_store.update_guild_settings(
        pools[0], G, monthly_budget_usd=1.0, max_concurrent_jobs=1000
    )

    async def one(i: int) -> bool:  # 40 different members, 0.25 USD each: 4 fit in 1.00
        try:
            await submit(pools[i % 3], user_id=1000 + i, cost=0.25, now=T0)
        except quota.QuotaExceeded as exc:
            assert exc.reason == "guild_budget"
            return False
        return True

    results = await asyncio.gather(*(one(i) for i in range(40)))
    assert sum(results) == 4
    async with pools[2].transaction() as conn:
        spent = await ledger.guild_spend(conn, G, month=ledger.month_key(T0))
        from_ledger = await ledger.guild_spend_from_ledger(conn, G, month=ledger.month_key(T0))
    assert spent == pytest.approx(1.0) and from_ledger == pytest.approx(1.0)


@pytest.mark.skipif(
    os.geteuid() != 0 or find_bin_dir() is None,
    reason="as root with PostgreSQL installed only (the server then runs as `postgres`)",
)
def test_ci_starts_a_server_in_a_private_state_directory(tmp_path: Path) -> None:
    # .ci/run's state directory comes from `mktemp -d` (0700, root's): `postgres` must still
    # reach the data directory inside it.
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    root = Path(__file__).resolve().parents[2]
    started = subprocess.run(
        [sys.executable, "-m", "tests.pg_server", "start", str(state)],
        capture_output=True, text=True, cwd=root, timeout=120, check=False,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        dsn = started.stdout.strip()

        async def ask() -> int:
            conn = await asyncpg.connect(dsn)
            try:
                return int(await conn.fetchval("SELECT 1"))
            finally:
                await conn.close()

        assert asyncio.run(ask()) == 1
        assert state.stat().st_mode & 0o777 == 0o701  # search only: no listing for others
    finally:
        subprocess.run(
            [sys.executable, "-m", "tests.pg_server", "stop", str(state)],
            cwd=root, timeout=60, check=False,
        )  # fmt: skip
    assert not (state / "server").exists()
