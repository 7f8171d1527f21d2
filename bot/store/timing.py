"""What the job tracker learned about provider timing (migration 0007): measured provider
times of finished jobs, first-poll times per job class, and each provider's progress mode.

Only *measured* times are samples (`record_measured`, written with the job's `downloading`
transition when polls bracketed the finish); `recent_durations` reads nothing else, so a
censored figure (a first poll that found the job long done) never comes back as exact.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel

from bot.db import to_db_time
from bot.store._conn import Connection, DbOrConn, fetchall

ClassKey = tuple[str, str | None, int, int, int, int]  # provider, model, duration, w, h, fps


class DurationSample(BaseModel):
    """How long one finished job took at the provider (submission → provider done)."""

    provider: str
    model: str | None
    duration: int
    width: int
    height: int
    fps: int
    seconds: float


async def record_measured(conn: Connection, job_id: int, seconds: float) -> None:
    """A job's provider time, pinned down by polls (bracketed, or the provider's ETA)."""
    await conn.execute(
        "INSERT INTO timing_measured_jobs (job_id, seconds) VALUES (?, ?)"
        " ON CONFLICT (job_id) DO UPDATE SET seconds = excluded.seconds",
        (job_id, seconds),
    )


async def recent_durations(
    src: DbOrConn, provider: str, *, limit: int = 500
) -> list[DurationSample]:
    """Measured provider times of the provider's most recent finished jobs, oldest first."""
    rows = await fetchall(
        src,
        "SELECT j.model, j.seconds AS video_seconds, j.params_json, m.seconds"
        " FROM timing_measured_jobs AS m JOIN jobs AS j ON j.id = m.job_id"
        " WHERE j.provider = ? ORDER BY m.job_id DESC LIMIT ?",
        (provider, limit),
    )
    samples: list[DurationSample] = []
    for row in reversed(rows):
        params = json.loads(row["params_json"])
        samples.append(
            DurationSample(
                provider=provider,
                model=row["model"],
                duration=int(params.get("duration", row["video_seconds"])),
                width=int(params.get("width", 0)),
                height=int(params.get("height", 0)),
                fps=int(params.get("fps", 0)),
                seconds=float(row["seconds"]),
            )
        )
    return samples


async def save_first_poll(
    conn: Connection, key: ClassKey, kind: str, seconds: float, *, now: datetime
) -> None:
    provider, model, duration, width, height, fps = key
    await conn.execute(
        "INSERT INTO timing_first_polls"
        " (provider, model, duration, width, height, fps, kind, seconds, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (provider, model, duration, width, height, fps, kind)"
        " DO UPDATE SET seconds = excluded.seconds, updated_at = excluded.updated_at",
        (provider, model or "", duration, width, height, fps, kind, seconds, to_db_time(now)),
    )


async def first_polls(src: DbOrConn, provider: str) -> list[tuple[ClassKey, str, float]]:
    """The provider's learned first-poll times: (class, kind, seconds after submission)."""
    rows = await fetchall(
        src,
        "SELECT model, duration, width, height, fps, kind, seconds FROM timing_first_polls"
        " WHERE provider = ? ORDER BY updated_at",
        (provider,),
    )
    return [
        (
            (
                provider,
                row["model"] or None,
                int(row["duration"]),
                int(row["width"]),
                int(row["height"]),
                int(row["fps"]),
            ),
            str(row["kind"]),
            float(row["seconds"]),
        )
        for row in rows
    ]


async def save_progress_mode(conn: Connection, provider: str, mode: str, *, now: datetime) -> None:
    """Whether `provider` reports progress/ETA ("yes" / "no")."""
    await conn.execute(
        "INSERT INTO timing_providers (provider, progress_mode, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (provider) DO UPDATE SET progress_mode = excluded.progress_mode,"
        " updated_at = excluded.updated_at",
        (provider, mode, to_db_time(now)),
    )


async def progress_modes(src: DbOrConn) -> dict[str, str]:
    rows = await fetchall(src, "SELECT provider, progress_mode FROM timing_providers")
    return {str(row["provider"]): str(row["progress_mode"]) for row in rows}
