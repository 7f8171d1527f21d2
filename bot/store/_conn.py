"""What store modules run their SQL on: the connection type and the shared fetch helpers.

Read helpers take either the `Database` (a read outside any transaction) or the
`Connection` of a caller's `async with db.transaction() as conn:`. Outside `bot/store/`
(and `bot/db.py`) code names these aliases, never an aiosqlite type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from bot.db import Database

Connection = aiosqlite.Connection
Row = aiosqlite.Row
DbOrConn = Database | Connection


async def fetchall(target: DbOrConn, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    if isinstance(target, Database):
        return await target.fetchall(sql, params)
    return list(await target.execute_fetchall(sql, params))


async def fetchone(target: DbOrConn, sql: str, params: Sequence[Any] = ()) -> Row | None:
    if isinstance(target, Database):
        return await target.fetchone(sql, params)
    async with target.execute(sql, params) as cursor:
        return await cursor.fetchone()


@asynccontextmanager
async def writing(target: DbOrConn) -> AsyncIterator[Connection]:
    """The caller's connection, or a transaction of its own when given the `Database`."""
    if isinstance(target, Database):
        async with target.transaction() as conn:
            yield conn
    else:
        yield target
