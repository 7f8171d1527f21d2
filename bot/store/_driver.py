"""The driver seam: what every store function runs its SQL on, whichever database is behind it.

`Connection` is the one interface (`execute`, `fetchall`, `fetchone`, `fetchval`); its two
implementations are `bot.store._sqlite` (aiosqlite) and `bot.store._postgres` (asyncpg).
Store SQL is written once, with `?` (or `:name`) placeholders and SQL both dialects accept
(`IS NOT DISTINCT FROM`, `RETURNING`, `ON CONFLICT`, CASE instead of boolean aggregates); the
PostgreSQL connection translates the placeholders (`bot.store._sqltext`). Where a query
cannot be shared, a store module keeps one small named query per `Dialect`.

Values look the same from both: times are ISO-8601 UTC strings (`to_db_time`; PostgreSQL
stores `timestamptz` and converts at the driver), money is a float (PostgreSQL stores
`numeric`), snowflakes are ints. Constraint and append-only trigger violations raise
`IntegrityError` on both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]
Params = Sequence[Any] | dict[str, Any]


class IntegrityError(Exception):
    """A constraint or an append-only trigger refused the statement (both backends)."""


class Row(Protocol):
    """A result row: by column name or position (sqlite3.Row and asyncpg.Record both are)."""

    def __getitem__(self, key: Any, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


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


class Connection(ABC):
    """One database connection, used by one task at a time (the `Database` hands it out)."""

    dialect: Dialect
    owner: object | None = None  # the Database that handed it out

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row (bulk inserts)."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    @property
    @abstractmethod
    def in_transaction(self) -> bool: ...

    @abstractmethod
    async def begin(self) -> None:
        """Start a write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: READ COMMITTED)."""

    @abstractmethod
    async def commit(self) -> None: ...

    @abstractmethod
    async def rollback(self) -> None: ...

    @abstractmethod
    async def script(self, sql: str) -> None:
        """Run a migration script (several statements, no parameters) in the open transaction."""

    @abstractmethod
    async def table_exists(self, name: str) -> bool: ...

    @abstractmethod
    async def schema_sql(self) -> str:
        """The schema as stable, normalised text (for the schema-equality tests)."""

    @abstractmethod
    async def lock(self, *key: int | str, shared: bool = False) -> None:
        """Hold a lock on `key` until this transaction ends, so read-check-write sequences on
        the same key (a member's reservations, a guild's monthly cap) never interleave;
        `shared` locks only exclude the exclusive ones. SQLite: nothing to do (BEGIN
        IMMEDIATE already serialises writers)."""

    @abstractmethod
    async def close(self) -> None: ...
