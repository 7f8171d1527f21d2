"""Allowances: per-member seconds of video per rolling window, reserved before submission.

Layout (callers use the names re-exported here):

- `rules`   pure rules and wording: which allowance applies, HD weight, the rolling
            window, refills, refusal messages, plain-text formatting (`fmt_*`)
- `ledger`  reserve / settle / refund a job's seconds, a member's usage, resets
- `admin`   the audited admin setters and the allowance overview

The SQL lives in `bot.store.quotas` and `bot.store.guilds`.
"""

from __future__ import annotations

from bot.pricing import is_hd
from bot.quota.admin import (
    AllowanceInputError,
    AllowanceOverview,
    clear_member,
    clear_role,
    overview,
    reset,
    set_budget,
    set_concurrency,
    set_cooldown,
    set_default,
    set_hd_weight,
    set_member,
    set_role,
)
from bot.quota.ledger import (
    Reservation,
    Usage,
    refund,
    reserve,
    reset_member,
    settle,
    usage,
    usage_in,
)
from bot.quota.rules import (
    EPSILON,
    Allowance,
    QuotaExceeded,
    QuotaReason,
    allowance_refusal,
    available_at,
    fmt_allowance,
    fmt_seconds,
    fmt_window,
    month_start,
    next_month_start,
    refills,
    resolve_allowance,
    weight_for,
    window_start,
)

__all__ = [
    "EPSILON",
    "Allowance",
    "AllowanceInputError",
    "AllowanceOverview",
    "QuotaExceeded",
    "QuotaReason",
    "Reservation",
    "Usage",
    "allowance_refusal",
    "available_at",
    "clear_member",
    "clear_role",
    "fmt_allowance",
    "fmt_seconds",
    "fmt_window",
    "is_hd",
    "month_start",
    "next_month_start",
    "overview",
    "refills",
    "refund",
    "reserve",
    "reset",
    "reset_member",
    "resolve_allowance",
    "set_budget",
    "set_concurrency",
    "set_cooldown",
    "set_default",
    "set_hd_weight",
    "set_member",
    "set_role",
    "settle",
    "usage",
    "usage_in",
    "weight_for",
    "window_start",
]
