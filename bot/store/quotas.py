"""The quota ledger (SQL only; the rules live in `bot.quota.rules`, its use in `bot.quota.ledger`).

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

A reserve entry's `note` keeps its unweighted figures as JSON (`reserve_note`) so that
`settle` applies the reservation's own HD weight. migrations/0002_quota.sql enforces one
reserve and one closing entry per job, refuses UPDATEs, and keeps `quota_guild_spend`
(USD per guild and calendar month of reservation) from every insert by a trigger.

All functions run on the `conn` of a caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from bot.db import from_db_time, to_db_time
from bot.store._conn import Connection, Row
from bot.store.guilds import RULES_COLUMNS_SQL, MemberRules, rules_from_row, rules_params

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


class MemberSnapshot(BaseModel):
    """A member's ledger as the rules need it, read in one query."""

    model_config = ConfigDict(frozen=True)

    reset_id: int  # id of the member's latest reset entry, 0 if none
    active: int  # reservations neither settled nor refunded (any time)
    last_reserve_at: datetime | None  # latest reservation after the latest reset
    job_reserved: bool  # the `job_id` asked about has a reservation already
    guild_month_spend: float  # the guild's USD in `month` (see guild_spend)
    charges: list[JobCharge]  # jobs reserved after `after` and after the reset, oldest first
    rules: MemberRules | None  # read along when `role_ids` was given


class ReservationRow(BaseModel):
    """A job's reserve entry and how it was closed, if it was."""

    model_config = ConfigDict(frozen=True)

    entry: LedgerEntry
    raw_seconds: float
    weight: float
    closed_by: EntryKind | None


def _entry(row: Row) -> LedgerEntry:
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
    conn: Connection,
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
    entry_id = await conn.fetchval(
        "INSERT INTO quota_ledger (guild_id, user_id, job_id, kind, seconds, cost_usd, at, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (guild_id, user_id, job_id, kind, seconds, cost_usd, to_db_time(at), note),
    )
    return int(entry_id)


async def lock_member(conn: Connection, guild_id: int, user_id: int) -> None:
    """Serialise a member's reservations (PostgreSQL; SQLite's BEGIN IMMEDIATE already does):
    the member's advisory lock until the transaction ends. A guild's monthly cap is
    serialised apart, and only around its own check: `lock_guild_spend`.
    """
    if conn.dialect == "sqlite":
        return
    await conn.lock("member", guild_id, user_id)


async def lock_guild_spend(conn: Connection, guild_id: int, *, month: str) -> float:
    """The guild's spend in `month` as committed now, its row locked until the transaction
    ends (PostgreSQL: `FOR UPDATE`, which waits for and then reads a concurrent
    reservation's update; the row is created at 0 first when missing, so that the first
    reservations of a month are serialised too). Take it right before checking the monthly
    cap: reservations of the guild queue only from there to their COMMIT, and one that did
    not see the budget (set by an admin meanwhile) does not check it at all. SQLite: the
    transaction already excludes every other writer; a plain read.
    """
    if conn.dialect == "sqlite":
        return await guild_spend(conn, guild_id, month=month)
    sql = "SELECT cost_usd FROM quota_guild_spend WHERE guild_id = ? AND month = ? FOR UPDATE"
    value = await conn.fetchval(sql, (guild_id, month))
    if value is None:
        await conn.execute(
            "INSERT INTO quota_guild_spend (guild_id, month, cost_usd) VALUES (?, ?, 0) "
            "ON CONFLICT (guild_id, month) DO NOTHING",
            (guild_id, month),
        )
        value = await conn.fetchval(sql, (guild_id, month))
    return float(value)


def reserve_note(raw_seconds: float, weight: float, width: int, height: int) -> str:
    """The reserve entry's note: the unweighted figures, so `settle` can re-weight."""
    return json.dumps(
        {"raw_seconds": raw_seconds, "weight": weight, "width": width, "height": height},
        separators=(",", ":"),
    )


async def member_snapshot(
    conn: Connection,
    guild_id: int,
    user_id: int,
    *,
    after: datetime,
    job_id: int | None = None,
    month: str | None = None,
    role_ids: Sequence[int] | None = None,
) -> MemberSnapshot:
    """Latest reset, open reservations, latest reservation and the window's jobs.

    A job is in the window when its reserve entry is strictly after `after` and after
    the member's latest reset entry (ledger ids are the order of events). `month`
    ('YYYY-MM'): also read the guild's spend in that month; without it
    `guild_month_spend` is 0. `role_ids`: also read the member's rules
    (`bot.store.guilds.member_rules`). All in one round trip.
    """
    spend = (
        "(SELECT COALESCE(SUM(cost_usd), 0) FROM quota_guild_spend"
        " WHERE guild_id = :g AND month = :month)"
        if month is not None
        else "0.0"
    )
    rules = RULES_COLUMNS_SQL[conn.dialect] if role_ids is not None else "NULL AS rules_settings"
    params: dict[str, Any] = {
        "g": guild_id,
        "u": user_id,
        "after": to_db_time(after),
        "job": job_id,
        "month": month,
    }
    if role_ids is not None:
        params.update(rules_params(guild_id, user_id, role_ids))
    rows = await conn.fetchall(
        f"""
        WITH st AS MATERIALIZED (
            SELECT COALESCE(MAX(id), 0) AS reset_id FROM quota_ledger
            WHERE guild_id = :g AND user_id = :u AND kind = 'reset'
        ), state AS MATERIALIZED (
            SELECT st.reset_id,
                (SELECT COUNT(*) FROM quota_ledger
                 WHERE guild_id = :g AND user_id = :u AND kind = 'reserve')
                - (SELECT COUNT(*) FROM quota_ledger
                   WHERE guild_id = :g AND user_id = :u AND kind IN ('settle', 'refund'))
                  AS active,
                (SELECT MAX(at) FROM quota_ledger
                 WHERE guild_id = :g AND user_id = :u AND kind = 'reserve' AND id > st.reset_id)
                  AS last_reserve_at,
                EXISTS (SELECT 1 FROM quota_ledger WHERE job_id = :job AND kind = 'reserve')
                  AS job_reserved,
                {spend} AS guild_month_spend,
                {rules}
            FROM st
        ), charges AS (
            SELECT r.id AS reserve_id, r.job_id, r.at, SUM(l.seconds) AS seconds,
                SUM(l.cost_usd) AS cost_usd,
                MAX(CASE WHEN l.kind IN ('settle', 'refund') THEN 1 ELSE 0 END) AS closed
            FROM st, quota_ledger r JOIN quota_ledger l ON l.job_id = r.job_id
            WHERE r.guild_id = :g AND r.user_id = :u AND r.kind = 'reserve'
                AND r.at > :after AND r.id > st.reset_id
            GROUP BY r.id
        )
        SELECT state.*, charges.* FROM state LEFT JOIN charges ON TRUE
        ORDER BY charges.at, charges.reserve_id
        """,  # noqa: S608 (constant fragments only)
        params,
    )
    rows = list(rows)
    first = rows[0]
    last = first["last_reserve_at"]
    return MemberSnapshot(
        reset_id=first["reset_id"],
        active=first["active"],
        last_reserve_at=from_db_time(last) if last is not None else None,
        job_reserved=bool(first["job_reserved"]),
        guild_month_spend=float(first["guild_month_spend"]),
        rules=rules_from_row(guild_id, user_id, first) if role_ids is not None else None,
        charges=[
            JobCharge(
                job_id=row["job_id"],
                reserved_at=from_db_time(row["at"]),
                seconds=row["seconds"],
                cost_usd=row["cost_usd"],
                closed=bool(row["closed"]),
            )
            for row in rows
            if row["job_id"] is not None
        ],
    )


def month_key(at: datetime) -> str:
    """The calendar month (UTC) a reservation counts in, as stored in quota_guild_spend."""
    return to_db_time(at)[:7]


async def guild_spend(conn: Connection, guild_id: int, *, month: str) -> float:
    """USD of the guild's jobs reserved in `month` ('YYYY-MM'), net of settles and refunds.

    Kept by the trigger in migrations/0002_quota.sql, from the ledger, in the same
    transaction as each entry.
    """
    rows = await conn.fetchall(
        "SELECT COALESCE(SUM(cost_usd), 0) FROM quota_guild_spend WHERE guild_id = ? AND month = ?",
        (guild_id, month),
    )
    return float(next(iter(rows))[0])


def _month_bounds(month: str) -> tuple[str, str]:
    """The stored-time range [start, end) of a calendar month 'YYYY-MM' (UTC)."""
    start = datetime.fromisoformat(f"{month}-01T00:00:00+00:00")
    end = (start + timedelta(days=32)).replace(day=1)
    return to_db_time(start), to_db_time(end)


async def guild_over_quote(conn: Connection, guild_id: int, *, month: str) -> float:
    """USD the providers billed above the quotes for the guild's jobs reserved in `month`
    (not charged; from the settle notes' `over_quote_usd`)."""
    rows = await conn.fetchall(
        "SELECT l.note FROM quota_ledger r "
        "JOIN quota_ledger l ON l.job_id = r.job_id AND l.kind = 'settle' "
        "WHERE r.guild_id = ? AND r.kind = 'reserve' AND r.at >= ? AND r.at < ? "
        "AND l.note IS NOT NULL",
        (guild_id, *_month_bounds(month)),
    )
    total = 0.0
    for row in rows:
        try:
            value = json.loads(row["note"]).get("over_quote_usd")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            total += float(value)
    return total


async def guild_spend_from_ledger(conn: Connection, guild_id: int, *, month: str) -> float:
    """The same figure summed from the ledger itself (for checks and tests)."""
    rows = await conn.fetchall(
        "SELECT COALESCE(SUM(l.cost_usd), 0) FROM quota_ledger r "
        "JOIN quota_ledger l ON l.job_id = r.job_id "
        "WHERE r.guild_id = ? AND r.kind = 'reserve' AND r.at >= ? AND r.at < ?",
        (guild_id, *_month_bounds(month)),
    )
    return float(next(iter(rows))[0])


async def job_entries(conn: Connection, job_id: int) -> list[LedgerEntry]:
    rows = await conn.fetchall("SELECT * FROM quota_ledger WHERE job_id = ? ORDER BY id", (job_id,))
    return [_entry(r) for r in rows]


async def reservation(conn: Connection, job_id: int) -> ReservationRow | None:
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
