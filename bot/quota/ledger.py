"""The allowance ledger: reserve, settle and refund a job's seconds, a member's usage, and
an admin's reset. Checks every rule of `bot.quota.rules` at reservation.

- A job counts from its reservation time `t`; whatever happens to it later (settle,
  refund) is dated at `t` too, so a settle never moves a refill.
- Also enforced at reservation: a cap on open reservations per member, a cooldown since the
  member's latest reservation, and an optional monthly USD budget for the whole guild
  (calendar month, UTC; a job counts in the month it was reserved).
- A member is never charged more seconds than were reserved: if the provider delivers more,
  the extra seconds are not charged.
- The quote is a ceiling: neither the member nor the guild's monthly spend is charged
  more than the reservation's cost, so a budget checked at reservation holds at settle.
  When the provider bills more, the real cost stays in the settle note (`final_cost_usd`,
  `over_quote_usd`) and the over-quote is flagged in the audit log (and so the mod-log);
  `/videoadmin allowance show` shows the month's total above quotes.

The SQL is `bot.store.quotas` (its docstring has the sign convention). `reserve`, `settle`,
`refund` and `reset_member` take the `conn` of the caller's
`async with db.transaction() as conn:` (BEGIN IMMEDIATE), which makes the read-check-write
of a reservation atomic with the caller's job row; on PostgreSQL `reserve` and `reset_member`
first take the member's lock (`bot.store.quotas.lock_member`), `reserve` locks the guild's
spend row for the month right before the budget check (`lock_guild_spend`: only the budget
check is guild-wide), and settle / refund take the job's lock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from bot.moderation.audit import audit
from bot.quota.rules import (
    EPSILON,
    Allowance,
    _aware,
    allowance_refusal,
    budget_refusal,
    concurrency_refusal,
    cooldown_refusal,
    cooldown_until,
    fmt_seconds,
    next_month_start,
    refills,
    resolve_allowance,
    weight_for,
    window_start,
)
from bot.store import guilds as guild_store
from bot.store import quotas as ledger
from bot.store._conn import Connection, DbOrConn, writing
from bot.store.guilds import DEFAULT_WINDOW_SECONDS, MemberRules


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


# Per guild, the rolling window and whether a budget is set, as last read. The member's
# rules and ledger are read in one round trip, which needs the window up front: a stale
# hint (an admin just changed the window or budget) costs a second query, never a wrong
# answer.
_hints: dict[int, tuple[int, bool]] = {}


async def _member_view(
    conn: Connection,
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
    conn: Connection,
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
    await ledger.lock_member(conn, guild_id, user_id)
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
        raise allowance_refusal(
            allowance=allowance,
            window_seconds=settings.quota_window_seconds,
            left=0,
            needed=needed,
            weight=weight,
            schedule=[],
        )
    cap = settings.max_concurrent_jobs or default_max_concurrent
    if cap is not None and snap.active >= cap:
        raise concurrency_refusal(snap.active, cap)
    ready = cooldown_until(snap.last_reserve_at, settings.cooldown_seconds, now)
    if ready is not None:
        raise cooldown_refusal(settings.cooldown_seconds, ready)
    left: float | None = None
    if allowance.seconds is not None:
        left = allowance.seconds - sum(c.seconds for c in snap.charges)
        if needed > left + EPSILON:
            raise allowance_refusal(
                allowance=allowance,
                window_seconds=settings.quota_window_seconds,
                left=left,
                needed=needed,
                weight=weight,
                schedule=refills(snap.charges, settings.quota_window_seconds),
            )
        left -= needed
    budget = settings.monthly_budget_usd
    if budget is not None:  # the last check: the guild's reservations queue from here on
        spend = await ledger.lock_guild_spend(conn, guild_id, month=ledger.month_key(now))
        if spend + cost_usd > budget + EPSILON:
            raise budget_refusal(next_month_start(now))
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
    conn: Connection, job_id: int, *, seconds: float, cost_usd: float, now: datetime
) -> None:
    """Record the job's final (unweighted) seconds and cost as a delta to its reservation.

    Idempotent (the first settle wins); no-op without a reservation or after a refund.
    The reservation's weight applies; charged seconds never exceed the reserved ones and
    the charged cost never exceeds the quote (an excess is noted and audited, not charged).
    """
    now = _aware(now)
    if seconds < 0 or cost_usd < 0:
        raise ValueError("settle needs seconds >= 0 and cost_usd >= 0")
    await conn.lock("job", job_id)  # one closing entry per job, even across processes
    found = await ledger.reservation(conn, job_id)
    if found is None or found.closed_by is not None:
        return
    reserved = found.entry
    charged = min(seconds * found.weight, reserved.seconds)
    over = cost_usd - reserved.cost_usd if cost_usd > reserved.cost_usd + EPSILON else 0.0
    note: dict[str, float] = {"final_seconds": seconds, "final_cost_usd": cost_usd}
    if over:
        note["over_quote_usd"] = round(over, 6)
    await ledger.insert_entry(
        conn,
        guild_id=reserved.guild_id,
        user_id=reserved.user_id,
        job_id=job_id,
        kind="settle",
        seconds=charged - reserved.seconds,
        cost_usd=min(cost_usd, reserved.cost_usd) - reserved.cost_usd,
        at=now,
        note=json.dumps(note),
    )
    if over:
        await audit(
            conn,
            guild_id=reserved.guild_id,
            kind="over_quote",
            summary=(
                f"The video service billed ${cost_usd:,.2f} for job {job_id}, quoted at "
                f"${reserved.cost_usd:,.2f}; the ${over:,.2f} above the quote was not "
                "charged to the member or the monthly budget."
            ),
            target_id=reserved.user_id,
            job_id=job_id,
            data={"quoted_usd": reserved.cost_usd, "billed_usd": cost_usd, "over_usd": over},
            now=now,
        )


async def refund(
    conn: Connection, job_id: int, *, reason: str, now: datetime, billed_usd: float = 0.0
) -> None:
    """Give a job's reservation back. Idempotent; no-op without one or once closed.

    The member always gets all their seconds back. `billed_usd`: what the provider billed
    anyway (a cancelled job it had already accepted); that much of the cost (at most the
    quote) stays in the guild's monthly spend, so the spend matches the provider's bill.
    """
    now = _aware(now)
    if billed_usd < 0:
        raise ValueError("refund needs billed_usd >= 0")
    await conn.lock("job", job_id)  # one closing entry per job, even across processes
    found = await ledger.reservation(conn, job_id)
    if found is None or found.closed_by is not None:
        return
    reserved = found.entry
    kept = min(billed_usd, reserved.cost_usd)
    note = reason if not kept else f"{reason} (provider billed ${kept:,.2f}: kept in spend)"
    await ledger.insert_entry(
        conn,
        guild_id=reserved.guild_id,
        user_id=reserved.user_id,
        job_id=job_id,
        kind="refund",
        seconds=-reserved.seconds,
        cost_usd=kept - reserved.cost_usd,
        at=now,
        note=note[:500],
    )


# ----- usage -----------------------------------------------------------------------------


async def usage_in(
    conn: Connection,
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
        cooldown_until=cooldown_until(snap.last_reserve_at, settings.cooldown_seconds, now),
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
    async with writing(db) as conn:
        return await usage_in(
            conn,
            guild_id=guild_id,
            user_id=user_id,
            role_ids=role_ids,
            now=now,
            default_seconds=default_seconds,
            default_max_concurrent=default_max_concurrent,
        )


async def reset_member(
    conn: Connection, *, guild_id: int, user_id: int, now: datetime, note: str = ""
) -> float:
    """Append a 'reset' entry: usage in the current window (and the cooldown) start over.

    Returns the seconds that were counted before the reset. Open reservations stay open
    (they still count towards the concurrency cap) but no longer against the allowance.
    """
    now = _aware(now)
    await ledger.lock_member(conn, guild_id, user_id)
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
