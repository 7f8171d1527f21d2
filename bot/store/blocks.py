"""Blocked members and blocked terms (SQL only).

A block with `expires_at` in the past is simply inactive (expiry needs no timer); it is
replaced when the member is blocked again and removed by `purge_expired_blocks`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from bot.db import from_db_time, to_db_time
from bot.store._conn import Connection, DbOrConn, Row, fetchall


class BlockedMember(BaseModel):
    model_config = ConfigDict(frozen=True)

    guild_id: int
    user_id: int
    reason: str | None
    blocked_by: int
    created_at: datetime
    expires_at: datetime | None  # None: until unblocked

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


class BlockedTerm(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    guild_id: int
    pattern: str
    is_regex: bool
    added_by: int
    created_at: datetime


def _member(row: Row) -> BlockedMember:
    return BlockedMember(
        guild_id=row["guild_id"],
        user_id=row["user_id"],
        reason=row["reason"],
        blocked_by=row["blocked_by"],
        created_at=from_db_time(row["created_at"]),
        expires_at=from_db_time(row["expires_at"]) if row["expires_at"] else None,
    )


def _term(row: Row) -> BlockedTerm:
    return BlockedTerm(
        id=row["id"],
        guild_id=row["guild_id"],
        pattern=row["pattern"],
        is_regex=bool(row["is_regex"]),
        added_by=row["added_by"],
        created_at=from_db_time(row["created_at"]),
    )


# ----- members ---------------------------------------------------------------------------

_MEMBER_COLUMNS = "guild_id, user_id, reason, blocked_by, created_at, expires_at"


async def active_block(
    target: DbOrConn, guild_id: int, user_id: int, now: datetime
) -> BlockedMember | None:
    rows = await fetchall(
        target,
        f"SELECT {_MEMBER_COLUMNS} FROM blocked_members WHERE guild_id = ? AND user_id = ? "  # noqa: S608
        "AND (expires_at IS NULL OR expires_at > ?)",
        (guild_id, user_id, to_db_time(now)),
    )
    return _member(rows[0]) if rows else None


async def list_active_blocks(target: DbOrConn, guild_id: int, now: datetime) -> list[BlockedMember]:
    rows = await fetchall(
        target,
        f"SELECT {_MEMBER_COLUMNS} FROM blocked_members WHERE guild_id = ? "  # noqa: S608
        "AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at",
        (guild_id, to_db_time(now)),
    )
    return [_member(r) for r in rows]


async def put_block(conn: Connection, block: BlockedMember) -> None:
    await conn.execute(
        f"INSERT INTO blocked_members ({_MEMBER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "  # noqa: S608
        "ON CONFLICT (guild_id, user_id) DO UPDATE SET reason = excluded.reason, "
        "blocked_by = excluded.blocked_by, created_at = excluded.created_at, "
        "expires_at = excluded.expires_at",
        (
            block.guild_id,
            block.user_id,
            block.reason,
            block.blocked_by,
            to_db_time(block.created_at),
            to_db_time(block.expires_at) if block.expires_at else None,
        ),
    )


async def delete_block(conn: Connection, guild_id: int, user_id: int) -> None:
    await conn.execute(
        "DELETE FROM blocked_members WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
    )


async def purge_expired_blocks(conn: Connection, now: datetime) -> int:
    return await conn.execute(
        "DELETE FROM blocked_members WHERE expires_at IS NOT NULL AND expires_at <= ?",
        (to_db_time(now),),
    )


# ----- terms -----------------------------------------------------------------------------

_TERM_COLUMNS = "id, guild_id, pattern, is_regex, added_by, created_at"


async def list_terms(target: DbOrConn, guild_id: int) -> list[BlockedTerm]:
    rows = await fetchall(
        target,
        f"SELECT {_TERM_COLUMNS} FROM blocked_terms WHERE guild_id = ? ORDER BY id",  # noqa: S608
        (guild_id,),
    )
    return [_term(r) for r in rows]


async def insert_term(
    conn: Connection,
    *,
    guild_id: int,
    pattern: str,
    is_regex: bool,
    added_by: int,
    now: datetime,
) -> BlockedTerm:
    term_id = await conn.fetchval(
        "INSERT INTO blocked_terms (guild_id, pattern, is_regex, added_by, created_at) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (guild_id, pattern, int(is_regex), added_by, to_db_time(now)),
    )
    return BlockedTerm(
        id=int(term_id),
        guild_id=guild_id,
        pattern=pattern,
        is_regex=is_regex,
        added_by=added_by,
        created_at=now,
    )


async def delete_term(conn: Connection, guild_id: int, term_id: int) -> None:
    await conn.execute(
        "DELETE FROM blocked_terms WHERE guild_id = ? AND id = ?", (guild_id, term_id)
    )
