"""Retention: how long a guild keeps its audit log, and the pruning that enforces it.

`set_retention` is the audited admin change; `prune` / `prune_all` delete what is older
(the mod-log worker runs `prune_all` every few hours, which also purges expired blocks).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.db import Database
from bot.moderation.audit import KIND_PRUNE, Change, admin_change, audit
from bot.moderation.errors import ModerationError
from bot.store import audit as audit_store
from bot.store import blocks as block_store
from bot.store.guilds import DEFAULT_RETENTION_DAYS, get_guild_settings, update_guild_settings

log = logging.getLogger(__name__)

MIN_RETENTION_DAYS = 7
MAX_RETENTION_DAYS = 3650


async def retention_days(db: Database, guild_id: int) -> int:
    """How many days the guild keeps audit entries."""
    return (await get_guild_settings(db, guild_id)).retention_days


async def set_retention(
    db: Database, guild_id: int, days: int, *, actor_id: int, now: datetime
) -> tuple[Change, int]:
    """Set how long audit entries are kept, then prune; returns (change, entries removed)."""
    if not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise ModerationError(
            f"Keep the log between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS} days."
        )
    async with db.transaction() as conn:
        before = await get_guild_settings(conn, guild_id)
        await update_guild_settings(conn, guild_id, retention_days=days, now=now)
        change = await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            setting="retention_days",
            summary=f"audit retention: {before.retention_days} → {days} days",
            old=before.retention_days,
            new=days,
            now=now,
        )
    removed = await prune(db, guild_id, now)
    return change, removed


async def prune(db: Database, guild_id: int | None, now: datetime) -> int:
    """Delete the guild's audit entries older than its retention (default 90 days).

    One transaction: open the gate, delete, close the gate, and (when anything was
    deleted) record a "prune" entry. Returns the number of entries deleted.
    """
    async with db.transaction() as conn:
        days = DEFAULT_RETENTION_DAYS
        if guild_id is not None:
            days = (await get_guild_settings(conn, guild_id)).retention_days
        cutoff = now - timedelta(days=days)
        deleted = await audit_store.prune_before(conn, guild_id, cutoff)
        if deleted:
            await audit(
                conn,
                guild_id=guild_id,
                kind=KIND_PRUNE,
                summary=f"retention: removed {deleted} audit entries older than {days} days",
                data={"deleted": deleted, "cutoff": cutoff.isoformat(), "retention_days": days},
                now=now,
            )
    if deleted:
        log.info(
            "pruned %d audit entries of guild %s (older than %d days)", deleted, guild_id, days
        )
    return deleted


async def prune_all(db: Database, now: datetime) -> int:
    """Retention for every guild with audit entries, plus removal of expired blocks."""
    total = 0
    for guild_id in await audit_store.audit_guild_ids(db):
        total += await prune(db, guild_id, now)
    async with db.transaction() as conn:
        await block_store.purge_expired_blocks(conn, now)
    return total
