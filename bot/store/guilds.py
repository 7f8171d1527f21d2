"""Guild settings, role allowances and member allowance overrides (SQL only).

Every function takes either the `Database` (it then runs its own transaction or read) or
the `conn` of a caller's `async with db.transaction() as conn:` block, so a change can be
written atomically with its audit entry.

Allowance seconds: `None` means unlimited, `0` means no allowance at all. A role or member
without a row has no allowance of its own (the next rule applies, see `bot.quota.rules`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.db import from_db_time, to_db_time, utcnow
from bot.limits import (
    ALLOWANCE_SECONDS,
    COOLDOWN_SECONDS,
    HD_WEIGHT,
    JOBS_PER_MEMBER,
    MONTHLY_BUDGET_USD,
    SAFETY_THRESHOLD,
    WINDOW_HOURS,
)
from bot.store._conn import Connection, DbOrConn, Row, fetchall, writing
from bot.store._driver import Dialect

DEFAULT_WINDOW_SECONDS = 86_400
DEFAULT_HD_WEIGHT = 2.0
DEFAULT_RETENTION_DAYS = 90
MAX_WINDOW_SECONDS = int(WINDOW_HOURS.high) * 3600  # 31 days


class GuildSettings(BaseModel):
    """A guild's settings with defaults filled in.

    Two values depend on the bot's environment and stay `None` when the guild has not set
    them: `quota_seconds` (→ QUOTA_SECONDS_PER_DAY) and `max_concurrent_jobs`
    (→ MAX_ACTIVE_JOBS_PER_MEMBER); use `allowance_seconds()` / `concurrency_cap()`.
    """

    model_config = ConfigDict(frozen=True)

    guild_id: int
    log_channel_id: int | None = None
    quota_seconds: int | None = Field(
        default=None, ge=ALLOWANCE_SECONDS.low, le=ALLOWANCE_SECONDS.high
    )
    quota_window_seconds: int = Field(default=DEFAULT_WINDOW_SECONDS, ge=60, le=MAX_WINDOW_SECONDS)
    hd_weight: float = Field(default=DEFAULT_HD_WEIGHT, ge=HD_WEIGHT.low, le=HD_WEIGHT.high)
    max_concurrent_jobs: int | None = Field(
        default=None, ge=JOBS_PER_MEMBER.low, le=JOBS_PER_MEMBER.high
    )
    cooldown_seconds: int = Field(default=0, ge=COOLDOWN_SECONDS.low, le=COOLDOWN_SECONDS.high)
    # 0 is stored as None (no budget), hence more than 0 here.
    monthly_budget_usd: float | None = Field(default=None, gt=0, le=MONTHLY_BUDGET_USD.high)
    retention_days: int = Field(default=DEFAULT_RETENTION_DAYS, ge=1, le=3650)
    # Animate (message context menu) on messages the member did not write: off by default.
    animate_others: bool = False
    # Output safety check; None: the defaults of bot.safety.policy.
    safety_mode: Literal["off", "spoiler", "hold"] | None = None
    safety_threshold: Annotated[float | None, SAFETY_THRESHOLD] = None
    updated_at: datetime | None = None

    def allowance_seconds(self, default_seconds: int) -> int:
        """The guild default allowance (seconds per window)."""
        return default_seconds if self.quota_seconds is None else self.quota_seconds

    def concurrency_cap(self, default_max_concurrent: int) -> int:
        return (
            default_max_concurrent if self.max_concurrent_jobs is None else self.max_concurrent_jobs
        )


SETTINGS_FIELDS: frozenset[str] = frozenset(
    {
        "log_channel_id",
        "quota_seconds",
        "quota_window_seconds",
        "hd_weight",
        "max_concurrent_jobs",
        "cooldown_seconds",
        "monthly_budget_usd",
        "retention_days",
        "animate_others",
        "safety_mode",
        "safety_threshold",
    }
)
_COLUMNS = ", ".join(sorted(SETTINGS_FIELDS))


class RoleAllowance(BaseModel):
    model_config = ConfigDict(frozen=True)

    guild_id: int
    role_id: int
    seconds: int | None  # None: unlimited
    updated_at: datetime


class MemberAllowance(BaseModel):
    model_config = ConfigDict(frozen=True)

    guild_id: int
    user_id: int
    seconds: int | None  # None: unlimited; 0: none
    updated_at: datetime


# ----- helpers ---------------------------------------------------------------------------


def _settings_from_row(guild_id: int, row: Row | None) -> GuildSettings:
    if row is None:
        return GuildSettings(guild_id=guild_id)
    values: dict[str, Any] = {k: row[k] for k in SETTINGS_FIELDS if row[k] is not None}
    return GuildSettings(guild_id=guild_id, updated_at=from_db_time(row["updated_at"]), **values)


# ----- guild settings --------------------------------------------------------------------


async def get_guild_settings(target: DbOrConn, guild_id: int) -> GuildSettings:
    rows = await fetchall(
        target,
        f"SELECT {_COLUMNS}, updated_at FROM guild_settings WHERE guild_id = ?",  # noqa: S608
        (guild_id,),
    )
    return _settings_from_row(guild_id, rows[0] if rows else None)


async def update_guild_settings(
    target: DbOrConn, guild_id: int, *, now: datetime | None = None, **fields: Any
) -> GuildSettings:
    """Set some settings (`None` restores a field's default); returns the new settings.

    Unknown field names raise TypeError; out-of-range values raise pydantic's
    ValidationError (nothing is written then). Changes to one guild are serialised (its lock
    until the transaction ends; SQLite's writer lock already does it), so two made at once
    both stay: the second reads the row the first wrote.
    """
    unknown = set(fields) - SETTINGS_FIELDS
    if unknown:
        raise TypeError(f"unknown guild setting(s): {', '.join(sorted(unknown))}")
    at = to_db_time(now or utcnow())
    async with writing(target) as conn:
        await conn.lock("guild_settings", guild_id)
        rows = await conn.fetchall(
            f"SELECT {_COLUMNS} FROM guild_settings WHERE guild_id = ?",  # noqa: S608
            (guild_id,),
        )
        raw: dict[str, Any] = {k: None for k in SETTINGS_FIELDS}
        for row in rows:
            raw.update({k: row[k] for k in SETTINGS_FIELDS})
        raw.update(fields)
        # Validate the merged values before writing anything.
        new = GuildSettings(
            guild_id=guild_id,
            updated_at=from_db_time(at),
            **{k: v for k, v in raw.items() if v is not None},
        )
        names = sorted(SETTINGS_FIELDS)
        await conn.execute(
            f"INSERT INTO guild_settings (guild_id, {', '.join(names)}, updated_at) "  # noqa: S608
            f"VALUES (?, {', '.join('?' for _ in names)}, ?) "
            f"ON CONFLICT (guild_id) DO UPDATE SET "
            + ", ".join(f"{n} = excluded.{n}" for n in names)
            + ", updated_at = excluded.updated_at",
            (guild_id, *(raw[n] for n in names), at),
        )
    return new


# ----- role allowances -------------------------------------------------------------------


def _role(row: Row) -> RoleAllowance:
    return RoleAllowance(
        guild_id=row["guild_id"],
        role_id=row["role_id"],
        seconds=row["seconds"],
        updated_at=from_db_time(row["updated_at"]),
    )


def _member(row: Row) -> MemberAllowance:
    return MemberAllowance(
        guild_id=row["guild_id"],
        user_id=row["user_id"],
        seconds=row["seconds"],
        updated_at=from_db_time(row["updated_at"]),
    )


def _check_seconds(seconds: int | None) -> None:
    if seconds is not None and not ALLOWANCE_SECONDS.contains(seconds):
        raise ValueError(f"allowance seconds must be {ALLOWANCE_SECONDS.between()} (or unlimited)")


async def list_role_allowances(target: DbOrConn, guild_id: int) -> list[RoleAllowance]:
    rows = await fetchall(
        target,
        "SELECT guild_id, role_id, seconds, updated_at FROM role_allowances "
        "WHERE guild_id = ? ORDER BY role_id",
        (guild_id,),
    )
    return [_role(r) for r in rows]


async def get_role_allowance(target: DbOrConn, guild_id: int, role_id: int) -> RoleAllowance | None:
    rows = await fetchall(
        target,
        "SELECT guild_id, role_id, seconds, updated_at FROM role_allowances "
        "WHERE guild_id = ? AND role_id = ?",
        (guild_id, role_id),
    )
    return _role(rows[0]) if rows else None


async def set_role_allowance(
    target: DbOrConn, guild_id: int, role_id: int, seconds: int | None, *, now: datetime
) -> RoleAllowance | None:
    """Give a role an allowance (`None`: unlimited); returns the previous one, if any."""
    _check_seconds(seconds)
    async with writing(target) as conn:
        previous = await get_role_allowance(conn, guild_id, role_id)
        await conn.execute(
            "INSERT INTO role_allowances (guild_id, role_id, seconds, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (guild_id, role_id) "
            "DO UPDATE SET seconds = excluded.seconds, updated_at = excluded.updated_at",
            (guild_id, role_id, seconds, to_db_time(now)),
        )
    return previous


async def remove_role_allowance(
    target: DbOrConn, guild_id: int, role_id: int
) -> RoleAllowance | None:
    """Remove a role's allowance; returns what was removed (None if there was none)."""
    async with writing(target) as conn:
        previous = await get_role_allowance(conn, guild_id, role_id)
        await conn.execute(
            "DELETE FROM role_allowances WHERE guild_id = ? AND role_id = ?", (guild_id, role_id)
        )
    return previous


# ----- member overrides ------------------------------------------------------------------


async def list_member_allowances(target: DbOrConn, guild_id: int) -> list[MemberAllowance]:
    rows = await fetchall(
        target,
        "SELECT guild_id, user_id, seconds, updated_at FROM member_allowances "
        "WHERE guild_id = ? ORDER BY user_id",
        (guild_id,),
    )
    return [_member(r) for r in rows]


async def get_member_allowance(
    target: DbOrConn, guild_id: int, user_id: int
) -> MemberAllowance | None:
    rows = await fetchall(
        target,
        "SELECT guild_id, user_id, seconds, updated_at FROM member_allowances "
        "WHERE guild_id = ? AND user_id = ?",
        (guild_id, user_id),
    )
    return _member(rows[0]) if rows else None


async def set_member_allowance(
    target: DbOrConn, guild_id: int, user_id: int, seconds: int | None, *, now: datetime
) -> MemberAllowance | None:
    """Override a member's allowance (`None`: unlimited, 0: none); returns the previous."""
    _check_seconds(seconds)
    async with writing(target) as conn:
        previous = await get_member_allowance(conn, guild_id, user_id)
        await conn.execute(
            "INSERT INTO member_allowances (guild_id, user_id, seconds, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (guild_id, user_id) "
            "DO UPDATE SET seconds = excluded.seconds, updated_at = excluded.updated_at",
            (guild_id, user_id, seconds, to_db_time(now)),
        )
    return previous


async def remove_member_allowance(
    target: DbOrConn, guild_id: int, user_id: int
) -> MemberAllowance | None:
    async with writing(target) as conn:
        previous = await get_member_allowance(conn, guild_id, user_id)
        await conn.execute(
            "DELETE FROM member_allowances WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
    return previous


class MemberRules(BaseModel):
    """Everything that decides one member's allowance, read in one query."""

    model_config = ConfigDict(frozen=True)

    settings: GuildSettings
    override: MemberAllowance | None
    roles: list[RoleAllowance]


# A member's rules as three JSON scalar subqueries, so a caller's query can read them in the
# same round trip (bot.store.quotas.member_snapshot does). Named parameters: :g (guild id),
# :u (user id), :roles (JSON array of the member's role ids). Parse with `rules_from_row`.
# JSON functions differ, hence one query per dialect.
_SETTINGS_JSON = ", ".join(f"'{name}', {name}" for name in sorted(SETTINGS_FIELDS))
RULES_COLUMNS_SQL: dict[Dialect, str] = {
    "sqlite": f"""
    (SELECT json_object({_SETTINGS_JSON}, 'updated_at', updated_at)
     FROM guild_settings WHERE guild_id = :g) AS rules_settings,
    (SELECT json_array(seconds, updated_at)
     FROM member_allowances WHERE guild_id = :g AND user_id = :u) AS rules_member,
    (SELECT json_group_array(json_array(role_id, seconds, updated_at))
     FROM role_allowances
     WHERE guild_id = :g AND role_id IN (SELECT value FROM json_each(:roles))) AS rules_roles
""",  # noqa: S608 (column names only)
    "postgresql": f"""
    (SELECT CAST(json_build_object({_SETTINGS_JSON}, 'updated_at', updated_at) AS TEXT)
     FROM guild_settings WHERE guild_id = :g) AS rules_settings,
    (SELECT CAST(json_build_array(seconds, updated_at) AS TEXT)
     FROM member_allowances WHERE guild_id = :g AND user_id = :u) AS rules_member,
    (SELECT CAST(COALESCE(json_agg(json_build_array(role_id, seconds, updated_at)), '[]')
                 AS TEXT)
     FROM role_allowances
     WHERE guild_id = :g AND role_id IN (
         SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(:roles AS JSON))
     )) AS rules_roles
""",  # noqa: S608 (column names only)
}


def rules_params(guild_id: int, user_id: int, role_ids: Sequence[int]) -> dict[str, Any]:
    return {"g": guild_id, "u": user_id, "roles": json.dumps(list(dict.fromkeys(role_ids)))}


def rules_from_row(guild_id: int, user_id: int, row: Row) -> MemberRules:
    settings = GuildSettings(guild_id=guild_id)
    if row["rules_settings"] is not None:
        values = {k: v for k, v in json.loads(row["rules_settings"]).items() if v is not None}
        values["updated_at"] = from_db_time(values["updated_at"])
        settings = GuildSettings(guild_id=guild_id, **values)
    override = None
    if row["rules_member"] is not None:
        seconds, at = json.loads(row["rules_member"])
        override = MemberAllowance(
            guild_id=guild_id, user_id=user_id, seconds=seconds, updated_at=from_db_time(at)
        )
    roles = [
        RoleAllowance(
            guild_id=guild_id, role_id=role_id, seconds=seconds, updated_at=from_db_time(at)
        )
        for role_id, seconds, at in json.loads(row["rules_roles"])
    ]
    return MemberRules(settings=settings, override=override, roles=roles)


async def member_rules(
    conn: Connection, guild_id: int, user_id: int, role_ids: Sequence[int]
) -> MemberRules:
    """The guild's settings, the member's override and the allowances of the given roles."""
    rows = await conn.fetchall(
        f"SELECT {RULES_COLUMNS_SQL[conn.dialect]}",
        rules_params(guild_id, user_id, role_ids),
    )
    return rules_from_row(guild_id, user_id, next(iter(rows)))
