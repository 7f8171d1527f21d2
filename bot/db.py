"""SQLite access: one aiosqlite connection (WAL, foreign keys, busy timeout) and migrations.

All writes that must be atomic go through `Database.transaction()`, which serialises
writers on this connection with an asyncio lock and opens `BEGIN IMMEDIATE`, so a
read-check-write sequence (quota reservation, job creation) cannot interleave with
another task's. Code running inside a transaction can find it with
`current_transaction(conn)` and register `after_commit` callbacks (run once COMMIT has
succeeded, dropped on rollback), e.g. to wake a worker that must see the new rows.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

Row = aiosqlite.Row

log = logging.getLogger(__name__)


class MigrationError(Exception):
    """The database cannot be brought to the code's schema (e.g. it is newer)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_db_time(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, str, Path]]:
    found: list[tuple[int, str, Path]] = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"badly named migration file: {path.name}")
        found.append((int(match.group(1)), path.stem, path))
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migrations must be numbered 0001.. without gaps, got {versions}")
    return found


class Transaction:
    """The `Database.transaction()` a task has open: its database, its connection, and the
    callbacks to run after its COMMIT (see `current_transaction`)."""

    def __init__(self, db: Database, conn: aiosqlite.Connection) -> None:
        self.db = db
        self.conn = conn
        self.open = True
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed (never if it rolls back)."""
        if not self.open:
            raise RuntimeError("the transaction is already over")
        self._after_commit.append(callback)

    def _committed(self) -> None:
        for callback in self._after_commit:
            try:
                callback()
            except Exception:  # the data is committed: a callback must not undo the caller
                log.exception("after-commit callback %r failed", callback)


_current: ContextVar[Transaction | None] = ContextVar("bot_db_transaction", default=None)


def current_transaction(conn: aiosqlite.Connection) -> Transaction | None:
    """The transaction this task has open on `conn`; None when there is none (then each
    statement on `conn` commits by itself)."""
    tx = _current.get()
    return tx if tx is not None and tx.open and tx.conn is conn else None


class Database:
    """A single shared aiosqlite connection with a writer lock."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str, *, busy_timeout_ms: int = 5000) -> Database:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        return cls(conn, path)

    async def close(self) -> None:
        async with self._lock:
            await self.conn.close()

    # ----- queries --------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """`BEGIN IMMEDIATE` … `COMMIT` (or `ROLLBACK` on error), serialised.

        Callbacks registered with `current_transaction(conn).after_commit` run after the
        COMMIT, once the lock is released; on rollback they are dropped.
        """
        async with self._lock:
            tx = Transaction(self, self.conn)
            token = _current.set(tx)
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    await self.conn.execute("ROLLBACK")
                    raise
                else:
                    await self.conn.execute("COMMIT")
            finally:
                tx.open = False
                _current.reset(token)
        tx._committed()

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write statement in its own transaction; returns lastrowid."""
        async with self.transaction() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.lastrowid or 0

    async def fetchone(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> aiosqlite.Row | None:
        async with self._lock, self.conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[aiosqlite.Row]:
        async with self._lock, self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchval(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    # ----- migrations -----------------------------------------------------------------

    async def schema_version(self) -> int:
        async with self._lock:
            return await _current_version(self.conn)

    async def migrate(self, directory: Path = MIGRATIONS_DIR) -> list[str]:
        """Apply pending migrations in order, each in its own transaction.

        Returns the names applied (empty when up to date). Raises MigrationError if the
        database was written by newer code.
        """
        migrations = discover_migrations(directory)
        latest = migrations[-1][0] if migrations else 0
        applied: list[str] = []
        async with self._lock:
            await self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            current = await _current_version(self.conn)
            if current > latest:
                raise MigrationError(
                    f"database schema version {current} is newer than this code "
                    f"(knows up to {latest}); upgrade the bot or restore a backup"
                )
            for version, name, path in migrations:
                if version <= current:
                    continue
                script = path.read_text(encoding="utf-8")
                await self.conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in split_sql(script):
                        await self.conn.execute(statement)
                    await self.conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)",
                        (version, name, to_db_time(utcnow())),
                    )
                except BaseException:
                    await self.conn.execute("ROLLBACK")
                    raise
                await self.conn.execute("COMMIT")
                applied.append(name)
        return applied

    async def schema_sql(self) -> str:
        """The schema as normalised text (for the schema snapshot test)."""
        rows = await self.fetchall(
            "SELECT type, name, sql FROM sqlite_master "
            "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type, name"
        )
        return "\n".join(re.sub(r"\s+", " ", row["sql"]).strip() + ";" for row in rows) + "\n"


async def _current_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    ) as cursor:
        if await cursor.fetchone() is None:
            return 0
    async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


def split_sql(script: str) -> list[str]:
    """Split a migration script into statements (trigger bodies kept whole)."""
    import sqlite3

    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("--")):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise MigrationError(f"incomplete SQL statement at end of migration: {buffer[:60]!r}")
    return statements
