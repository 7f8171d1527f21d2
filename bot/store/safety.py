"""All SQL for `clip_checks`: one row per checked clip, and the decision on a held one.

The row is written once, before the clip is first posted (`record_check`; a second write for
the same job keeps the first), so a retry or a restart takes the same action. A held clip's
decision is made once: `decide` updates only a row without one, and tells the caller
whether it won.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bot.db import from_db_time, to_db_time
from bot.store._conn import Connection, DbOrConn, Row, fetchall, fetchone

Action = Literal["post", "spoiler", "hold"]
Decision = Literal["released", "discarded", "expired"]


class ClipCheck(BaseModel):
    """One `clip_checks` row."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    guild_id: int | None
    score: float
    labels: list[str]
    frames: int
    provider_flagged: bool
    threshold: float
    mode: Literal["off", "spoiler", "hold"]
    action: Action
    note: str | None
    checked_at: datetime
    hold_until: datetime | None = None
    hold_channel_id: int | None = None
    hold_message_id: int | None = None
    decision: Decision | None = None
    decided_by: int | None = None
    decided_at: datetime | None = None

    @property
    def pending_review(self) -> bool:
        return self.action == "hold" and self.decision is None


def _check(row: Row) -> ClipCheck:
    def at(name: str) -> datetime | None:
        return None if row[name] is None else from_db_time(row[name])

    checked = from_db_time(row["checked_at"])
    return ClipCheck(
        job_id=row["job_id"],
        guild_id=row["guild_id"],
        score=row["score"],
        labels=json.loads(row["labels_json"]),
        frames=row["frames"],
        provider_flagged=bool(row["provider_flagged"]),
        threshold=row["threshold"],
        mode=row["mode"],
        action=row["action"],
        note=row["note"],
        checked_at=checked,
        hold_until=at("hold_until"),
        hold_channel_id=row["hold_channel_id"],
        hold_message_id=row["hold_message_id"],
        decision=row["decision"],
        decided_by=row["decided_by"],
        decided_at=at("decided_at"),
    )


async def get_check(target: DbOrConn, job_id: int) -> ClipCheck | None:
    row = await fetchone(target, "SELECT * FROM clip_checks WHERE job_id = ?", (job_id,))
    return None if row is None else _check(row)


async def record_check(conn: Connection, check: ClipCheck) -> ClipCheck:
    """Write the check of a clip unless one exists; returns the row as stored."""
    await conn.execute(
        "INSERT INTO clip_checks (job_id, guild_id, score, labels_json, frames,"
        " provider_flagged, threshold, mode, action, note, checked_at, hold_until)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (job_id) DO NOTHING",
        (
            check.job_id,
            check.guild_id,
            check.score,
            json.dumps(check.labels),
            check.frames,
            int(check.provider_flagged),
            check.threshold,
            check.mode,
            check.action,
            check.note,
            to_db_time(check.checked_at),
            None if check.hold_until is None else to_db_time(check.hold_until),
        ),
    )
    stored = await get_check(conn, check.job_id)
    assert stored is not None
    return stored


async def set_hold_message(
    conn: Connection, job_id: int, *, channel_id: int, message_id: int
) -> None:
    """Remember the mod-log message with the Release/Discard buttons of a held clip."""
    await conn.execute(
        "UPDATE clip_checks SET hold_channel_id = ?, hold_message_id = ? WHERE job_id = ?",
        (channel_id, message_id, job_id),
    )


async def decide(
    conn: Connection, job_id: int, decision: Decision, *, by: int | None, now: datetime
) -> bool:
    """Decide a held clip; False when it was not held or someone decided first."""
    changed = await conn.execute(
        "UPDATE clip_checks SET decision = ?, decided_by = ?, decided_at = ?"
        " WHERE job_id = ? AND action = 'hold' AND decision IS NULL",
        (decision, by, to_db_time(now), job_id),
    )
    return changed == 1


async def held_clips(target: DbOrConn, guild_id: int) -> list[ClipCheck]:
    """The guild's clips waiting for a moderator, oldest first."""
    rows = await fetchall(
        target,
        "SELECT * FROM clip_checks WHERE guild_id = ? AND action = 'hold' AND decision IS NULL"
        " ORDER BY hold_until",
        (guild_id,),
    )
    return [_check(r) for r in rows]
