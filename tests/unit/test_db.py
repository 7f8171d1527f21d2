from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.db import Database, MigrationError, split_sql

EXPECTED = Path(__file__).resolve().parent.parent / "expected_schema.sql"


async def test_fresh_schema_matches_snapshot(db: Database) -> None:
    actual = await db.schema_sql()
    if not EXPECTED.exists():  # first run after a migration change: write and fail loudly
        EXPECTED.write_text(actual)
        pytest.fail(f"wrote {EXPECTED}; review and commit it")
    assert actual == EXPECTED.read_text(), (
        "migrated schema differs from tests/expected_schema.sql; if the migration change is "
        "intended, delete the file and rerun to regenerate it"
    )


async def test_migrate_is_idempotent_and_records_versions(db: Database) -> None:
    assert await db.migrate() == []
    rows = await db.fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["name"] == "0001_initial"


async def test_pragmas(db: Database) -> None:
    assert (await db.fetchval("PRAGMA journal_mode")).lower() == "wal"
    assert await db.fetchval("PRAGMA foreign_keys") == 1
    assert await db.fetchval("PRAGMA busy_timeout") == 5000


async def test_refuses_a_newer_database(db: Database) -> None:
    await db.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'x')"
    )
    with pytest.raises(MigrationError, match="newer than this code"):
        await db.migrate()


async def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    migrations = tmp_path / "m"
    migrations.mkdir()
    (migrations / "0001_ok.sql").write_text("CREATE TABLE a (x INTEGER);\n")
    (migrations / "0002_bad.sql").write_text(
        "CREATE TABLE b (x INTEGER);\nINSERT INTO nope VALUES (1);\n"
    )
    database = await Database.open(tmp_path / "t.db")
    try:
        with pytest.raises(sqlite3.OperationalError):
            await database.migrate(migrations)
        assert await database.schema_version() == 1
        tables = {r[0] for r in await database.fetchall("SELECT name FROM sqlite_master")}
        assert "a" in tables and "b" not in tables
    finally:
        await database.close()


async def test_gap_in_numbering_is_refused(tmp_path: Path) -> None:
    migrations = tmp_path / "m"
    migrations.mkdir()
    (migrations / "0001_a.sql").write_text("CREATE TABLE a (x INTEGER);\n")
    (migrations / "0003_c.sql").write_text("CREATE TABLE c (x INTEGER);\n")
    database = await Database.open(tmp_path / "t.db")
    try:
        with pytest.raises(MigrationError, match="without gaps"):
            await database.migrate(migrations)
    finally:
        await database.close()


async def test_transaction_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO command_sync (scope, schema_hash, synced_at) VALUES ('g','h','t')"
            )
            raise RuntimeError("boom")
    assert await db.fetchval("SELECT COUNT(*) FROM command_sync") == 0


def test_split_sql_keeps_trigger_bodies() -> None:
    script = """
    -- comment
    CREATE TABLE t (x INTEGER);
    CREATE TRIGGER tr BEFORE UPDATE ON t BEGIN SELECT RAISE(ABORT, 'no; really'); END;
    """
    statements = split_sql(script)
    assert len(statements) == 2
    assert statements[1].endswith("END;")
