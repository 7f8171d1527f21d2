"""Member blocks: who may not use /video in a guild, for how long, and the admin changes.

`check_member` is what /video asks; `block_member` / `unblock_member` are the audited admin
changes; `parse_duration` reads an admin's "30m", "2h", "1d12h".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bot.db import Database
from bot.moderation.audit import Change, admin_change
from bot.moderation.errors import ModerationError
from bot.store import blocks as block_store
from bot.store.blocks import BlockedMember

BLOCKED_MEMBER_MESSAGE = "You can't use /video in this server right now."
MAX_REASON_CHARS = 300
MAX_BLOCK_DAYS = 3650

_DURATION_PART = re.compile(
    r"(\d+)(minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w)"
)
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_FOREVER = frozenset({"", "forever", "indefinite", "indefinitely", "permanent", "never"})


async def check_member(db: Database, guild_id: int, user_id: int, now: datetime) -> str | None:
    """None when the member may use /video; else the neutral message to show them."""
    block = await block_store.active_block(db, guild_id, user_id, now)
    return None if block is None else BLOCKED_MEMBER_MESSAGE


def parse_duration(text: str | None) -> timedelta | None:
    """ "30m", "2h", "3d", "1w", "1d12h" → timedelta; empty/"forever" → None."""
    raw = (text or "").strip().lower()
    if raw in _FOREVER:
        return None
    compact = raw.replace(" ", "")
    total = 0
    position = 0
    for part in _DURATION_PART.finditer(compact):
        if part.start() != position:
            break
        total += int(part.group(1)) * _UNIT_SECONDS[part.group(2)[0]]
        position = part.end()
    if position != len(compact) or not compact:
        raise ModerationError(
            f"I can't read the duration `{text}`: use e.g. `30m`, `2h`, `3d`, `1w` or `1d12h` "
            "(or leave it empty to block until unblocked)."
        )
    if total < 60:
        raise ModerationError("A block must last at least one minute.")
    if total > MAX_BLOCK_DAYS * 86_400:
        raise ModerationError(
            f"A timed block can last at most {MAX_BLOCK_DAYS} days; leave the duration "
            "empty to block until unblocked."
        )
    return timedelta(seconds=total)


def describe_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0m"


async def block_member(
    db: Database,
    guild_id: int,
    user_id: int,
    *,
    actor_id: int,
    reason: str | None,
    duration: timedelta | None,
    now: datetime,
) -> Change:
    """Block (or re-block) a member from /video; `duration` None: until unblocked."""
    reason = " ".join(reason.split()) if reason else None
    if reason and len(reason) > MAX_REASON_CHARS:
        raise ModerationError(f"Keep the reason under {MAX_REASON_CHARS} characters.")
    expires = now + duration if duration is not None else None
    block = BlockedMember(
        guild_id=guild_id,
        user_id=user_id,
        reason=reason,
        blocked_by=actor_id,
        created_at=now,
        expires_at=expires,
    )
    async with db.transaction() as conn:
        previous = await block_store.active_block(conn, guild_id, user_id, now)
        await block_store.put_block(conn, block)
        until = f"for {describe_duration(duration)}" if duration else "until unblocked"
        summary = f"blocked member {user_id} from /video {until}"
        if reason:
            summary += f" (reason: {reason})"
        return await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            target_id=user_id,
            setting="blocked",
            summary=summary,
            old=_block_state(previous),
            new=_block_state(block),
            details={"reason": reason},
            now=now,
        )


def _block_state(block: BlockedMember | None) -> str:
    if block is None:
        return "not blocked"
    if block.expires_at is None:
        return "blocked until unblocked"
    return f"blocked until {block.expires_at.astimezone(UTC).isoformat(timespec='minutes')}"


async def unblock_member(
    db: Database, guild_id: int, user_id: int, *, actor_id: int, now: datetime
) -> Change | None:
    """Lift a block; None (nothing audited) when the member was not blocked."""
    async with db.transaction() as conn:
        previous = await block_store.active_block(conn, guild_id, user_id, now)
        await block_store.delete_block(conn, guild_id, user_id)
        if previous is None:
            return None
        return await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            target_id=user_id,
            setting="blocked",
            summary=f"unblocked member {user_id}",
            old=_block_state(previous),
            new="not blocked",
            now=now,
        )


async def active_block(
    db: Database, guild_id: int, user_id: int, now: datetime
) -> BlockedMember | None:
    return await block_store.active_block(db, guild_id, user_id, now)


async def list_blocked_members(db: Database, guild_id: int, now: datetime) -> list[BlockedMember]:
    return await block_store.list_active_blocks(db, guild_id, now)
