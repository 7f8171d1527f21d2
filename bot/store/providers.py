"""Per-guild provider fallback order, and the providers' recent latency (SQL only).

`get_order` / `set_order` keep `/videoadmin provider order` (one row per position);
`recent_latencies` reads submit → result seconds of a provider's latest finished jobs from
the jobs table (for `/videoadmin provider status`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.db import from_db_time, to_db_time
from bot.store._conn import DbOrConn, fetchall, writing


async def get_order(target: DbOrConn, guild_id: int) -> list[str]:
    rows = await fetchall(
        target,
        "SELECT provider FROM guild_provider_order WHERE guild_id = ? ORDER BY position",
        (guild_id,),
    )
    return [str(r["provider"]) for r in rows]


async def set_order(
    target: DbOrConn, guild_id: int, providers: Sequence[str], *, now: datetime
) -> None:
    """Replace the guild's order (an empty sequence clears it)."""
    async with writing(target) as conn:
        await conn.execute("DELETE FROM guild_provider_order WHERE guild_id = ?", (guild_id,))
        await conn.executemany(
            "INSERT INTO guild_provider_order (guild_id, position, provider, updated_at) "
            "VALUES (?, ?, ?, ?)",
            [(guild_id, i, name, to_db_time(now)) for i, name in enumerate(providers)],
        )


async def recent_latencies(
    target: DbOrConn, provider: str, *, since: datetime, limit: int
) -> list[float]:
    """Seconds from submission to the provider's finish, newest `limit` jobs since `since`."""
    rows = await fetchall(
        target,
        "SELECT submitted_at, provider_done_at FROM jobs WHERE provider = ? "
        "AND submitted_at IS NOT NULL AND provider_done_at IS NOT NULL "
        "AND provider_done_at >= ? ORDER BY provider_done_at DESC LIMIT ?",
        (provider, to_db_time(since), limit),
    )
    out = []
    for row in rows:
        seconds = (
            from_db_time(row["provider_done_at"]) - from_db_time(row["submitted_at"])
        ).total_seconds()
        out.append(max(0.0, seconds))
    return out
