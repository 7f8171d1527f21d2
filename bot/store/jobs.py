"""All SQL for `jobs` and `job_events`.

A job row is written (status `pending`) inside the caller's transaction, together with its
quota reservation; from then on only `transition()` changes its status, validating the move
against `TRANSITIONS` and writing one `job_events` row per change. The row keeps the full
`NegotiatedRequest` JSON in `params_json`, so the tracker can rebuild everything it needs
after a restart.

Read helpers accept either the `Database` or a `Connection` (the latter inside a caller's
`db.transaction()`, where using the `Database` would deadlock on its lock).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.db import Database, from_db_time, to_db_time
from bot.providers.base import Adjustment, Mode, NegotiatedRequest
from bot.store import wakeups
from bot.store._conn import Connection, DbOrConn, Row, fetchall, fetchone
from bot.store.job_records import (
    ACTIVE_STATUSES,
    TERMINAL_ORDER,
    TERMINAL_STATUSES,
    TRANSITIONS,
    InvalidTransitionError,
    JobEvent,
    JobRecord,
    SourceMessage,
    Status,
    UnknownJobError,
)

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "InvalidTransitionError",
    "JobEvent",
    "JobRecord",
    "SourceMessage",
    "Status",
    "UnknownJobError",
]

# (kept here: SQL derived from the status tuple)
_ACTIVE_SQL = "status NOT IN ({})".format(", ".join(f"'{s.value}'" for s in TERMINAL_ORDER))


def _time(value: str | None) -> datetime | None:
    return None if value is None else from_db_time(value)


def _record(row: Row) -> JobRecord:
    created = from_db_time(row["created_at"])
    return JobRecord(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        provider=row["provider"],
        model=row["model"],
        mode=Mode(row["mode"]),
        prompt=row["prompt"],
        status=Status(row["status"]),
        params_json=row["params_json"],
        adjustments=[Adjustment.model_validate(a) for a in json.loads(row["adjustments_json"])],
        provider_job_id=row["provider_job_id"],
        provider_data=json.loads(row["provider_data_json"]) if row["provider_data_json"] else {},
        seconds=row["seconds"],
        cost_usd=row["cost_usd"],
        progress=row["progress"],
        failure_reason=row["failure_reason"],
        attempts=row["attempts"],
        input_dir=Path(row["input_dir"]) if row["input_dir"] else None,
        interaction_message_id=row["interaction_message_id"],
        result_message_id=row["result_message_id"],
        result_channel_id=row["result_channel_id"],
        delivery_key=row["delivery_key"],
        source=(
            SourceMessage.model_validate_json(row["source_json"]) if row["source_json"] else None
        ),
        provider_flagged=bool(row["provider_flagged"]),
        origin=row["origin"],
        created_at=created,
        submitted_at=_time(row["submitted_at"]),
        provider_done_at=_time(row["provider_done_at"]),
        finished_at=_time(row["finished_at"]),
        updated_at=from_db_time(row["updated_at"]),
    )


# Columns the tracker may set besides `status`, and how each value is stored.
def _encode_field(name: str, value: Any) -> tuple[str, Any]:
    if name == "provider_data":
        return "provider_data_json", None if value is None else json.dumps(value)
    if name == "adjustments":
        return "adjustments_json", json.dumps(
            [a.model_dump(mode="json") if isinstance(a, Adjustment) else a for a in value]
        )
    if name == "input_dir":
        return "input_dir", None if value is None else str(value)
    if name == "provider_flagged":
        return name, int(bool(value))
    if name in {"submitted_at", "provider_done_at", "finished_at"}:
        return name, None if value is None else to_db_time(value)
    if name in {
        "provider_job_id",
        "seconds",
        "cost_usd",
        "progress",
        "failure_reason",
        "attempts",
        "result_message_id",
        "result_channel_id",
        "interaction_message_id",
    }:
        return name, value
    raise ValueError(f"jobs.{name} cannot be set through the job store")


async def _update(conn: Connection, job_id: int, now: datetime, values: dict[str, Any]) -> None:
    columns = ["updated_at = ?"]
    params: list[Any] = [to_db_time(now)]
    for name, value in values.items():
        column, encoded = _encode_field(name, value)
        columns.append(f"{column} = ?")
        params.append(encoded)
    params.append(job_id)
    await conn.execute(f"UPDATE jobs SET {', '.join(columns)} WHERE id = ?", params)  # noqa: S608


async def _fresh(conn: Connection, job_id: int) -> JobRecord:
    """The row after a write: the one copy callers keep (never patched field by field)."""
    row = await fetchone(conn, "SELECT * FROM jobs WHERE id = ?", (job_id,))
    if row is None:
        raise UnknownJobError(job_id)
    return _record(row)


async def _event(
    conn: Connection,
    job_id: int,
    from_status: Status | None,
    to_status: Status,
    reason: str,
    now: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO job_events (job_id, at, from_status, to_status, reason) VALUES (?,?,?,?,?)",
        (job_id, to_db_time(now), from_status, to_status, reason),
    )


# ----- writes ----------------------------------------------------------------------------


async def insert_job(
    conn: Connection,
    *,
    guild_id: int | None,
    channel_id: int | None,
    user_id: int,
    request: NegotiatedRequest,
    input_dir: Path | None,
    origin: str = "discord",
    source: SourceMessage | None = None,
    now: datetime,
) -> int:
    """Write a new job in status `pending` (call inside the caller's transaction)."""
    at = to_db_time(now)
    job_id = await conn.fetchval(
        "INSERT INTO jobs (guild_id, channel_id, user_id, provider, model, mode, prompt,"
        " params_json, adjustments_json, status, seconds, cost_usd, input_dir, origin,"
        " source_json, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " RETURNING id",
        (
            guild_id,
            channel_id,
            user_id,
            request.provider,
            request.model,
            request.mode.value,
            request.prompt,
            request.model_dump_json(),
            json.dumps([a.model_dump(mode="json") for a in request.adjustments]),
            Status.PENDING.value,
            float(request.duration),
            request.cost_usd,
            None if input_dir is None else str(input_dir),
            origin,
            None if source is None else source.model_dump_json(),
            at,
            at,
        ),
    )
    job_id = int(job_id)
    await _event(conn, job_id, None, Status.PENDING, f"created ({origin})", now)
    await wakeups.notify(conn, wakeups.NEW, job_id)  # other processes may claim it
    return job_id


async def transition(
    conn: Connection,
    job_id: int,
    to_status: Status | str,
    *,
    reason: str,
    now: datetime,
    **fields: Any,
) -> JobRecord:
    """Move a job to `to_status` (validated), set `fields`, write a job_events row, and
    return the row as now written.

    Timestamps are filled in when not given: `submitted_at` on `submitted`,
    `provider_done_at` on the first `downloading`, `finished_at` on a terminal status.
    Raises UnknownJobError / InvalidTransitionError (the caller's transaction then rolls back).
    """
    target = Status(to_status)
    while True:
        row = await fetchone(
            conn, "SELECT status, provider_done_at FROM jobs WHERE id = ?", (job_id,)
        )
        if row is None:
            raise UnknownJobError(job_id)
        current = Status(row["status"])
        if target not in TRANSITIONS[current]:
            raise InvalidTransitionError(job_id, current, target)
        # Only from the status just read: a concurrent transaction (PostgreSQL) that moved the
        # job first makes this change 0 rows, and the move is checked again from the new one.
        changed = await conn.execute(
            "UPDATE jobs SET status = ? WHERE id = ? AND status = ?",
            (target.value, job_id, current.value),
        )
        if changed:
            break
    values = dict(fields)
    if target is Status.SUBMITTED:
        values.setdefault("submitted_at", now)
    if target is Status.DOWNLOADING and row["provider_done_at"] is None:
        values.setdefault("provider_done_at", now)
    if target in TERMINAL_STATUSES:
        values.setdefault("finished_at", now)
    await _update(conn, job_id, now, values)
    await _event(conn, job_id, current, target, reason, now)
    if target is Status.CANCELLED:  # the process driving it stops at once
        await wakeups.notify(conn, wakeups.CANCEL, job_id)
    return await _fresh(conn, job_id)


async def update_job(conn: Connection, job_id: int, *, now: datetime, **fields: Any) -> JobRecord:
    """Set fields without a status change (progress, attempts, resume data...); returns the
    row as now written."""
    await _update(conn, job_id, now, fields)
    return await _fresh(conn, job_id)


async def add_note(conn: Connection, job_id: int, *, reason: str, now: datetime) -> None:
    """An event row without a status change (e.g. a submission retry), for the audit trail."""
    row = await fetchone(conn, "SELECT status FROM jobs WHERE id = ?", (job_id,))
    if row is None:
        raise UnknownJobError(job_id)
    status = Status(row["status"])
    await _event(conn, job_id, status, status, reason, now)


async def record_delivery(
    conn: Connection,
    job_id: int,
    *,
    channel_id: int | None,
    message_id: int | None,
    now: datetime,
) -> JobRecord:
    """Remember where the clip was posted. Done (and committed) before `delivered`."""
    await _update(
        conn, job_id, now, {"result_channel_id": channel_id, "result_message_id": message_id}
    )
    return await _fresh(conn, job_id)


async def assign_delivery_key(conn: Connection, job_id: int, *, now: datetime) -> JobRecord:
    """A random delivery key (kept if set); a job with one may have been posted already."""
    sql = "UPDATE jobs SET delivery_key = ?, updated_at = ? WHERE id = ? AND delivery_key IS NULL"
    await conn.execute(sql, (secrets.token_hex(8), to_db_time(now), job_id))
    return await _fresh(conn, job_id)


async def set_interaction_message(db: Database, job_id: int, message_id: int) -> None:
    await db.execute(
        "UPDATE jobs SET interaction_message_id = ? WHERE id = ?", (message_id, job_id)
    )


# ----- reads -----------------------------------------------------------------------------


async def get_job(src: DbOrConn, job_id: int) -> JobRecord | None:
    row = await fetchone(src, "SELECT * FROM jobs WHERE id = ?", (job_id,))
    return None if row is None else _record(row)


async def list_active(src: DbOrConn) -> list[JobRecord]:
    """Every unfinished job, oldest first."""
    rows = await fetchall(src, f"SELECT * FROM jobs WHERE {_ACTIVE_SQL} ORDER BY id")  # noqa: S608
    return [_record(row) for row in rows]


async def list_for_user(
    src: DbOrConn, guild_id: int | None, user_id: int, limit: int = 10
) -> list[JobRecord]:
    """A member's most recent jobs, newest first."""
    rows = await fetchall(
        src,
        "SELECT * FROM jobs WHERE guild_id IS NOT DISTINCT FROM ? AND user_id = ?"
        " ORDER BY id DESC LIMIT ?",
        (guild_id, user_id, limit),
    )
    return [_record(row) for row in rows]


async def list_events(src: DbOrConn, job_id: int) -> list[JobEvent]:
    rows = await fetchall(src, "SELECT * FROM job_events WHERE job_id = ? ORDER BY id", (job_id,))
    return [
        JobEvent(
            id=row["id"],
            job_id=row["job_id"],
            at=from_db_time(row["at"]),
            from_status=Status(row["from_status"]) if row["from_status"] else None,
            to_status=Status(row["to_status"]),
            reason=row["reason"],
        )
        for row in rows
    ]


async def count_active(src: DbOrConn, provider: str | None = None) -> dict[str, int]:
    """Unfinished jobs per status (optionally for one provider)."""
    sql = f"SELECT status, COUNT(*) AS n FROM jobs WHERE {_ACTIVE_SQL}"  # noqa: S608
    params: tuple[Any, ...] = ()
    if provider is not None:
        sql += " AND provider = ?"
        params = (provider,)
    rows = await fetchall(src, sql + " GROUP BY status", params)
    return {row["status"]: int(row["n"]) for row in rows}
