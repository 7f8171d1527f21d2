"""Admin changes to allowances (`/videoadmin allowance …`), each audited in the same
transaction, and the overview the admin sees. Input is range-checked here
(`AllowanceInputError` says what to change).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot import limits
from bot.db import Database
from bot.moderation.audit import Change, admin_change
from bot.quota.ledger import reset_member
from bot.quota.rules import fmt_allowance, fmt_seconds
from bot.store import guilds as guild_store
from bot.store import quotas as ledger
from bot.store._conn import Connection
from bot.store.guilds import GuildSettings, MemberAllowance, RoleAllowance


class AllowanceInputError(Exception):
    """An admin's value is out of range; `message` says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AllowanceOverview(BaseModel):
    model_config = ConfigDict(frozen=True)

    settings: GuildSettings
    default_seconds: int  # the bot default (QUOTA_SECONDS_PER_DAY)
    default_max_concurrent: int | None
    roles: list[RoleAllowance]
    members: list[MemberAllowance]
    spent_this_month_usd: float
    over_quote_this_month_usd: float = 0.0  # billed above quotes, not charged


def _check_range(name: str, value: float, bound: limits.Bound, unit: str = "") -> None:
    if not bound.contains(value):
        raise AllowanceInputError(f"`{name}` must be {bound.between()}{unit}.")


async def overview(
    db: Database,
    *,
    guild_id: int,
    default_seconds: int,
    default_max_concurrent: int | None,
    now: datetime,
) -> AllowanceOverview:
    async with db.transaction() as conn:
        return AllowanceOverview(
            settings=await guild_store.get_guild_settings(conn, guild_id),
            default_seconds=default_seconds,
            default_max_concurrent=default_max_concurrent,
            roles=await guild_store.list_role_allowances(conn, guild_id),
            members=await guild_store.list_member_allowances(conn, guild_id),
            spent_this_month_usd=await ledger.guild_spend(
                conn, guild_id, month=ledger.month_key(now)
            ),
            over_quote_this_month_usd=await ledger.guild_over_quote(
                conn, guild_id, month=ledger.month_key(now)
            ),
        )


async def set_default(
    db: Database,
    *,
    guild_id: int,
    actor_id: int,
    seconds: int,
    window_hours: float | None,
    now: datetime,
    default_seconds: int,
) -> Change:
    _check_range("seconds", seconds, limits.ALLOWANCE_SECONDS, " s")
    fields: dict[str, Any] = {"quota_seconds": seconds}
    if window_hours is not None:
        _check_range("window_hours", window_hours, limits.WINDOW_HOURS, " h")
        fields["quota_window_seconds"] = round(window_hours * 3600)
    async with db.transaction() as conn:
        old = await guild_store.get_guild_settings(conn, guild_id)
        new = await guild_store.update_guild_settings(conn, guild_id, now=now, **fields)
        before = fmt_allowance(old.allowance_seconds(default_seconds), old.quota_window_seconds)
        after = fmt_allowance(new.allowance_seconds(default_seconds), new.quota_window_seconds)
        return await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            target_id=None,
            setting="default",
            summary=f"server default allowance: {before} → {after}",
            old={"seconds": old.quota_seconds, "window_seconds": old.quota_window_seconds},
            new={"seconds": new.quota_seconds, "window_seconds": new.quota_window_seconds},
            now=now,
        )


async def set_role(
    db: Database, *, guild_id: int, actor_id: int, role_id: int, seconds: int | None, now: datetime
) -> Change:
    if seconds is not None:
        _check_range("seconds", seconds, limits.ALLOWANCE_SECONDS, " s")
    async with db.transaction() as conn:
        previous = await guild_store.set_role_allowance(conn, guild_id, role_id, seconds, now=now)
        return await _allowance_change(
            conn,
            (guild_id, actor_id, now),
            ("role", None, f"role <@&{role_id}>"),
            None if previous is None else {"seconds": previous.seconds},
            {"role_id": role_id, "seconds": seconds},
        )


async def clear_role(
    db: Database, *, guild_id: int, actor_id: int, role_id: int, now: datetime
) -> Change | None:
    """Remove a role allowance; None (nothing audited) when the role had none."""
    async with db.transaction() as conn:
        previous = await guild_store.remove_role_allowance(conn, guild_id, role_id)
        if previous is None:
            return None
        return await _allowance_change(
            conn,
            (guild_id, actor_id, now),
            ("role", None, f"role <@&{role_id}>"),
            {"role_id": role_id, "seconds": previous.seconds},
            None,
        )


async def set_member(
    db: Database, *, guild_id: int, actor_id: int, user_id: int, seconds: int | None, now: datetime
) -> Change:
    if seconds is not None:
        _check_range("seconds", seconds, limits.ALLOWANCE_SECONDS, " s")
    async with db.transaction() as conn:
        previous = await guild_store.set_member_allowance(conn, guild_id, user_id, seconds, now=now)
        return await _allowance_change(
            conn,
            (guild_id, actor_id, now),
            ("member", user_id, f"<@{user_id}>"),
            None if previous is None else {"seconds": previous.seconds},
            {"seconds": seconds},
        )


async def clear_member(
    db: Database, *, guild_id: int, actor_id: int, user_id: int, now: datetime
) -> Change | None:
    """Remove a member override; None (nothing audited) when there was none."""
    async with db.transaction() as conn:
        previous = await guild_store.remove_member_allowance(conn, guild_id, user_id)
        if previous is None:
            return None
        return await _allowance_change(
            conn,
            (guild_id, actor_id, now),
            ("member", user_id, f"<@{user_id}>"),
            {"seconds": previous.seconds},
            None,
        )


async def _allowance_change(
    conn: Connection,
    who: tuple[int, int, datetime],
    holder: tuple[str, int | None, str],
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
) -> Change:
    """Audit a role or member allowance change: `who` = (guild, actor, when), `holder` =
    (setting, audited target, how the summary names it); a missing side reads "not set"."""
    guild_id, actor_id, now = who
    setting, target_id, label = holder

    def shown(side: dict[str, Any] | None) -> str:
        return "not set" if side is None else fmt_allowance(side["seconds"])

    return await admin_change(
        conn,
        guild_id=guild_id,
        actor_id=actor_id,
        target_id=target_id,
        setting=setting,
        summary=f"allowance of {label}: {shown(old)} → {shown(new)}",
        old=old,
        new=new,
        now=now,
    )


async def _set_field(
    db: Database,
    *,
    guild_id: int,
    actor_id: int,
    field: str,
    value: Any,
    label: str,
    show: Any,
    now: datetime,
) -> Change:
    async with db.transaction() as conn:
        old = await guild_store.get_guild_settings(conn, guild_id)
        new = await guild_store.update_guild_settings(conn, guild_id, now=now, **{field: value})
        old_value, new_value = getattr(old, field), getattr(new, field)
        return await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            target_id=None,
            setting=field,
            summary=f"{label}: {show(old_value)} → {show(new_value)}",
            old=old_value,
            new=new_value,
            now=now,
        )


async def set_concurrency(
    db: Database,
    *,
    guild_id: int,
    actor_id: int,
    jobs: int | None,
    now: datetime,
    default_max_concurrent: int | None,
) -> Change:
    """Cap open jobs per member (None: back to the bot default)."""
    if jobs is not None:
        _check_range("jobs", jobs, limits.JOBS_PER_MEMBER)

    def show(value: int | None) -> str:
        if value is not None:
            return str(value)
        return "bot default" + (
            f" ({default_max_concurrent})" if default_max_concurrent is not None else ""
        )

    return await _set_field(
        db,
        guild_id=guild_id,
        actor_id=actor_id,
        field="max_concurrent_jobs",
        value=jobs,
        label="concurrent jobs per member",
        show=show,
        now=now,
    )


async def set_cooldown(
    db: Database, *, guild_id: int, actor_id: int, seconds: int, now: datetime
) -> Change:
    _check_range("seconds", seconds, limits.COOLDOWN_SECONDS, " s")
    return await _set_field(
        db,
        guild_id=guild_id,
        actor_id=actor_id,
        field="cooldown_seconds",
        value=seconds,
        label="cooldown between clips",
        show=lambda v: "none" if not v else fmt_seconds(v),
        now=now,
    )


async def set_budget(
    db: Database, *, guild_id: int, actor_id: int, usd: float | None, now: datetime
) -> Change:
    """The guild's monthly USD budget (None or 0: no budget)."""
    if usd is not None:
        if math.isnan(usd):
            raise AllowanceInputError("`usd` must be a number.")
        _check_range("usd", usd, limits.MONTHLY_BUDGET_USD, " USD")
    return await _set_field(
        db,
        guild_id=guild_id,
        actor_id=actor_id,
        field="monthly_budget_usd",
        value=usd or None,
        label="monthly budget",
        show=lambda v: "none" if v is None else f"${v:,.2f}",
        now=now,
    )


async def set_hd_weight(
    db: Database, *, guild_id: int, actor_id: int, weight: float, now: datetime
) -> Change:
    if math.isnan(weight):
        raise AllowanceInputError("`weight` must be a number.")
    _check_range("weight", weight, limits.HD_WEIGHT, "×")
    return await _set_field(
        db,
        guild_id=guild_id,
        actor_id=actor_id,
        field="hd_weight",
        value=weight,
        label="HD weight",
        show=lambda v: f"{v:g}×",
        now=now,
    )


async def reset(
    db: Database, *, guild_id: int, actor_id: int, user_id: int, now: datetime
) -> Change:
    async with db.transaction() as conn:
        forgiven = await reset_member(
            conn, guild_id=guild_id, user_id=user_id, now=now, note=f"reset by <@{actor_id}>"
        )
        return await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            target_id=user_id,
            setting="reset",
            summary=f"allowance reset for <@{user_id}>: {fmt_seconds(forgiven)} used → 0 s",
            old={"counted_seconds": forgiven},
            new={"counted_seconds": 0},
            now=now,
        )
