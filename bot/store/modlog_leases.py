"""All SQL for mod-log outbox leases (`modlog_leases`): one drainer per guild at a time.

With several processes on one database, each runs a mod-log worker; a guild's queued
entries are posted only by the process holding that guild's lease, so each entry is posted
once and a guild's entries go out in audit order. `take` claims a free or expired lease, or
renews this owner's own, in one statement (`INSERT … ON CONFLICT DO UPDATE … WHERE`: on
PostgreSQL the conflicting row is locked and the condition checked on its latest version,
so two processes taking at once never both win). `give_back` ends one guild's lease after
its pass; `give_back_all` ends every lease of a process at its stop.
"""

from __future__ import annotations

from datetime import datetime

from bot.db import to_db_time
from bot.store._conn import DbOrConn, fetchall, writing


async def take(
    target: DbOrConn, guild_id: int, owner: str, *, now: datetime, until: datetime
) -> bool:
    """Hold (or keep holding) the guild's outbox lease until `until`; False when another
    process holds it and its lease has not expired."""
    async with writing(target) as conn:
        rows = await conn.fetchall(
            "INSERT INTO modlog_leases (guild_id, owner, until) VALUES (?, ?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET owner = excluded.owner, until = excluded.until"
            " WHERE modlog_leases.owner = excluded.owner OR modlog_leases.until < ?"
            " RETURNING guild_id",
            (guild_id, owner, to_db_time(until), to_db_time(now)),
        )
    return bool(rows)


async def give_back(target: DbOrConn, guild_id: int, owner: str) -> None:
    async with writing(target) as conn:
        await conn.execute(
            "DELETE FROM modlog_leases WHERE guild_id = ? AND owner = ?", (guild_id, owner)
        )


async def give_back_all(target: DbOrConn, owner: str) -> int:
    async with writing(target) as conn:
        return await conn.execute("DELETE FROM modlog_leases WHERE owner = ?", (owner,))


async def holder(target: DbOrConn, guild_id: int) -> str | None:
    """Who holds the guild's lease (expired or not), for tests and `check`."""
    rows = await fetchall(target, "SELECT owner FROM modlog_leases WHERE guild_id = ?", (guild_id,))
    return rows[0]["owner"] if rows else None
