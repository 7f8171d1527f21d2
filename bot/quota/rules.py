"""Allowance rules, pure: which allowance applies, how seconds count, when they come back,
and the wording of every refusal. No database, no I/O (the ledger is `bot.quota.ledger`).

- A member's allowance, first that applies: their override (seconds, 0 = none, or
  unlimited) > the most generous of their roles that have an allowance (unlimited wins)
  > the guild default > `QUOTA_SECONDS_PER_DAY`. (A role allowance applies even when it
  is below the guild default, so a role can restrict as well as grant.)
- Seconds above 921,600 px per frame (HD, `bot.pricing.is_hd`) count `hd_weight` times
  (default 2, like the price).
- Rolling window (default 24 h): a job counts from its reservation time `t` while
  `t > now - window`; at exactly `t + window` its seconds are back.

Refusal messages are member-facing and carry Discord timestamp markup (`<t:…:R>`), built
by the private `_stamp`; cogs format their own times with `cogs.ui.timefmt`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from bot.pricing import is_hd

if TYPE_CHECKING:
    from bot.store.guilds import MemberAllowance, RoleAllowance
    from bot.store.quotas import JobCharge

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


def refills(charges: Sequence[JobCharge], window_seconds: int) -> list[tuple[datetime, float]]:
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


def cooldown_until(
    last_reserve_at: datetime | None, cooldown_seconds: int, now: datetime
) -> datetime | None:
    """When the member may reserve again after their latest reservation (None: now)."""
    if not cooldown_seconds or last_reserve_at is None:
        return None
    ready = last_reserve_at + timedelta(seconds=cooldown_seconds)
    return ready if ready > now else None


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


def _stamp(at: datetime, style: str) -> str:
    """Discord timestamp markup, rounded up so nobody is told to come back too early."""
    return f"<t:{math.ceil(_aware(at).timestamp())}:{style}>"


def _when(at: datetime) -> str:
    return f"{_stamp(at, 't')} ({_stamp(at, 'R')})"


def allowance_refusal(
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
        text += f" {fmt_seconds(first_seconds)} more at {_when(first_at)}."
        if ready is not None and ready != first_at:
            text += f" Enough for this clip at {_when(ready)}."
    text += " A shorter or smaller clip may fit now."
    return QuotaExceeded(text, refill_at=ready, reason="allowance")


def concurrency_refusal(active: int, cap: int) -> QuotaExceeded:
    return QuotaExceeded(
        f"You already have {active} clip{'s' if active != 1 else ''} in "
        f"progress (the limit is {cap}); wait for one to finish, then try again.",
        reason="concurrency",
    )


def cooldown_refusal(cooldown_seconds: int, ready: datetime) -> QuotaExceeded:
    return QuotaExceeded(
        f"This server has a {fmt_seconds(cooldown_seconds)} cooldown between "
        f"clips; you can start the next one {_stamp(ready, 'R')}.",
        refill_at=ready,
        reason="cooldown",
    )


def budget_refusal(renew: datetime) -> QuotaExceeded:
    return QuotaExceeded(
        "This server has used its video budget for this month; it renews "
        f"{_stamp(renew, 'D')} ({_stamp(renew, 'R')}).",
        refill_at=renew,
        reason="guild_budget",
    )
