"""All SQL for the split of a provider's request budget between processes (`provider_shares`).

A provider's published limit is per API key, so processes sharing one key share it: each
process holds a `share` (0-1) of every provider's budget. `lock` takes the provider's
advisory lock for the rest of the transaction (so two processes re-splitting at once do not
both hand out the same free part), forgets the rows of processes silent since `stale_before`
(dead: their part is free again) and returns the others' rows; `put` records this process's
new share and demand; `give_back` deletes a process's rows at a graceful stop.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from bot.db import to_db_time
from bot.store._conn import Connection, DbOrConn, fetchall, writing


class ShareRow(BaseModel):
    owner: str
    share: float
    demand: int


async def lock(
    conn: Connection, provider: str, *, owner: str, stale_before: datetime
) -> list[ShareRow]:
    """Inside a transaction: hold the provider's share lock, drop dead processes' rows and
    return the other live processes' shares."""
    await conn.lock("provider_shares", provider)
    await conn.execute(
        "DELETE FROM provider_shares WHERE provider = ? AND owner <> ? AND updated_at < ?",
        (provider, owner, to_db_time(stale_before)),
    )
    rows = await conn.fetchall(
        "SELECT owner, share, demand FROM provider_shares WHERE provider = ? AND owner <> ?"
        " ORDER BY owner",
        (provider, owner),
    )
    return [ShareRow(owner=r["owner"], share=r["share"], demand=r["demand"]) for r in rows]


async def put(
    conn: Connection, provider: str, owner: str, *, share: float, demand: int, now: datetime
) -> None:
    await conn.execute(
        "INSERT INTO provider_shares (provider, owner, share, demand, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (provider, owner) DO UPDATE SET"
        " share = excluded.share, demand = excluded.demand, updated_at = excluded.updated_at",
        (provider, owner, share, demand, to_db_time(now)),
    )


async def give_back(target: DbOrConn, owner: str) -> int:
    """A graceful stop: the process's parts are free for the others at their next re-split."""
    async with writing(target) as conn:
        return await conn.execute("DELETE FROM provider_shares WHERE owner = ?", (owner,))


async def shares_by_owner(src: DbOrConn) -> dict[str, dict[str, float]]:
    """Each process's part of every provider's budget (`check`)."""
    rows = await fetchall(
        src, "SELECT owner, provider, share FROM provider_shares ORDER BY owner, provider"
    )
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        out.setdefault(r["owner"], {})[r["provider"]] = float(r["share"])
    return out


async def all_shares(src: DbOrConn, provider: str) -> dict[str, float]:
    """Every recorded share of one provider, by process (tests)."""
    by_owner = await shares_by_owner(src)
    return {owner: parts[provider] for owner, parts in by_owner.items() if provider in parts}
