"""What store modules run their SQL on: the connection type and the shared fetch helpers.

Read helpers take either the `Database` (a read outside any transaction) or the
`Connection` of a caller's `async with db.transaction() as conn:`. Outside `bot/store/`
(and `bot/db.py`) code names these aliases, never a driver (aiosqlite, asyncpg) type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.db import Database
from bot.store._driver import Connection, Dialect, Params, Row

__all__ = ["Connection", "DbOrConn", "Row", "dialect", "fetchall", "fetchone", "fetchval"]

DbOrConn = Database | Connection


def dialect(target: DbOrConn) -> Dialect:
    return target.dialect


async def fetchall(target: DbOrConn, sql: str, params: Params = ()) -> list[Row]:
    return await target.fetchall(sql, params)


async def fetchone(target: DbOrConn, sql: str, params: Params = ()) -> Row | None:
    return await target.fetchone(sql, params)


async def fetchval(target: DbOrConn, sql: str, params: Params = ()) -> Any:
    return await target.fetchval(sql, params)


@asynccontextmanager
async def writing(target: DbOrConn) -> AsyncIterator[Connection]:
    """The caller's connection, or a transaction of its own when given the `Database`."""
    if isinstance(target, Database):
        async with target.transaction() as conn:
            yield conn
    else:
        yield target
