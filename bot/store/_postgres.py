"""The PostgreSQL side of the driver seam: an asyncpg pool and the connections it lends.

Why asyncpg (not psycopg 3): its `Record` is read by name and by position like sqlite3.Row,
so store code reads rows the same way on both backends; it has its own pool and LISTEN /
NOTIFY (`add_listener`) without extra packages; it prepares and caches every statement per
connection and speaks the binary protocol, which keeps the per-query overhead low.

Each pooled connection gets the session's TimeZone set to UTC and two text codecs, so values
look exactly as they do on SQLite: `timestamptz` in and out as `to_db_time` strings,
`numeric` (money) out as float.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from bot.store._driver import (
    Connection,
    Dialect,
    IntegrityError,
    Params,
    Row,
    from_db_time,
    to_db_time,
)
from bot.store._sqltext import to_postgres

RawConnection = asyncpg.Connection | PoolConnectionProxy


def _encode_time(value: Any) -> str:
    return value if isinstance(value, str) else to_db_time(value)


def _decode_time(text: str) -> str:
    return to_db_time(from_db_time(text))


async def _setup(conn: RawConnection) -> None:
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=_encode_time, decoder=_decode_time,
        format="text",
    )  # fmt: skip
    await conn.set_type_codec(
        "numeric", schema="pg_catalog", encoder=str, decoder=float, format="text"
    )


async def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_setup,
        server_settings={"TimeZone": "UTC", "application_name": "ltx-discord-bot"},
    )


def _rowcount(status: str) -> int:
    """asyncpg's command tag ('UPDATE 3', 'INSERT 0 1') → rows changed."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _lock_key(key: tuple[int | str, ...]) -> int:
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PgConnection(Connection):
    dialect: Dialect = "postgresql"

    def __init__(self, raw: RawConnection) -> None:
        self.raw = raw
        self._tx: Any = None

    async def execute(self, sql: str, params: Params = ()) -> int:
        text, args = to_postgres(sql, params)
        try:
            return _rowcount(await self.raw.execute(text, *args))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(str(exc)) from exc

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        text, _ = to_postgres(sql, ())
        try:
            await self.raw.executemany(text, [tuple(r) for r in rows])
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(str(exc)) from exc

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        text, args = to_postgres(sql, params)
        try:
            return list(await self.raw.fetch(text, *args))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(str(exc)) from exc

    @property
    def in_transaction(self) -> bool:
        return bool(self.raw.is_in_transaction())

    async def begin(self) -> None:
        self._tx = self.raw.transaction()
        await self._tx.start()

    async def commit(self) -> None:
        tx, self._tx = self._tx, None
        await tx.commit()

    async def rollback(self) -> None:
        tx, self._tx = self._tx, None
        if tx is not None:
            await tx.rollback()

    async def script(self, sql: str) -> None:
        try:
            await self.raw.execute(sql)  # no arguments: the simple protocol runs every statement
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(str(exc)) from exc

    async def table_exists(self, name: str) -> bool:
        return bool(await self.raw.fetchval("SELECT to_regclass($1) IS NOT NULL", name))

    async def schema_sql(self) -> str:
        from bot.store._pgschema import dump_schema

        return await dump_schema(self)

    async def lock(self, *key: int | str, shared: bool = False) -> None:
        kind = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        await self.raw.execute(f"SELECT {kind}($1)", _lock_key(key))

    async def close(self) -> None:
        await self.raw.close()
