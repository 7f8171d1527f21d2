"""All SQL for job leases and process heartbeats (`jobs.lease_owner`/`lease_until`, `instances`).

A process drives only the jobs whose lease it holds. `claim` takes unfinished jobs that no
live process holds (no owner, an expired lease, or this process's own from an earlier life);
on PostgreSQL the candidate rows are locked `FOR UPDATE SKIP LOCKED`, so two processes
claiming at once never take the same job and never wait for each other; on SQLite (one
process) the transaction's `BEGIN IMMEDIATE` serialises the same statement. `renew` is the
heartbeat: it extends this process's leases and says which it still holds (a job missing
from the answer was taken over, or ended elsewhere, e.g. cancelled). `hold` checks and
extends one lease inside the caller's transaction (the step that posts a clip: on
PostgreSQL the UPDATE locks the row until that transaction ends, so no claim can take the
job in between). `release` hands every lease back at a graceful stop, with a NOTIFY per job
so the others take them on at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from bot.db import from_db_time, to_db_time
from bot.store import wakeups
from bot.store._conn import Connection, DbOrConn, fetchall, writing
from bot.store.jobs import _ACTIVE_SQL, TERMINAL_STATUSES, JobRecord, _record

_CLAIMABLE = f"{_ACTIVE_SQL} AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)"
# Held by nobody (or by a process whose lease ran out): what a running process may take over.
_UNHELD = f"{_ACTIVE_SQL} AND (lease_owner IS NULL OR (lease_owner <> ? AND lease_until < ?))"


class InstanceInfo(BaseModel):
    """A process with a recent heartbeat, for `check`."""

    name: str
    shards: str | None
    started_at: datetime
    heartbeat_at: datetime
    jobs: int  # unfinished jobs whose lease it holds


async def claim(
    conn: Connection,
    owner: str,
    *,
    now: datetime,
    until: datetime,
    job_id: int | None = None,
    limit: int = 100,
    include_own: bool = True,
) -> list[JobRecord]:
    """Take up to `limit` claimable jobs (only `job_id` if given), oldest first; returns them
    with their new lease. Call inside a transaction. `include_own=False` leaves the jobs
    `owner` already holds alone (a job it admitted and is about to enqueue itself).

    On PostgreSQL a scan skips rows another transaction has locked (`SKIP LOCKED`: another
    process is claiming them); one job asked for by id waits for its row instead — another
    process's beat or cancel may have it for a moment, and skipping it would leave a job
    this process admitted held here but never driven."""
    lock = ""
    if conn.dialect == "postgresql":
        lock = " FOR UPDATE" if job_id is not None else " FOR UPDATE SKIP LOCKED"
    only = " AND id = ?" if job_id is not None else ""
    params: list[object] = [owner, to_db_time(until), owner, to_db_time(now)]
    if job_id is not None:
        params.append(job_id)
    params.append(limit)
    rows = await conn.fetchall(
        f"UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id IN ("  # noqa: S608
        f"SELECT id FROM jobs WHERE {_CLAIMABLE if include_own else _UNHELD}{only}"
        f" ORDER BY id LIMIT ?{lock}) RETURNING *",
        params,
    )
    return sorted((_record(row) for row in rows), key=lambda job: job.id)


async def renew(
    target: DbOrConn, owner: str, *, shards: str | None, now: datetime, until: datetime
) -> set[int]:
    """The heartbeat: extend every lease `owner` holds on an unfinished job, refresh its
    `instances` row; returns the ids of the jobs it still holds."""
    async with writing(target) as conn:
        await conn.execute(
            "INSERT INTO instances (name, shards, started_at, heartbeat_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET shards = excluded.shards,"
            " heartbeat_at = excluded.heartbeat_at",
            (owner, shards, to_db_time(now), to_db_time(now)),
        )
        rows = await conn.fetchall(
            f"UPDATE jobs SET lease_until = ? WHERE lease_owner = ? AND {_ACTIVE_SQL}"  # noqa: S608
            " RETURNING id",
            (to_db_time(until), owner),
        )
    return {row["id"] for row in rows}


async def hold(conn: Connection, job_id: int, owner: str, *, until: datetime) -> bool:
    """Inside the caller's transaction: True (and the lease extended to `until`) when `owner`
    still holds the unfinished job; False when another process took it or it ended."""
    rows = await conn.fetchall(
        f"UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND {_ACTIVE_SQL}"  # noqa: S608
        " RETURNING id",
        (to_db_time(until), job_id, owner),
    )
    return bool(rows)


async def release(target: DbOrConn, owner: str, job_ids: Iterable[int] | None = None) -> int:
    """Hand leases back (all of `owner`'s, or only `job_ids`); with all, the process's
    `instances` row goes too. Each job handed back wakes the other processes (a `new`
    NOTIFY at commit), so they take it on at once rather than at their next beat.
    Returns how many leases were released."""
    async with writing(target) as conn:
        released: list[Any] = []
        if job_ids is not None:
            for job_id in job_ids:
                rows = await conn.fetchall(
                    "UPDATE jobs SET lease_owner = NULL, lease_until = NULL"
                    " WHERE id = ? AND lease_owner = ? RETURNING id, status",
                    (job_id, owner),
                )
                released += rows
        else:
            rows = await conn.fetchall(
                "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?"
                " RETURNING id, status",
                (owner,),
            )
            released = list(rows)
            await conn.execute("DELETE FROM instances WHERE name = ?", (owner,))
        for row in released:  # finished jobs keep their last owner: no wake-up for those
            if row["status"] not in TERMINAL_STATUSES:
                await wakeups.notify(conn, wakeups.NEW, row["id"])
        return len(released)


async def live_instances(src: DbOrConn, *, since: datetime, now: datetime) -> list[InstanceInfo]:
    """Processes with a heartbeat at or after `since`, by name, with the jobs each holds."""
    rows = await fetchall(
        src,
        "SELECT i.name, i.shards, i.started_at, i.heartbeat_at, (SELECT COUNT(*) FROM jobs j"  # noqa: S608
        f" WHERE j.lease_owner = i.name AND j.lease_until >= ? AND j.{_ACTIVE_SQL}) AS jobs"
        " FROM instances i WHERE i.heartbeat_at >= ? ORDER BY i.name",
        (to_db_time(now), to_db_time(since)),
    )
    return [
        InstanceInfo(
            name=row["name"],
            shards=row["shards"],
            started_at=from_db_time(row["started_at"]),
            heartbeat_at=from_db_time(row["heartbeat_at"]),
            jobs=row["jobs"],
        )
        for row in rows
    ]


async def lease_of(src: DbOrConn, job_id: int) -> tuple[str | None, datetime | None]:
    """(owner, until) of a job's lease, for tests and `check`."""
    rows = await fetchall(src, "SELECT lease_owner, lease_until FROM jobs WHERE id = ?", (job_id,))
    if not rows:
        return None, None
    until = rows[0]["lease_until"]
    return rows[0]["lease_owner"], None if until is None else from_db_time(until)
