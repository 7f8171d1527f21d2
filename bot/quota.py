"""Allowances: per-member seconds of video per rolling window, reserved before submission.

Rules
- A member's allowance, first that applies: their override (seconds, 0 = none, or
  unlimited) > the most generous of their roles that have an allowance (unlimited wins)
  > the guild default > `QUOTA_SECONDS_PER_DAY`. (A role allowance applies even when it
  is below the guild default, so a role can restrict as well as grant.)
- Seconds above 921,600 px per frame (HD, `bot.pricing.is_hd`) count `hd_weight` times
  (default 2, like the price).
- Rolling window (default 24 h): a job counts from its reservation time `t` while
  `t > now - window`; at exactly `t + window` its seconds are back. Whatever happens to the
  job later (settle, refund) is dated at `t` too, so a settle never moves a refill.
- Also enforced at reservation: a cap on open reservations per member, a cooldown since the
  member's latest reservation, and an optional monthly USD budget for the whole guild
  (calendar month, UTC; a job counts in the month it was reserved).
- A member is never charged more seconds than were reserved: if the provider delivers more,
  the extra seconds are not charged (their cost is still recorded for the budget).

Accounting is the ledger in `bot.store.quotas` (its docstring has the sign convention).
`reserve`, `settle`, `refund` and `reset_member` take the `conn` of the caller's
`async with db.transaction() as conn:` (BEGIN IMMEDIATE), which makes the read-check-write
of a reservation atomic with the caller's job row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import aiosqlite
from pydantic import BaseModel, ConfigDict

from bot import moderation
from bot.db import Database
from bot.moderation import Change
from bot.pricing import is_hd
from bot.store import guilds as guild_store
from bot.store import quotas as ledger
from bot.store.guilds import (
    DEFAULT_WINDOW_SECONDS,
    DbOrConn,
    GuildSettings,
    MemberAllowance,
    MemberRules,
    RoleAllowance,
)

EPSILON = 1e-9

QuotaReason = Literal["allowance", "concurrency", "cooldown", "guild_budget"]


class QuotaExceeded(Exception):
    """A refused reservation. `message` is member-facing (Discord timestamp markup)."""

    def __init__(
        self,
        message: str,
        *,
        refill_at: datetime | None = None,
        reason: QuotaReason = "allowance",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.refill_at = refill_at
        self.reason = reason


class AllowanceInputError(Exception):
    """An admin's value is out of range; `message` says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Allowance(BaseModel):
    """A member's resolved allowance: seconds per window (None: unlimited) and why."""

    model_config = ConfigDict(frozen=True)

    seconds: int | None
    source: Literal["member", "role", "guild", "default"]
    role_id: int | None = None

    def describe(self) -> str:
        if self.source == "member":
            return "personal allowance"
        if self.source == "role":
            return f"role <@&{self.role_id}>"
        if self.source == "guild":
            return "server default"
        return "bot default"


class Reservation(BaseModel):
    model_config = ConfigDict(frozen=True)

    entry_id: int
    job_id: int
    guild_id: int
    user_id: int
    seconds: float  # weighted, what the member is charged
    raw_seconds: float
    weight: float
    cost_usd: float
    left_after: float | None  # None: unlimited


class Usage(BaseModel):
    """A member's allowance as of `now`. Seconds are weighted (HD counts `hd_weight`×)."""

    model_config = ConfigDict(frozen=True)

    guild_id: int
    user_id: int
    now: datetime
    allowance: Allowance
    window_seconds: int
    used: float  # finished jobs in the window
    reserved: float  # jobs still running in the window
    left: float | None  # None: unlimited
    next_refill_at: datetime | None
    next_refill_seconds: float
    active_jobs: int
    max_concurrent: int | None  # None: no cap
    cooldown_until: datetime | None
    hd_weight: float


# ----- pure rules ------------------------------------------------------------------------


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("timezone-aware datetime required")
    return now.astimezone(UTC)


def weight_for(width: int, height: int, hd_weight: float) -> float:
    return hd_weight if is_hd(width, height) else 1.0


def window_start(now: datetime, window_seconds: int) -> datetime:
    """Jobs reserved strictly after this instant count against the allowance."""
    return _aware(now) - timedelta(seconds=window_seconds)


def month_start(now: datetime) -> datetime:
    now = _aware(now)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_month_start(now: datetime) -> datetime:
    now = _aware(now)
    if now.month == 12:
        return datetime(now.year + 1, 1, 1, tzinfo=UTC)
    return datetime(now.year, now.month + 1, 1, tzinfo=UTC)


def resolve_allowance(
    override: MemberAllowance | None,
    roles: Sequence[RoleAllowance],
    guild_seconds: int | None,
    default_seconds: int,
) -> Allowance:
    """Override > most generous role (unlimited wins) > guild default > bot default."""
    if override is not None:
        return Allowance(seconds=override.seconds, source="member")
    if roles:
        unlimited = sorted(r.role_id for r in roles if r.seconds is None)
        if unlimited:
            return Allowance(seconds=None, source="role", role_id=unlimited[0])
        best = max(roles, key=lambda r: (r.seconds or 0, -r.role_id))
        return Allowance(seconds=best.seconds, source="role", role_id=best.role_id)
    if guild_seconds is not None:
        return Allowance(seconds=guild_seconds, source="guild")
    return Allowance(seconds=default_seconds, source="default")


def refills(
    charges: Sequence[ledger.JobCharge], window_seconds: int
) -> list[tuple[datetime, float]]:
    """When counted seconds come back: (time, seconds), earliest first."""
    by_time: dict[datetime, float] = {}
    for charge in charges:
        if charge.seconds > EPSILON:
            at = charge.reserved_at + timedelta(seconds=window_seconds)
            by_time[at] = by_time.get(at, 0.0) + charge.seconds
    return sorted(by_time.items())


def available_at(
    left: float, needed: float, schedule: Sequence[tuple[datetime, float]]
) -> datetime | None:
    """The first time `needed` seconds are available (None: never, with this allowance)."""
    if needed <= left + EPSILON:
        return None
    for at, seconds in schedule:
        left += seconds
        if needed <= left + EPSILON:
            return at
    return None


def fmt_seconds(value: float) -> str:
    if abs(value - round(value)) < 0.05:
        return f"{round(value):,} s"
    return f"{value:,.1f} s"


def fmt_window(window_seconds: int) -> str:
    if window_seconds % 86_400 == 0 and window_seconds > 86_400:
        return f"{window_seconds // 86_400} days"
    if window_seconds % 3600 == 0:
        return f"{window_seconds // 3600} h"
    return f"{window_seconds / 3600:.2f} h".replace(".00 h", " h")


def fmt_allowance(seconds: int | None, window_seconds: int | None = None) -> str:
    if seconds is None:
        return "unlimited"
    text = "none (0 s)" if seconds == 0 else fmt_seconds(seconds)
    return text if window_seconds is None else f"{text} per {fmt_window(window_seconds)}"


def discord_time(at: datetime, style: str = "t") -> str:
    """Discord timestamp markup, rounded up so nobody is told to come back too early."""
    return f"<t:{math.ceil(_aware(at).timestamp())}:{style}>"


def when(at: datetime) -> str:
    return f"{discord_time(at, 't')} ({discord_time(at, 'R')})"


def _allowance_refusal(
    *,
    allowance: Allowance,
    window_seconds: int,
    left: float,
    needed: float,
    weight: float,
    schedule: Sequence[tuple[datetime, float]],
) -> QuotaExceeded:
    hd = f" (HD counts {weight:g}×)" if weight > 1 else ""
    if allowance.seconds == 0:
        return QuotaExceeded(
            "You have no video allowance in this server; ask a moderator if you think "
            "that is a mistake.",
            reason="allowance",
        )
    assert allowance.seconds is not None
    if needed > allowance.seconds + EPSILON:
        return QuotaExceeded(
            f"This clip needs {fmt_seconds(needed)}{hd} but your allowance is "
            f"{fmt_allowance(allowance.seconds, window_seconds)}; choose a shorter duration "
            "or a lower resolution.",
            reason="allowance",
        )
    left = max(left, 0.0)
    text = f"You have {fmt_seconds(left)} of video left; this clip needs {fmt_seconds(needed)}{hd}."
    ready = available_at(left, needed, schedule)
    if schedule:
        first_at, first_seconds = schedule[0]
        text += f" {fmt_seconds(first_seconds)} more at {when(first_at)}."
        if ready is not None and ready != first_at:
            text += f" Enough for this clip at {when(ready)}."
    text += " A shorter or smaller clip may fit now."
    return QuotaExceeded(text, refill_at=ready, reason="allowance")


# ----- reserve / settle / refund ---------------------------------------------------------

# Per guild, the rolling window and whether a budget is set, as last read. The member's
# rules and ledger are read in one round trip, which needs the window up front: a stale
# hint (an admin just changed the window or budget) costs a second query, never a wrong
# answer.
_hints: dict[int, tuple[int, bool]] = {}


async def _member_view(
    conn: aiosqlite.Connection,
    *,
    guild_id: int,
    user_id: int,
    role_ids: Sequence[int],
    now: datetime,
    job_id: int | None = None,
) -> tuple[MemberRules, ledger.MemberSnapshot]:
    """The member's rules and their ledger over the guild's current window."""
    window, budget = _hints.get(guild_id, (DEFAULT_WINDOW_SECONDS, False))
    snap = await ledger.member_snapshot(
        conn,
        guild_id,
        user_id,
        after=window_start(now, window),
        job_id=job_id,
        month=ledger.month_key(now) if budget else None,
        role_ids=role_ids,
    )
    assert snap.rules is not None
    settings = snap.rules.settings
    actual = (settings.quota_window_seconds, settings.monthly_budget_usd is not None)
    if actual != (window, budget):
        _hints[guild_id] = actual
        again = await ledger.member_snapshot(
            conn,
            guild_id,
            user_id,
            after=window_start(now, actual[0]),
            job_id=job_id,
            month=ledger.month_key(now) if actual[1] else None,
        )
        return snap.rules, again
    return snap.rules, snap


async def reserve(
    conn: aiosqlite.Connection,
    *,
    guild_id: int,
    user_id: int,
    job_id: int,
    seconds: float,
    width: int,
    height: int,
    cost_usd: float,
    role_ids: Sequence[int],
    now: datetime,
    default_seconds: int,
    default_max_concurrent: int | None = None,
) -> Reservation:
    """Check every rule and write the job's 'reserve' entry, or raise QuotaExceeded.

    `default_max_concurrent` (MAX_ACTIVE_JOBS_PER_MEMBER) applies when the guild has set
    no concurrency cap; None: no cap then.
    """
    now = _aware(now)
    if not seconds > 0 or width <= 0 or height <= 0 or cost_usd < 0:
        raise ValueError("reserve needs seconds > 0, a positive size and cost_usd >= 0")
    rules, snap = await _member_view(
        conn, guild_id=guild_id, user_id=user_id, role_ids=role_ids, now=now, job_id=job_id
    )
    settings = rules.settings
    allowance = resolve_allowance(
        rules.override, rules.roles, settings.quota_seconds, default_seconds
    )
    weight = weight_for(width, height, settings.hd_weight)
    needed = seconds * weight
    if snap.job_reserved:
        raise ValueError(f"job {job_id} already has a reservation")

    if allowance.seconds == 0:
        raise _allowance_refusal(
            allowance=allowance,
            window_seconds=settings.quota_window_seconds,
            left=0,
            needed=needed,
            weight=weight,
            schedule=[],
        )
    cap = settings.max_concurrent_jobs or default_max_concurrent
    if cap is not None and snap.active >= cap:
        raise QuotaExceeded(
            f"You already have {snap.active} clip{'s' if snap.active != 1 else ''} in "
            f"progress (the limit is {cap}); wait for one to finish, then try again.",
            reason="concurrency",
        )
    if settings.cooldown_seconds and snap.last_reserve_at is not None:
        ready = snap.last_reserve_at + timedelta(seconds=settings.cooldown_seconds)
        if now < ready:
            raise QuotaExceeded(
                f"This server has a {fmt_seconds(settings.cooldown_seconds)} cooldown between "
                f"clips; you can start the next one {discord_time(ready, 'R')}.",
                refill_at=ready,
                reason="cooldown",
            )
    left: float | None = None
    if allowance.seconds is not None:
        left = allowance.seconds - sum(c.seconds for c in snap.charges)
        if needed > left + EPSILON:
            raise _allowance_refusal(
                allowance=allowance,
                window_seconds=settings.quota_window_seconds,
                left=left,
                needed=needed,
                weight=weight,
                schedule=refills(snap.charges, settings.quota_window_seconds),
            )
        left -= needed
    budget = settings.monthly_budget_usd
    if budget is not None and snap.guild_month_spend + cost_usd > budget + EPSILON:
        renew = next_month_start(now)
        raise QuotaExceeded(
            "This server has used its video budget for this month; it renews "
            f"{discord_time(renew, 'D')} ({discord_time(renew, 'R')}).",
            refill_at=renew,
            reason="guild_budget",
        )
    entry_id = await ledger.insert_entry(
        conn,
        guild_id=guild_id,
        user_id=user_id,
        job_id=job_id,
        kind="reserve",
        seconds=needed,
        cost_usd=cost_usd,
        at=now,
        note=ledger.reserve_note(seconds, weight, width, height),
    )
    return Reservation(
        entry_id=entry_id,
        job_id=job_id,
        guild_id=guild_id,
        user_id=user_id,
        seconds=needed,
        raw_seconds=seconds,
        weight=weight,
        cost_usd=cost_usd,
        left_after=left,
    )


async def settle(
    conn: aiosqlite.Connection, job_id: int, *, seconds: float, cost_usd: float, now: datetime
) -> None:
    """Record the job's final (unweighted) seconds and cost as a delta to its reservation.

    Idempotent (the first settle wins); no-op without a reservation or after a refund.
    The reservation's weight applies; charged seconds never exceed the reserved ones.
    """
    now = _aware(now)
    if seconds < 0 or cost_usd < 0:
        raise ValueError("settle needs seconds >= 0 and cost_usd >= 0")
    found = await ledger.reservation(conn, job_id)
    if found is None or found.closed_by is not None:
        return
    reserved = found.entry
    charged = min(seconds * found.weight, reserved.seconds)
    await ledger.insert_entry(
        conn,
        guild_id=reserved.guild_id,
        user_id=reserved.user_id,
        job_id=job_id,
        kind="settle",
        seconds=charged - reserved.seconds,
        cost_usd=cost_usd - reserved.cost_usd,
        at=now,
        note=json.dumps({"final_seconds": seconds, "final_cost_usd": cost_usd}),
    )


async def refund(conn: aiosqlite.Connection, job_id: int, *, reason: str, now: datetime) -> None:
    """Give a job's reservation back. Idempotent; no-op without one or once closed."""
    now = _aware(now)
    found = await ledger.reservation(conn, job_id)
    if found is None or found.closed_by is not None:
        return
    reserved = found.entry
    await ledger.insert_entry(
        conn,
        guild_id=reserved.guild_id,
        user_id=reserved.user_id,
        job_id=job_id,
        kind="refund",
        seconds=-reserved.seconds,
        cost_usd=-reserved.cost_usd,
        at=now,
        note=reason[:500],
    )


# ----- usage -----------------------------------------------------------------------------


async def usage_in(
    conn: aiosqlite.Connection,
    *,
    guild_id: int,
    user_id: int,
    role_ids: Sequence[int],
    now: datetime,
    default_seconds: int,
    default_max_concurrent: int | None = None,
) -> Usage:
    now = _aware(now)
    rules, snap = await _member_view(
        conn, guild_id=guild_id, user_id=user_id, role_ids=role_ids, now=now
    )
    settings = rules.settings
    allowance = resolve_allowance(
        rules.override, rules.roles, settings.quota_seconds, default_seconds
    )
    charges = snap.charges
    used = sum(c.seconds for c in charges if c.closed)
    reserved = sum(c.seconds for c in charges if not c.closed)
    schedule = refills(charges, settings.quota_window_seconds)
    cooldown_until = None
    if settings.cooldown_seconds and snap.last_reserve_at is not None:
        ready = snap.last_reserve_at + timedelta(seconds=settings.cooldown_seconds)
        cooldown_until = ready if ready > now else None
    return Usage(
        guild_id=guild_id,
        user_id=user_id,
        now=now,
        allowance=allowance,
        window_seconds=settings.quota_window_seconds,
        used=used,
        reserved=reserved,
        left=None if allowance.seconds is None else max(0.0, allowance.seconds - used - reserved),
        next_refill_at=schedule[0][0] if schedule else None,
        next_refill_seconds=schedule[0][1] if schedule else 0.0,
        active_jobs=snap.active,
        max_concurrent=settings.max_concurrent_jobs or default_max_concurrent,
        cooldown_until=cooldown_until,
        hd_weight=settings.hd_weight,
    )


async def usage(
    db: DbOrConn,
    *,
    guild_id: int,
    user_id: int,
    role_ids: Sequence[int],
    now: datetime,
    default_seconds: int,
    default_max_concurrent: int | None = None,
) -> Usage:
    """A member's allowance, usage, next refill and active jobs (a consistent snapshot)."""
    kwargs: dict[str, Any] = {
        "guild_id": guild_id,
        "user_id": user_id,
        "role_ids": role_ids,
        "now": now,
        "default_seconds": default_seconds,
        "default_max_concurrent": default_max_concurrent,
    }
    if isinstance(db, Database):
        async with db.transaction() as conn:
            return await usage_in(conn, **kwargs)
    return await usage_in(db, **kwargs)


async def reset_member(
    conn: aiosqlite.Connection, *, guild_id: int, user_id: int, now: datetime, note: str = ""
) -> float:
    """Append a 'reset' entry: usage in the current window (and the cooldown) start over.

    Returns the seconds that were counted before the reset. Open reservations stay open
    (they still count towards the concurrency cap) but no longer against the allowance.
    """
    now = _aware(now)
    settings = await guild_store.get_guild_settings(conn, guild_id)
    snap = await ledger.member_snapshot(
        conn, guild_id, user_id, after=window_start(now, settings.quota_window_seconds)
    )
    forgiven = sum(c.seconds for c in snap.charges)
    await ledger.insert_entry(
        conn,
        guild_id=guild_id,
        user_id=user_id,
        job_id=None,
        kind="reset",
        seconds=0.0,
        cost_usd=0.0,
        at=now,
        note=" ".join(filter(None, [note, f"({fmt_seconds(forgiven)} were counted)"]))[:500],
    )
    return forgiven


# ----- admin changes (each audited in the same transaction) ------------------------------


class AllowanceOverview(BaseModel):
    model_config = ConfigDict(frozen=True)

    settings: GuildSettings
    default_seconds: int  # the bot default (QUOTA_SECONDS_PER_DAY)
    default_max_concurrent: int | None
    roles: list[RoleAllowance]
    members: list[MemberAllowance]
    spent_this_month_usd: float


async def _audit(
    conn: aiosqlite.Connection,
    *,
    guild_id: int,
    actor_id: int,
    target_id: int | None,
    setting: str,
    summary: str,
    old: Any,
    new: Any,
    now: datetime,
) -> Change:
    audit_id = await moderation.audit(
        conn,
        guild_id=guild_id,
        kind=moderation.KIND_ADMIN,
        summary=summary,
        actor_id=actor_id,
        target_id=target_id,
        data={"setting": setting, "old": old, "new": new},
        now=now,
    )
    return Change(setting=setting, summary=summary, old=old, new=new, audit_id=audit_id)


def _check_range(name: str, value: float, low: float, high: float, unit: str = "") -> None:
    if not low <= value <= high:
        raise AllowanceInputError(f"`{name}` must be between {low:g} and {high:,g}{unit}.")


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
    _check_range("seconds", seconds, 0, 10_000_000, " s")
    fields: dict[str, Any] = {"quota_seconds": seconds}
    if window_hours is not None:
        _check_range("window_hours", window_hours, 1, 744, " h")
        fields["quota_window_seconds"] = round(window_hours * 3600)
    async with db.transaction() as conn:
        old = await guild_store.get_guild_settings(conn, guild_id)
        new = await guild_store.update_guild_settings(conn, guild_id, now=now, **fields)
        before = fmt_allowance(old.allowance_seconds(default_seconds), old.quota_window_seconds)
        after = fmt_allowance(new.allowance_seconds(default_seconds), new.quota_window_seconds)
        return await _audit(
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
        _check_range("seconds", seconds, 0, 10_000_000, " s")
    async with db.transaction() as conn:
        previous = await guild_store.set_role_allowance(conn, guild_id, role_id, seconds, now=now)
        before = "not set" if previous is None else fmt_allowance(previous.seconds)
        old = None if previous is None else {"seconds": previous.seconds}
        return await _audit(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            target_id=None,
            setting="role",
            summary=f"allowance of role <@&{role_id}>: {before} → {fmt_allowance(seconds)}",
            old=old,
            new={"role_id": role_id, "seconds": seconds},
            now=now,
        )


async def clear_role(
    db: Database, *, guild_id: int, actor_id: int, role_id: int, now: datetime
) -> Change | None:
    """Remove a role allowance; None (nothing audited) when the role had none."""
    async with db.transaction() as conn:
        previous = await guild_store.remove_role_allowance(conn, guild_id, role_id)
        if previous is None:
            return None
        return await _audit(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            target_id=None,
            setting="role",
            summary=f"allowance of role <@&{role_id}>: {fmt_allowance(previous.seconds)} → not set",
            old={"role_id": role_id, "seconds": previous.seconds},
            new=None,
            now=now,
        )


async def set_member(
    db: Database, *, guild_id: int, actor_id: int, user_id: int, seconds: int | None, now: datetime
) -> Change:
    if seconds is not None:
        _check_range("seconds", seconds, 0, 10_000_000, " s")
    async with db.transaction() as conn:
        previous = await guild_store.set_member_allowance(conn, guild_id, user_id, seconds, now=now)
        before = "not set" if previous is None else fmt_allowance(previous.seconds)
        return await _audit(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            target_id=user_id,
            setting="member",
            summary=f"allowance of <@{user_id}>: {before} → {fmt_allowance(seconds)}",
            old=None if previous is None else {"seconds": previous.seconds},
            new={"seconds": seconds},
            now=now,
        )


async def clear_member(
    db: Database, *, guild_id: int, actor_id: int, user_id: int, now: datetime
) -> Change | None:
    """Remove a member override; None (nothing audited) when there was none."""
    async with db.transaction() as conn:
        previous = await guild_store.remove_member_allowance(conn, guild_id, user_id)
        if previous is None:
            return None
        return await _audit(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            target_id=user_id,
            setting="member",
            summary=f"allowance of <@{user_id}>: {fmt_allowance(previous.seconds)} → not set",
            old={"seconds": previous.seconds},
            new=None,
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
        return await _audit(
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
        _check_range("jobs", jobs, 1, 100)

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
    _check_range("seconds", seconds, 0, 86_400, " s")
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
        _check_range("usd", usd, 0, 1_000_000, " USD")
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
    _check_range("weight", weight, 1, 10, "×")
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
        return await _audit(
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
