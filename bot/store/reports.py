"""Usage report reads (SQL only; the report itself is built in `bot.reports.usage`).

A job counts on the day (UTC) it was admitted, which is also when its quota reservation
was written: the ledger dates all of a job's entries at its reservation, and so does the
guild's monthly spend. Its spend is the sum of its ledger entries (reserve + settle or
refund): the quote while it runs, the settled cost once delivered, what the provider
billed anyway once refunded. Refusals come from the audit log (no job row is written).

Everything is grouped in SQL (per day, provider and status; per member), so a busy
server's thousands of jobs never become Python objects on the event loop.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.db import to_db_time
from bot.store._conn import DbOrConn, dialect, fetchall
from bot.store._driver import Dialect

# The two things about stored times the dialects say differently, as SQL templates: a time's
# UTC day as 'YYYY-MM-DD' (SQLite stores UTC ISO strings, `bot.db.to_db_time`, whose first
# 10 characters are the day; PostgreSQL a timestamptz), and the seconds from {0} to {1}.
_DAY: dict[Dialect, str] = {
    "sqlite": "substr({0}, 1, 10)",
    "postgresql": "to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
_SECONDS_BETWEEN: dict[Dialect, str] = {
    "sqlite": "(julianday({1}) - julianday({0})) * 86400.0",
    "postgresql": "EXTRACT(EPOCH FROM {1} - {0})",
}


def _per_job(src: DbOrConn) -> str:
    """The guild's jobs in the range, one row each with its day and net spend. (The member
    filter's NULL is typed by the CAST: PostgreSQL cannot infer the type of `? IS NULL`.)"""
    day = _DAY[dialect(src)].format("j.created_at")
    return f"""
    SELECT j.user_id, j.provider, j.status, j.seconds, j.created_at, j.finished_at,
        {day} AS day,
        (SELECT COALESCE(SUM(l.cost_usd), 0) FROM quota_ledger l WHERE l.job_id = j.id) AS spend
    FROM jobs j
    WHERE j.guild_id = ? AND j.created_at >= ? AND j.created_at < ?
        AND (CAST(? AS BIGINT) IS NULL OR j.user_id = ?)
"""  # noqa: S608 (constant fragments only)


class DayGroup(BaseModel):
    """The jobs of one day, provider and status."""

    model_config = ConfigDict(frozen=True)

    day: date
    provider: str
    status: str
    jobs: int
    seconds: float  # negotiated seconds of video (what a delivered job settled)
    spend_usd: float  # net of the jobs' ledger entries


class MemberGroup(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_id: int
    clips: int  # delivered
    seconds: float  # of the delivered clips
    spend_usd: float  # of all their jobs


def _params(
    guild_id: int, since: datetime, until: datetime, user_id: int | None
) -> tuple[Any, ...]:
    """The parameters of `_per_job` (and of the refusal query): the member twice."""
    return (guild_id, to_db_time(since), to_db_time(until), user_id, user_id)


async def day_groups(
    src: DbOrConn, guild_id: int, *, since: datetime, until: datetime, user_id: int | None = None
) -> list[DayGroup]:
    """The guild's (or one member's) jobs admitted in `since <= t < until`, grouped."""
    rows = await fetchall(
        src,
        f"WITH per_job AS ({_per_job(src)}) SELECT day, provider, status, COUNT(*) AS jobs,"  # noqa: S608
        " SUM(seconds) AS seconds, SUM(spend) AS spend FROM per_job"
        " GROUP BY day, provider, status ORDER BY day, provider, status",
        _params(guild_id, since, until, user_id),
    )
    return [
        DayGroup(
            day=date.fromisoformat(r["day"]),
            provider=r["provider"],
            status=r["status"],
            jobs=r["jobs"],
            seconds=float(r["seconds"]),
            spend_usd=float(r["spend"]),
        )
        for r in rows
    ]


async def member_groups(
    src: DbOrConn, guild_id: int, *, since: datetime, until: datetime, user_id: int | None = None
) -> list[MemberGroup]:
    """Per member: delivered clips and their seconds, and the spend of all their jobs."""
    rows = await fetchall(
        src,
        f"WITH per_job AS ({_per_job(src)}) SELECT user_id,"  # noqa: S608
        " SUM(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END) AS clips,"
        " SUM(CASE WHEN status = 'delivered' THEN seconds ELSE 0 END) AS seconds,"
        " SUM(spend) AS spend FROM per_job GROUP BY user_id ORDER BY user_id",
        _params(guild_id, since, until, user_id),
    )
    return [
        MemberGroup(
            user_id=r["user_id"],
            clips=r["clips"],
            seconds=float(r["seconds"]),
            spend_usd=float(r["spend"]),
        )
        for r in rows
    ]


async def median_time_to_clip(
    src: DbOrConn, guild_id: int, *, since: datetime, until: datetime, user_id: int | None = None
) -> float | None:
    """Median seconds from admission to posted of the delivered jobs (None: none)."""
    seconds = _SECONDS_BETWEEN[dialect(src)].format("created_at", "finished_at")
    rows = await fetchall(
        src,
        f"""WITH per_job AS ({_per_job(src)}), w AS (
            SELECT {seconds} AS s
            FROM per_job WHERE status = 'delivered' AND finished_at IS NOT NULL
        )
        SELECT AVG(s) FROM (
            SELECT s FROM w ORDER BY s
            LIMIT 2 - (SELECT COUNT(*) FROM w) % 2 OFFSET (SELECT (COUNT(*) - 1) / 2 FROM w)
        ) AS middle""",  # noqa: S608 (constant fragments only)
        _params(guild_id, since, until, user_id),
    )
    value = rows[0][0] if rows else None
    return None if value is None else float(value)


async def refusals_per_day(
    src: DbOrConn, guild_id: int, *, since: datetime, until: datetime, user_id: int | None = None
) -> dict[date, int]:
    """Refused /video requests per day (as long as the audit log keeps them)."""
    rows = await fetchall(
        src,
        f"SELECT {_DAY[dialect(src)].format('at')} AS day, COUNT(*) AS n FROM audit_log"  # noqa: S608
        " WHERE guild_id = ? AND kind = 'refusal' AND at >= ? AND at < ?"
        " AND (CAST(? AS BIGINT) IS NULL OR target_id = ?) GROUP BY day",
        _params(guild_id, since, until, user_id),
    )
    return {date.fromisoformat(r["day"]): int(r["n"]) for r in rows}
