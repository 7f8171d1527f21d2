"""The server's live queue for `/videoadmin queue`: every unfinished job, oldest first."""

from __future__ import annotations

from collections.abc import Callable

from bot.store import jobs as job_store
from bot.store._conn import DbOrConn
from bot.store.jobs import JobRecord


async def guild_queue(
    db: DbOrConn, guild_id: int, position: Callable[[int], int | None]
) -> list[tuple[JobRecord, int | None]]:
    """The guild's unfinished jobs, oldest first, each with `position(job_id)`: its 1-based
    place in its provider's queue (None once it left it: with the provider, or posting);
    pass `VideoService.queue_position`."""
    active = await job_store.list_active(db)
    return [(job, position(job.id)) for job in active if job.guild_id == guild_id]
