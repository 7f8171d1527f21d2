"""The quota ledger (SQL only; the rules live in `bot.quota`).

`quota_ledger` is append-only. Entry kinds and their `seconds` / `cost_usd`:

- `reserve`  +weighted seconds and +estimated cost, at submit; one per job.
- `settle`   final − reserved (a delta, usually ≤ 0 seconds), when the job finished;
             at most one per job and never after a refund.
- `refund`   −reserved, when the job failed, expired or was cancelled; at most one per
             job and never after a settle.
- `reset`    0 seconds, no job: an admin's reset. Jobs reserved before it (lower ledger id)
             no longer count towards the member's usage.

So for every job `SUM(seconds)` over its entries is what it costs the member: the
reservation while it runs, the final figure once settled, 0 once refunded (the same holds
for `cost_usd`). A job's entries all count at the time of its `reserve` entry: that is
when its seconds leave the rolling window again, whenever it settled.

All functions run on the `conn` of a caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import aiosqlite
from pydantic import BaseModel, ConfigDict

from bot.db import from_db_time, to_db_time

EntryKind = Literal["reserve", "settle", "refund", "reset"]
CLOSING_KINDS = ("settle", "refund")


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    guild_id: int
    user_id: int
    job_id: int | None
    kind: EntryKind
    seconds: float
    cost_usd: float
    at: datetime
    note: str | None


class JobCharge(BaseModel):
    """One job's net effect on its member's window (all its entries summed)."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    reserved_at: datetime
    seconds: float
    cost_usd: float
    closed: bool  # settled or refunded


class MemberLedgerState(BaseModel):
    model_config = ConfigDict(frozen=True)

    reset_id: int  # id of the member's latest reset entry, 0 if none
    active: int  # reservations neither settled nor refunded (any time)
    last_reserve_at: datetime | None  # latest reservation after the latest reset


class ReservationRow(BaseModel):
    """A job's reserve entry and how it was closed, if it was."""

    model_config = ConfigDict(frozen=True)

    entry: LedgerEntry
    raw_seconds: float
    weight: float
    closed_by: EntryKind | None


def _entry(row: aiosqlite.Row) -> LedgerEntry:
    return LedgerEntry(
        id=row["id"],
        guild_id=row["guild_id"],
        user_id=row["user_id"],
        job_id=row["job_id"],
        kind=row["kind"],
        seconds=row["seconds"],
        cost_usd=row["cost_usd"],
        at=from_db_time(row["at"]),
        note=row["note"],
    )


async def insert_entry(
    conn: aiosqlite.Connection,
    *,
    guild_id: int,
    user_id: int,
    job_id: int | None,
    kind: EntryKind,
    seconds: float,
    cost_usd: float,
    at: datetime,
    note: str | None = None,
) -> int:
    cursor = await conn.execute(
        "INSERT INTO quota_ledger (guild_id, user_id, job_id, kind, seconds, cost_usd, at, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (guild_id, user_id, job_id, kind, seconds, cost_usd, to_db_time(at), note),
    )
    return int(cursor.lastrowid or 0)


def reserve_note(raw_seconds: float, weight: float, width: int, height: int) -> str:
    """The reserve entry's note: the unweighted figures, so `settle` can re-weight."""
    return json.dumps(
        {"raw_seconds": raw_seconds, "weight": weight, "width": width, "height": height},
        separators=(",", ":"),
    )


async def member_state(
    conn: aiosqlite.Connection, guild_id: int, user_id: int
) -> MemberLedgerState:
    """Latest reset, open reservations and latest reservation time, in one query."""
    rows = await conn.execute_fetchall(
        "WITH r AS (SELECT COALESCE(MAX(id), 0) AS reset_id FROM quota_ledger "
        "           WHERE guild_id = :g AND user_id = :u AND kind = 'reset') "
        "SELECT r.reset_id,"
        " (SELECT COUNT(*) FROM quota_ledger"
        "   WHERE guild_id = :g AND user_id = :u AND kind = 'reserve')"
        " - (SELECT COUNT(*) FROM quota_ledger"
        "   WHERE guild_id = :g AND user_id = :u AND kind IN ('settle', 'refund')) AS active,"
        " (SELECT MAX(at) FROM quota_ledger"
        "   WHERE guild_id = :g AND user_id = :u AND kind = 'reserve' AND id > r.reset_id)"
        "   AS last_reserve_at "
        "FROM r",
        {"g": guild_id, "u": user_id},
    )
    row = next(iter(rows))
    last = row["last_reserve_at"]
    return MemberLedgerState(
        reset_id=row["reset_id"],
        active=row["active"],
        last_reserve_at=from_db_time(last) if last is not None else None,
    )


async def window_charges(
    conn: aiosqlite.Connection, guild_id: int, user_id: int, *, after: datetime, reset_id: int
) -> list[JobCharge]:
    """Jobs reserved strictly after `after` and after entry `reset_id`, oldest first."""
    rows = await conn.execute_fetchall(
        "SELECT r.job_id AS job_id, r.at AS at, SUM(l.seconds) AS seconds,"
        " SUM(l.cost_usd) AS cost, MAX(l.kind IN ('settle', 'refund')) AS closed "
        "FROM quota_ledger r JOIN quota_ledger l ON l.job_id = r.job_id "
        "WHERE r.guild_id = ? AND r.user_id = ? AND r.kind = 'reserve' AND r.at > ? AND r.id > ? "
        "GROUP BY r.id ORDER BY r.at, r.id",
        (guild_id, user_id, to_db_time(after), reset_id),
    )
    return [
        JobCharge(
            job_id=row["job_id"],
            reserved_at=from_db_time(row["at"]),
            seconds=row["seconds"],
            cost_usd=row["cost"],
            closed=bool(row["closed"]),
        )
        for row in rows
    ]


async def guild_spend(conn: aiosqlite.Connection, guild_id: int, *, since: datetime) -> float:
    """USD of the guild's jobs reserved at or after `since` (net of settles and refunds)."""
    rows = await conn.execute_fetchall(
        "SELECT COALESCE(SUM(l.cost_usd), 0) FROM quota_ledger r "
        "JOIN quota_ledger l ON l.job_id = r.job_id "
        "WHERE r.guild_id = ? AND r.kind = 'reserve' AND r.at >= ?",
        (guild_id, to_db_time(since)),
    )
    return float(next(iter(rows))[0])


async def job_entries(conn: aiosqlite.Connection, job_id: int) -> list[LedgerEntry]:
    rows = await conn.execute_fetchall(
        "SELECT * FROM quota_ledger WHERE job_id = ? ORDER BY id", (job_id,)
    )
    return [_entry(r) for r in rows]


async def reservation(conn: aiosqlite.Connection, job_id: int) -> ReservationRow | None:
    """The job's reserve entry, its unweighted figures and closing kind (None: none)."""
    entries = await job_entries(conn, job_id)
    reserve = next((e for e in entries if e.kind == "reserve"), None)
    if reserve is None:
        return None
    closed_by = next((e.kind for e in entries if e.kind in CLOSING_KINDS), None)
    info: dict[str, Any] = json.loads(reserve.note) if reserve.note else {}
    weight = float(info.get("weight", 1.0))
    raw = float(info.get("raw_seconds", reserve.seconds / weight))
    return ReservationRow(entry=reserve, raw_seconds=raw, weight=weight, closed_by=closed_by)


async def member_entries(
    conn: aiosqlite.Connection, guild_id: int, user_id: int, *, limit: int = 1000
) -> list[LedgerEntry]:
    rows = await conn.execute_fetchall(
        "SELECT * FROM quota_ledger WHERE guild_id = ? AND user_id = ? ORDER BY id DESC LIMIT ?",
        (guild_id, user_id, limit),
    )
    return [_entry(r) for r in reversed(list(rows))]


async def entries_for_jobs(conn: aiosqlite.Connection, job_ids: Sequence[int]) -> list[LedgerEntry]:
    if not job_ids:
        return []
    rows = await conn.execute_fetchall(
        "SELECT * FROM quota_ledger WHERE job_id IN ("  # noqa: S608
        + ", ".join("?" for _ in job_ids)
        + ") ORDER BY id",
        list(job_ids),
    )
    return [_entry(r) for r in rows]
