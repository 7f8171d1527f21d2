"""The database: SQLite (one aiosqlite connection, WAL) or PostgreSQL (an asyncpg pool), and
the migration runner for both.

All writes that must be atomic go through `Database.transaction()`. On SQLite it serialises
writers on the one connection with an asyncio lock and opens `BEGIN IMMEDIATE`; on
PostgreSQL each transaction has a pooled connection of its own (READ COMMITTED), and a
read-check-write sequence takes `conn.lock(key)` (an advisory lock) or a conditional UPDATE
so that it cannot interleave with another task's or process's. Code running inside a
transaction can find it with `current_transaction(conn)` and register `after_commit`
callbacks (run once COMMIT has succeeded, dropped on rollback), e.g. to wake a worker that
must see the new rows.

`DATABASE_URL`: `sqlite:///path` (or a bare path) or `postgresql://user:pass@host:port/db`.
Migrations: migrations/NNNN_name.sql for SQLite, migrations/postgresql/NNNN_name.sql (same
numbers) for PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.store._driver import (
    Connection,
    Dialect,
    IntegrityError,
    Row,
    from_db_time,
    to_db_time,
    utcnow,
)
from bot.store._sqlite import SqliteConnection
from bot.store._sqltext import split_sqlite as split_sql

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "MIGRATIONS_DIR",
    "Database",
    "IntegrityError",
    "MigrationError",
    "Row",
    "Transaction",
    "current_transaction",
    "discover_migrations",
    "from_db_time",
    "split_sql",
    "to_db_time",
    "utcnow",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_MIGRATION_LOCK = 7_418_203_551  # advisory lock key: one migrator at a time on PostgreSQL
PG_SCHEMES = ("postgresql://", "postgres://")

log = logging.getLogger(__name__)


class MigrationError(Exception):
    """The database cannot be brought to the code's schema (e.g. it is newer)."""


def migrations_dir(dialect: Dialect) -> Path:
    return MIGRATIONS_DIR / "postgresql" if dialect == "postgresql" else MIGRATIONS_DIR


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


def redact_url(url: str) -> str:
    """The database URL without its password (for logs and `check`)."""
    return re.sub(r"^(\w+://[^:/@]*):[^@]*@", r"\1:***@", url)


class Transaction:
    """The `Database.transaction()` a task has open: its database, its connection, and the
    callbacks to run after its COMMIT (see `current_transaction`)."""

    def __init__(self, db: Database, conn: Connection) -> None:
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


def current_transaction(conn: Connection) -> Transaction | None:
    """The transaction this task has open on `conn`; None when there is none (then each
    statement on `conn` commits by itself)."""
    tx = _current.get()
    return tx if tx is not None and tx.open and tx.conn is conn else None


class Database:
    """SQLite: one shared connection with a writer lock. PostgreSQL: a connection pool."""

    def __init__(
        self, *, sqlite: SqliteConnection | None = None, pool: asyncpg.Pool | None = None,
        path: Path | None = None, url: str,
    ) -> None:  # fmt: skip
        self._single = sqlite
        self._pool = pool
        self.path = path  # the SQLite file (None on PostgreSQL)
        self.url = url
        self.dialect: Dialect = "sqlite" if sqlite is not None else "postgresql"
        self._lock = asyncio.Lock()
        if sqlite is not None:
            sqlite.owner = self

    @classmethod
    async def open(
        cls, target: Path | str, *, busy_timeout_ms: int = 5000, pool_size: int = 10
    ) -> Database:
        """`target`: a SQLite path, `sqlite:///path` or `postgresql://…`."""
        text = str(target)
        if text.startswith(PG_SCHEMES):
            from bot.store._postgres import open_pool

            pool = await open_pool(text, max_size=pool_size)
            return cls(pool=pool, url=text)
        path = Path(text.removeprefix("sqlite:///"))
        conn = await SqliteConnection.open(path, busy_timeout_ms=busy_timeout_ms)
        return cls(sqlite=conn, path=path, url=f"sqlite:///{path}")

    @property
    def conn(self) -> Connection:
        """SQLite's one connection (for tests and the SQLite-only tools)."""
        if self._single is None:
            raise RuntimeError("a PostgreSQL database has a pool, not one connection")
        return self._single

    @property
    def location(self) -> str:
        """Where the data is, for messages (no password)."""
        return str(self.path) if self.path is not None else redact_url(self.url)

    async def close(self) -> None:
        if self._single is not None:
            async with self._lock:
                await self._single.close()
        elif self._pool is not None:
            await self._pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection for this task alone (SQLite: the one, under the lock)."""
        if self._single is not None:
            async with self._lock:
                yield self._single
            return
        assert self._pool is not None
        from bot.store._postgres import PgConnection

        async with self._pool.acquire() as raw:
            conn = PgConnection(raw)
            conn.owner = self
            yield conn

    # ----- queries --------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """BEGIN … COMMIT (or ROLLBACK on error).

        Callbacks registered with `current_transaction(conn).after_commit` run after the
        COMMIT, once the connection is released; on rollback they are dropped.
        """
        async with self.connection() as conn:
            tx = Transaction(self, conn)
            token = _current.set(tx)
            try:
                await conn.begin()
                try:
                    yield conn
                except BaseException:
                    await conn.rollback()
                    raise
                else:
                    await conn.commit()
            finally:
                tx.open = False
                _current.reset(token)
        tx._committed()

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write statement in its own transaction; returns the rows it changed."""
        async with self.transaction() as conn:
            return await conn.execute(sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        async with self.connection() as conn:
            return await conn.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        async with self.connection() as conn:
            return await conn.fetchall(sql, params)

    async def fetchval(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    # ----- migrations -----------------------------------------------------------------

    async def schema_version(self) -> int:
        async with self.connection() as conn:
            return await _current_version(conn)

    async def migrate(self, directory: Path | None = None) -> list[str]:
        """Apply pending migrations in order, each in its own transaction.

        Returns the names applied (empty when up to date). Raises MigrationError if the
        database was written by newer code. On PostgreSQL an advisory lock keeps two
        processes starting at once from migrating together.
        """
        migrations = discover_migrations(directory or migrations_dir(self.dialect))
        latest = migrations[-1][0] if migrations else 0
        applied: list[str] = []
        time_type = "TIMESTAMPTZ" if self.dialect == "postgresql" else "TEXT"
        async with self.connection() as conn:
            if self.dialect == "postgresql":
                await conn.execute(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    f" version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at {time_type}"
                    " NOT NULL)"
                )
                current = await _current_version(conn)
                if current > latest:
                    raise MigrationError(
                        f"database schema version {current} is newer than this code "
                        f"(knows up to {latest}); upgrade the bot or restore a backup"
                    )
                for version, name, path in migrations:
                    if version <= current:
                        continue
                    await _apply(conn, version, name, path.read_text(encoding="utf-8"))
                    applied.append(name)
            finally:
                if self.dialect == "postgresql":
                    await conn.execute(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
        return applied

    async def schema_sql(self) -> str:
        """The schema as normalised text (for the schema snapshot tests)."""
        async with self.connection() as conn:
            return await conn.schema_sql()


async def _apply(conn: Connection, version: int, name: str, script: str) -> None:
    await conn.begin()
    try:
        await conn.script(script)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)",
            (version, name, to_db_time(utcnow())),
        )
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit()


async def _current_version(conn: Connection) -> int:
    if not await conn.table_exists("schema_migrations"):
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
