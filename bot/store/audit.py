"""Audit log and mod-log outbox (SQL only).

`audit_log` is append-only: triggers reject UPDATE, and DELETE unless the prune gate is
open, which only `prune_before` does, inside the caller's transaction. `modlog_outbox`
holds the entries still to be posted to a guild's log channel.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.db import Database, from_db_time, to_db_time
from bot.store._conn import Connection, DbOrConn, Row, fetchall

_COLUMNS = "id, guild_id, at, kind, actor_id, target_id, channel_id, job_id, summary, data_json"


class AuditEntry(BaseModel):
    """One audit-log row; `data` is the structured detail (decoded `data_json`)."""

    model_config = ConfigDict(frozen=True)

    id: int
    guild_id: int | None
    at: datetime
    kind: str
    actor_id: int | None = None
    target_id: int | None = None
    channel_id: int | None = None
    job_id: int | None = None
    summary: str
    data: dict[str, Any] = Field(default_factory=dict)


class OutboxItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    audit_id: int
    guild_id: int
    attempts: int
    channel_id: int | None  # the guild's log channel now (None: it was turned off)


def _entry(row: Row) -> AuditEntry:
    try:
        data = json.loads(row["data_json"] or "{}")
    except ValueError:
        data = {"raw": row["data_json"]}
    return AuditEntry(
        id=row["id"],
        guild_id=row["guild_id"],
        at=from_db_time(row["at"]),
        kind=row["kind"],
        actor_id=row["actor_id"],
        target_id=row["target_id"],
        channel_id=row["channel_id"],
        job_id=row["job_id"],
        summary=row["summary"],
        data=data if isinstance(data, dict) else {"value": data},
    )


# ----- audit log -------------------------------------------------------------------------


async def insert_entry(
    conn: Connection,
    *,
    guild_id: int | None,
    at: datetime,
    kind: str,
    summary: str,
    actor_id: int | None,
    target_id: int | None,
    channel_id: int | None,
    job_id: int | None,
    data_json: str,
) -> int:
    audit_id = await conn.fetchval(
        "INSERT INTO audit_log (guild_id, at, kind, actor_id, target_id, channel_id, job_id, "
        "summary, data_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (guild_id, to_db_time(at), kind, actor_id, target_id, channel_id, job_id, summary,
         data_json),
    )  # fmt: skip
    return int(audit_id)


async def get_entry(target: DbOrConn, audit_id: int) -> AuditEntry | None:
    rows = await fetchall(target, f"SELECT {_COLUMNS} FROM audit_log WHERE id = ?", (audit_id,))  # noqa: S608
    return _entry(rows[0]) if rows else None


async def recent_entries(
    target: DbOrConn,
    guild_id: int | None,
    *,
    limit: int,
    member_id: int | None = None,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Newest first. `member_id` keeps entries where the member acted or was the target."""
    sql = f"SELECT {_COLUMNS} FROM audit_log WHERE guild_id IS NOT DISTINCT FROM ?"  # noqa: S608
    params: list[Any] = [guild_id]
    if member_id is not None:
        sql += " AND (target_id = ? OR actor_id = ?)"
        params += [member_id, member_id]
    if before_id is not None:
        sql += " AND id < ?"
        params.append(before_id)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [_entry(r) for r in await fetchall(target, sql, params)]


async def iter_entries_between(
    db: Database, guild_id: int | None, since: datetime, until: datetime, *, page: int = 500
) -> AsyncIterator[AuditEntry]:
    """Entries with `since <= at < until`, oldest first, read page by page."""
    after_id = 0
    while True:
        rows = await db.fetchall(
            f"SELECT {_COLUMNS} FROM audit_log WHERE guild_id IS NOT DISTINCT FROM ? "  # noqa: S608
            "AND at >= ? AND at < ? "
            "AND id > ? ORDER BY id LIMIT ?",
            (guild_id, to_db_time(since), to_db_time(until), after_id, page),
        )
        for row in rows:
            yield _entry(row)
        if len(rows) < page:
            return
        after_id = rows[-1]["id"]


async def audit_guild_ids(target: DbOrConn) -> list[int | None]:
    rows = await fetchall(target, "SELECT DISTINCT guild_id FROM audit_log")
    return [r[0] for r in rows]


async def prune_before(conn: Connection, guild_id: int | None, cutoff: datetime) -> int:
    """Delete the guild's entries older than `cutoff` (and their pending posts).

    Must run inside the caller's transaction: the gate is opened and closed again within it,
    so no other statement can delete while it is open.
    """
    await conn.execute("UPDATE audit_prune_gate SET open = 1 WHERE id = 1")
    deleted = await conn.execute(
        "DELETE FROM audit_log WHERE guild_id IS NOT DISTINCT FROM ? AND at < ?",
        (guild_id, to_db_time(cutoff)),
    )
    await conn.execute("UPDATE audit_prune_gate SET open = 0 WHERE id = 1")
    await conn.execute(
        "DELETE FROM modlog_outbox WHERE NOT EXISTS "
        "(SELECT 1 FROM audit_log WHERE audit_log.id = modlog_outbox.audit_id)"
    )
    return int(deleted)


# ----- mod-log outbox --------------------------------------------------------------------


async def enqueue_post(conn: Connection, audit_id: int, guild_id: int, now: datetime) -> bool:
    """Queue the entry for the guild's log channel, if the guild has one; True if queued."""
    channel = await conn.fetchval(
        "SELECT log_channel_id FROM guild_settings WHERE guild_id = ?", (guild_id,)
    )
    if channel is None:
        return False
    await conn.execute(
        "INSERT INTO modlog_outbox (audit_id, guild_id, attempts, next_try_at) VALUES (?, ?, 0, ?)",
        (audit_id, guild_id, to_db_time(now)),
    )
    return True


async def due_posts(
    target: DbOrConn, now: datetime, *, limit: int, guild_id: int | None = None
) -> list[OutboxItem]:
    """Due outbox rows (of one guild, if given), in audit order, with each guild's current
    log channel."""
    only = "" if guild_id is None else " AND o.guild_id = ?"
    params: tuple[object, ...] = (to_db_time(now),) if guild_id is None else (
        to_db_time(now), guild_id,
    )  # fmt: skip
    rows = await fetchall(
        target,
        "SELECT o.audit_id, o.guild_id, o.attempts, g.log_channel_id FROM modlog_outbox o "  # noqa: S608
        "LEFT JOIN guild_settings g ON g.guild_id = o.guild_id "
        f"WHERE o.next_try_at <= ?{only} ORDER BY o.audit_id LIMIT ?",
        (*params, limit),
    )
    return [
        OutboxItem(
            audit_id=r["audit_id"],
            guild_id=r["guild_id"],
            attempts=r["attempts"],
            channel_id=r["log_channel_id"],
        )
        for r in rows
    ]


async def next_post_due(target: DbOrConn, *, owner: str, now: datetime) -> datetime | None:
    """When `owner` has something to post next: the earliest entry's next try, except that a
    guild whose outbox lease another process holds (`modlog_leases`) waits for that lease to
    end — the holder posts it meanwhile, or its lease runs out (it died) and `owner` may."""
    rows = await fetchall(
        target,
        "SELECT MIN(CASE WHEN l.owner <> ? AND l.until > ? AND l.until > o.next_try_at"
        " THEN l.until ELSE o.next_try_at END)"
        " FROM modlog_outbox o LEFT JOIN modlog_leases l ON l.guild_id = o.guild_id",
        (owner, to_db_time(now)),
    )
    value = rows[0][0] if rows else None
    return from_db_time(value) if value else None


async def pending_posts(target: DbOrConn, guild_id: int | None = None) -> int:
    if guild_id is None:
        rows = await fetchall(target, "SELECT COUNT(*) FROM modlog_outbox")
    else:
        rows = await fetchall(
            target, "SELECT COUNT(*) FROM modlog_outbox WHERE guild_id = ?", (guild_id,)
        )
    return int(rows[0][0])


async def waiting_generation_jobs(target: DbOrConn) -> set[int]:
    """Job ids of the generation entries still queued for a mod-log channel."""
    rows = await fetchall(
        target,
        "SELECT a.job_id FROM modlog_outbox o JOIN audit_log a ON a.id = o.audit_id "
        "WHERE a.kind = 'generation' AND a.job_id IS NOT NULL",
    )
    return {int(r[0]) for r in rows}


async def post_done(conn: Connection, audit_id: int) -> None:
    await conn.execute("DELETE FROM modlog_outbox WHERE audit_id = ?", (audit_id,))


async def guild_posts_failed(
    conn: Connection, guild_id: int, *, now: datetime, retry_at: datetime, error: str
) -> None:
    """A post to the guild's channel failed: every due row of the guild waits until
    `retry_at` (so the guild's entries stay in order) and counts one more attempt."""
    await conn.execute(
        "UPDATE modlog_outbox SET attempts = attempts + 1, next_try_at = ?, last_error = ? "
        "WHERE guild_id = ? AND next_try_at <= ?",
        (to_db_time(retry_at), error, guild_id, to_db_time(now)),
    )


async def drop_exhausted(conn: Connection, max_attempts: int) -> list[tuple[int, int]]:
    """Remove rows that failed `max_attempts` times; returns their (audit_id, guild_id)."""
    rows = list(
        await conn.fetchall(
            "SELECT audit_id, guild_id FROM modlog_outbox WHERE attempts >= ? ORDER BY audit_id",
            (max_attempts,),
        )
    )
    await conn.execute("DELETE FROM modlog_outbox WHERE attempts >= ?", (max_attempts,))
    return [(r[0], r[1]) for r in rows]
