"""Usage report reads (SQL only; the aggregation lives in `bot.reports.usage`).

A job counts on the day (UTC) it was admitted, which is also when its quota reservation
was written: the ledger dates all of a job's entries at its reservation, and so does the
guild's monthly spend. Its spend is the sum of its ledger entries (reserve + settle or
refund): the quote while it runs, the settled cost once delivered, what the provider
billed anyway once refunded. Refusals come from the audit log (no job row is written).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.db import from_db_time, to_db_time
from bot.store._conn import DbOrConn, fetchall


class JobUsageRow(BaseModel):
    """One job of the report's range, with its ledger sums."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    user_id: int
    provider: str
    status: str
    seconds: float  # negotiated seconds of video (what a delivered job settled)
    created_at: datetime
    finished_at: datetime | None
    spend_usd: float  # net of the job's ledger entries
    charged_seconds: float  # net weighted seconds charged to the member


class RefusalRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_id: int | None
    at: datetime
    reason: str | None


async def job_usage(
    src: DbOrConn,
    guild_id: int,
    *,
    since: datetime,
    until: datetime,
    user_id: int | None = None,
) -> list[JobUsageRow]:
    """The guild's (or one member's) jobs admitted in `since <= t < until`, oldest first."""
    sql = (
        "SELECT j.id, j.user_id, j.provider, j.status, j.seconds, j.created_at, j.finished_at,"
        " COALESCE(SUM(l.cost_usd), 0) AS spend, COALESCE(SUM(l.seconds), 0) AS charged"
        " FROM jobs j LEFT JOIN quota_ledger l ON l.job_id = j.id"
        " WHERE j.guild_id = ? AND j.created_at >= ? AND j.created_at < ?"
    )
    params: list[Any] = [guild_id, to_db_time(since), to_db_time(until)]
    if user_id is not None:
        sql += " AND j.user_id = ?"
        params.append(user_id)
    rows = await fetchall(src, sql + " GROUP BY j.id ORDER BY j.id", params)
    return [
        JobUsageRow(
            job_id=r["id"],
            user_id=r["user_id"],
            provider=r["provider"],
            status=r["status"],
            seconds=r["seconds"],
            created_at=from_db_time(r["created_at"]),
            finished_at=from_db_time(r["finished_at"]) if r["finished_at"] else None,
            spend_usd=float(r["spend"]),
            charged_seconds=float(r["charged"]),
        )
        for r in rows
    ]


async def refusals(
    src: DbOrConn,
    guild_id: int,
    *,
    since: datetime,
    until: datetime,
    user_id: int | None = None,
) -> list[RefusalRow]:
    """Refused /video requests in `since <= at < until` (as long as the audit log keeps them)."""
    sql = (
        "SELECT target_id, at, json_extract(data_json, '$.reason') AS reason FROM audit_log"
        " WHERE guild_id = ? AND kind = 'refusal' AND at >= ? AND at < ?"
    )
    params: list[Any] = [guild_id, to_db_time(since), to_db_time(until)]
    if user_id is not None:
        sql += " AND target_id = ?"
        params.append(user_id)
    rows = await fetchall(src, sql + " ORDER BY id", params)
    return [
        RefusalRow(
            user_id=r["target_id"],
            at=from_db_time(r["at"]),
            reason=r["reason"] if isinstance(r["reason"], str) else None,
        )
        for r in rows
    ]
