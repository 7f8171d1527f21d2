"""Reserve / settle / refund / reset / usage against a real migrated SQLite database."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from bot import quota
from bot.db import Database, to_db_time
from bot.quota import ledger as quota_ledger
from bot.store import guilds as guild_store
from bot.store import quotas as ledger
from bot.store._conn import Connection

G, U = 111, 222
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SD = (1280, 720)
HD = (1920, 1080)

# 0002 exists: migration numbers must not have gaps.


async def insert_job(conn: Connection, guild_id: int, user_id: int, now: datetime) -> int:
    at = to_db_time(now)
    job_id = await conn.fetchval(
        "INSERT INTO jobs (guild_id, user_id, provider, mode, prompt, params_json, "
        "created_at, updated_at) VALUES (?, ?, 'simulator', 'text-to-video', 'a cat', '{}', ?, ?)"
        " RETURNING id",
        (guild_id, user_id, at, at),
    )
    return int(job_id)


async def submit(
    db: Database,
    *,
    seconds: float = 5,
    size: tuple[int, int] = SD,
    now: datetime = T0,
    user_id: int = U,
    guild_id: int = G,
    roles: tuple[int, ...] = (),
    cost: float = 0.1,
    default_seconds: int = 60,
    default_max_concurrent: int | None = None,
) -> quota.Reservation:
    """What /video does: job row + reservation in one transaction."""
    async with db.transaction() as conn:
        job_id = await insert_job(conn, guild_id, user_id, now)
        return await quota.reserve(
            conn,
            guild_id=guild_id,
            user_id=user_id,
            job_id=job_id,
            seconds=seconds,
            width=size[0],
            height=size[1],
            cost_usd=cost,
            role_ids=roles,
            now=now,
            default_seconds=default_seconds,
            default_max_concurrent=default_max_concurrent,
        )


pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)


async def usage_at(db: Database, now: datetime, **kw) -> quota.Usage:
    kw.setdefault("role_ids", ())
    kw.setdefault("default_seconds", 60)
    return await quota.usage(db, guild_id=G, user_id=U, now=now, **kw)


async def settle(db: Database, job_id: int, seconds: float, cost: float, now: datetime) -> None:
    async with db.transaction() as conn:
        await quota.settle(conn, job_id, seconds=seconds, cost_usd=cost, now=now)


async def refund(db: Database, job_id: int, now: datetime, reason: str = "failed") -> None:
    async with db.transaction() as conn:
        await quota.refund(conn, job_id, reason=reason, now=now)


async def entries(db: Database, job_id: int) -> list[ledger.LedgerEntry]:
    async with db.transaction() as conn:
        return await ledger.job_entries(conn, job_id)


# ----- reserve ---------------------------------------------------------------------------


async def test_reserve_writes_one_entry_referencing_the_job(db):
    res = await submit(db, seconds=5, cost=0.1)
    assert (res.seconds, res.raw_seconds, res.weight, res.left_after) == (5, 5, 1.0, 55)
    [entry] = await entries(db, res.job_id)
    assert (entry.kind, entry.seconds, entry.cost_usd, entry.job_id) == (
        "reserve",
        5,
        0.1,
        res.job_id,
    )
    assert (entry.guild_id, entry.user_id, entry.at) == (G, U, T0)


async def test_allowance_is_exact_and_refusal_explains(db):
    for i in range(12):
        await submit(db, seconds=5, now=T0 + timedelta(minutes=i))
    with pytest.raises(quota.QuotaExceeded) as info:
        await submit(db, seconds=5, now=T0 + timedelta(minutes=30))
    exc = info.value
    assert exc.reason == "allowance"
    assert exc.refill_at == T0 + timedelta(days=1)
    assert exc.message.startswith("You have 0 s of video left; this clip needs 5 s.")
    unix = int((T0 + timedelta(days=1)).timestamp())
    assert f"5 s more at <t:{unix}:t> (<t:{unix}:R>)" in exc.message


async def test_refused_reservation_writes_nothing(db):
    await submit(db, seconds=60)
    with pytest.raises(quota.QuotaExceeded):
        await submit(db, seconds=1)
    count = await db.fetchval("SELECT COUNT(*) FROM quota_ledger")
    jobs = await db.fetchval("SELECT COUNT(*) FROM jobs")
    assert (count, jobs) == (1, 1)  # the refused job row rolled back with it


async def test_rolling_window_boundary_is_exact(db):
    await submit(db, seconds=60, now=T0)
    just_before = T0 + timedelta(days=1) - timedelta(microseconds=1)
    with pytest.raises(quota.QuotaExceeded) as info:
        await submit(db, seconds=1, now=just_before)
    assert info.value.refill_at == T0 + timedelta(days=1)
    before = await usage_at(db, just_before)
    assert (before.left, before.reserved) == (0, 60)
    # At exactly t + window the seconds are back.
    at = await usage_at(db, T0 + timedelta(days=1))
    assert (at.left, at.reserved, at.next_refill_at) == (60, 0, None)
    await submit(db, seconds=60, now=T0 + timedelta(days=1))


async def test_refusal_tells_when_enough_comes_back(db):
    await submit(db, seconds=20, now=T0)
    await submit(db, seconds=20, now=T0 + timedelta(hours=1))
    await submit(db, seconds=15, now=T0 + timedelta(hours=2))
    with pytest.raises(quota.QuotaExceeded) as info:  # 5 s left, needs 30 s
        await submit(db, seconds=30, now=T0 + timedelta(hours=3))
    # +20 at T0+24h → 25 s: not enough; +20 at T0+25h → 45 s: enough.
    assert info.value.refill_at == T0 + timedelta(hours=25)
    assert "You have 5 s of video left; this clip needs 30 s. 20 s more at" in info.value.message
    assert "Enough for this clip at" in info.value.message


async def test_hd_seconds_count_double_by_default_and_weight_is_configurable(db):
    res = await submit(db, seconds=10, size=HD)
    assert (res.seconds, res.weight, res.left_after) == (20, 2.0, 40)
    await guild_store.update_guild_settings(db, G, hd_weight=3.0)
    res = await submit(db, seconds=10, size=HD, now=T0 + timedelta(seconds=1))
    assert (res.seconds, res.left_after) == (30, 10)
    with pytest.raises(quota.QuotaExceeded) as info:
        await submit(db, seconds=5, size=HD, now=T0 + timedelta(seconds=2))
    assert "needs 15 s (HD counts 3×)" in info.value.message
    await submit(db, seconds=10, size=SD, now=T0 + timedelta(seconds=3))  # SD fits


async def test_roles_overrides_and_guild_default(db):
    now = T0
    await guild_store.update_guild_settings(db, G, quota_seconds=10)
    await guild_store.set_role_allowance(db, G, 501, 30, now=now)
    await guild_store.set_role_allowance(db, G, 502, 90, now=now)
    await guild_store.set_role_allowance(db, G, 503, None, now=now)
    assert (await usage_at(db, now)).allowance.seconds == 10  # guild default
    assert (await usage_at(db, now, role_ids=[501])).allowance.seconds == 30
    got = await usage_at(db, now, role_ids=[501, 502, 999])
    assert (got.allowance.seconds, got.allowance.role_id, got.left) == (90, 502, 90)
    assert (await usage_at(db, now, role_ids=[502, 503])).left is None  # unlimited wins
    await guild_store.set_member_allowance(db, G, U, 0, now=now)
    zero = await usage_at(db, now, role_ids=[503])
    assert (zero.allowance.seconds, zero.allowance.source, zero.left) == (0, "member", 0)
    with pytest.raises(quota.QuotaExceeded) as info:
        await submit(db, seconds=1, roles=(503,))
    assert info.value.reason == "allowance"
    assert "no video allowance" in info.value.message
    assert info.value.refill_at is None


async def test_unlimited_member_is_never_refused_for_allowance(db):
    await guild_store.set_member_allowance(db, G, U, None, now=T0)
    for i in range(5):
        res = await submit(db, seconds=100, size=HD, now=T0 + timedelta(seconds=i))
        assert res.left_after is None
    got = await usage_at(db, T0 + timedelta(seconds=5))
    assert (got.left, got.reserved) == (None, 1000)


async def test_concurrency_cap_counts_open_reservations(db):
    await guild_store.update_guild_settings(db, G, max_concurrent_jobs=2)
    first = await submit(db, seconds=1)
    await submit(db, seconds=1)
    with pytest.raises(quota.QuotaExceeded) as info:
        await submit(db, seconds=1)
    assert info.value.reason == "concurrency"
    assert "2 clips in progress (the limit is 2)" in info.value.message
    await settle(db, first.job_id, 1, 0.1, T0)
    await submit(db, seconds=1)  # a slot is free again


async def test_default_concurrency_cap_applies_when_guild_sets_none(db):
    await submit(db, seconds=1, default_max_concurrent=1)
    with pytest.raises(quota.QuotaExceeded) as info:
        await submit(db, seconds=1, default_max_concurrent=1)
    assert info.value.reason == "concurrency"
    await guild_store.update_guild_settings(db, G, max_concurrent_jobs=3)
    await submit(db, seconds=1, default_max_concurrent=1)  # the guild's cap wins


async def test_cooldown_since_last_reservation(db):
    await guild_store.update_guild_settings(db, G, cooldown_seconds=30)
    first = await submit(db, seconds=1, now=T0)
    await refund(db, first.job_id, T0 + timedelta(seconds=1))
    with pytest.raises(quota.QuotaExceeded) as info:
        await submit(db, seconds=1, now=T0 + timedelta(seconds=29))
    assert info.value.reason == "cooldown"
    assert info.value.refill_at == T0 + timedelta(seconds=30)
    assert f"<t:{int((T0 + timedelta(seconds=30)).timestamp())}:R>" in info.value.message
    got = await usage_at(db, T0 + timedelta(seconds=29))
    assert got.cooldown_until == T0 + timedelta(seconds=30)
    await submit(db, seconds=1, now=T0 + timedelta(seconds=30))


async def test_guild_budget_per_calendar_month(db):
    quota_ledger._hints.clear()  # the first reservation learns that there is a budget
    await guild_store.update_guild_settings(db, G, monthly_budget_usd=1.0)
    end_of_june = datetime(2025, 6, 30, 23, 0, tzinfo=UTC)
    a = await submit(db, seconds=1, cost=0.6, now=end_of_june, user_id=1)
    await submit(db, seconds=1, cost=0.4, now=end_of_june, user_id=2)  # exactly the budget
    with pytest.raises(quota.QuotaExceeded) as info:
        await submit(db, seconds=1, cost=0.01, now=end_of_june, user_id=3)
    assert info.value.reason == "guild_budget"
    assert info.value.refill_at == datetime(2025, 7, 1, tzinfo=UTC)
    # A refund gives the money back to the month the job was reserved in.
    await refund(db, a.job_id, datetime(2025, 7, 1, 0, 30, tzinfo=UTC))
    await submit(db, seconds=1, cost=0.5, now=end_of_june, user_id=3)
    # July starts from zero, whatever June did.
    await submit(db, seconds=1, cost=1.0, now=datetime(2025, 7, 1, tzinfo=UTC), user_id=4)
    # Other guilds are not affected.
    await submit(db, seconds=1, cost=5.0, now=end_of_june, user_id=5, guild_id=G + 1)
    async with db.transaction() as conn:
        for month in ("2025-06", "2025-07"):
            kept = await ledger.guild_spend(conn, G, month=month)
            assert kept == pytest.approx(await ledger.guild_spend_from_ledger(conn, G, month=month))
        assert await ledger.guild_spend(conn, G, month="2025-06") == pytest.approx(0.9)


async def test_reserving_twice_for_one_job_is_a_bug(db):
    res = await submit(db)
    async with db.transaction() as conn:
        with pytest.raises(ValueError, match="already has a reservation"):
            await quota.reserve(
                conn,
                guild_id=G,
                user_id=U,
                job_id=res.job_id,
                seconds=1,
                width=1,
                height=1,
                cost_usd=0,
                role_ids=(),
                now=T0,
                default_seconds=60,
            )


async def test_bad_arguments_are_refused(db):
    with pytest.raises(ValueError):
        await submit(db, seconds=0)
    with pytest.raises(ValueError):
        await submit(db, cost=-1)


# ----- settle / refund -------------------------------------------------------------------


async def test_settle_records_the_delta_and_sums_reconcile(db):
    res = await submit(db, seconds=10, size=HD, cost=0.4)
    await settle(db, res.job_id, 8, 0.32, T0 + timedelta(minutes=2))
    reserve, settle_entry = await entries(db, res.job_id)
    assert settle_entry.kind == "settle"
    assert settle_entry.seconds == pytest.approx(-4)  # 8 s × 2 − 20 s
    assert settle_entry.cost_usd == pytest.approx(-0.08)
    assert reserve.seconds + settle_entry.seconds == pytest.approx(16)
    got = await usage_at(db, T0 + timedelta(minutes=3))
    assert (got.used, got.reserved, got.left, got.active_jobs) == (
        pytest.approx(16),
        0,
        pytest.approx(44),
        0,
    )
    # Settled seconds still leave the window at the reservation time.
    assert got.next_refill_at == T0 + timedelta(days=1)
    assert got.next_refill_seconds == pytest.approx(16)


async def test_settle_never_charges_more_than_reserved(db):
    res = await submit(db, seconds=5, cost=0.1)
    await settle(db, res.job_id, 6, 0.12, T0)
    _, entry = await entries(db, res.job_id)
    assert entry.seconds == 0
    # The quote is a ceiling (issue 13 item 9): the real cost is recorded in the note,
    # the 0.02 above the quote is not charged.
    assert entry.cost_usd == pytest.approx(0)
    assert json.loads(entry.note or "{}") == {
        "final_seconds": 6,
        "final_cost_usd": 0.12,
        "over_quote_usd": pytest.approx(0.02),
    }
    assert (await usage_at(db, T0)).used == 5


async def test_settle_and_refund_are_idempotent_and_exclusive(db):
    a = await submit(db, seconds=5)
    await settle(db, a.job_id, 5, 0.1, T0)
    await settle(db, a.job_id, 1, 0.0, T0)  # first settle wins
    await refund(db, a.job_id, T0)  # no refund after settle
    assert [e.kind for e in await entries(db, a.job_id)] == ["reserve", "settle"]
    b = await submit(db, seconds=5, now=T0 + timedelta(seconds=1))
    await refund(db, b.job_id, T0)
    await refund(db, b.job_id, T0)
    await settle(db, b.job_id, 5, 0.1, T0)
    kinds = [(e.kind, e.seconds) for e in await entries(db, b.job_id)]
    assert kinds == [("reserve", 5), ("refund", -5)]
    got = await usage_at(db, T0 + timedelta(seconds=2))
    assert (got.used, got.reserved, got.left) == (5, 0, 55)


async def test_settle_and_refund_without_reservation_are_no_ops(db):
    async with db.transaction() as conn:
        job_id = await insert_job(conn, G, U, T0)
        await quota.settle(conn, job_id, seconds=5, cost_usd=1, now=T0)
        await quota.refund(conn, job_id, reason="x", now=T0)
        await quota.refund(conn, 987654, reason="x", now=T0)
    assert await db.fetchval("SELECT COUNT(*) FROM quota_ledger") == 0


async def test_refund_returns_the_seconds(db):
    res = await submit(db, seconds=60)
    with pytest.raises(quota.QuotaExceeded):
        await submit(db, seconds=1)
    await refund(db, res.job_id, T0, reason="provider failed")
    [_, entry] = await entries(db, res.job_id)
    assert (entry.kind, entry.seconds, entry.cost_usd, entry.note) == (
        "refund",
        -60,
        -0.1,
        "provider failed",
    )
    await submit(db, seconds=60, now=T0 + timedelta(seconds=1))


# ----- reset and usage -------------------------------------------------------------------


async def test_reset_zeroes_usage_in_the_window_only(db):
    await guild_store.update_guild_settings(db, G, cooldown_seconds=600)
    done = await submit(db, seconds=30, now=T0)
    await settle(db, done.job_id, 30, 0.6, T0)
    running = await submit(db, seconds=30, now=T0 + timedelta(minutes=10))
    async with db.transaction() as conn:
        forgiven = await quota.reset_member(
            conn, guild_id=G, user_id=U, now=T0 + timedelta(minutes=11)
        )
    assert forgiven == 60
    got = await usage_at(db, T0 + timedelta(minutes=11))
    assert (got.used, got.reserved, got.left, got.cooldown_until) == (0, 0, 60, None)
    assert got.active_jobs == 1  # the running job still holds a slot
    # Finishing a job reserved before the reset does not count again.
    await settle(db, running.job_id, 30, 0.6, T0 + timedelta(minutes=12))
    assert (await usage_at(db, T0 + timedelta(minutes=12))).left == 60
    await submit(db, seconds=60, now=T0 + timedelta(minutes=13))
    kinds = await db.fetchall("SELECT kind, job_id, seconds FROM quota_ledger ORDER BY id")
    assert [r["kind"] for r in kinds] == [
        "reserve",
        "settle",
        "reserve",
        "reset",
        "settle",
        "reserve",
    ]
    reset_row = kinds[3]
    assert (reset_row["job_id"], reset_row["seconds"]) == (None, 0)


async def test_usage_reports_used_reserved_left_refill_and_active(db):
    a = await submit(db, seconds=10, now=T0)
    await submit(db, seconds=5, size=HD, now=T0 + timedelta(hours=1))
    await settle(db, a.job_id, 10, 0.2, T0 + timedelta(minutes=1))
    got = await usage_at(db, T0 + timedelta(hours=2), default_max_concurrent=2)
    assert (got.used, got.reserved, got.left) == (10, 10, 40)
    assert (got.next_refill_at, got.next_refill_seconds) == (T0 + timedelta(days=1), 10)
    assert (got.active_jobs, got.max_concurrent, got.window_seconds) == (1, 2, 86_400)
    assert (got.allowance.seconds, got.allowance.source) == (60, "default")


async def test_window_setting_changes_what_counts(db):
    await submit(db, seconds=30, now=T0)
    await guild_store.update_guild_settings(db, G, quota_window_seconds=3600)
    assert (await usage_at(db, T0 + timedelta(minutes=59))).left == 30
    assert (await usage_at(db, T0 + timedelta(hours=1))).left == 60


async def test_a_stale_window_hint_never_changes_the_answer(db):
    quota_ledger._hints.clear()
    await submit(db, seconds=30, now=T0)  # assumed: 24 h window, no budget
    await guild_store.update_guild_settings(db, G, quota_window_seconds=3600)
    # The hint still says 24 h; the reservation must count a 1 h window.
    res = await submit(db, seconds=60, now=T0 + timedelta(hours=1))
    assert res.left_after == 0
    assert quota_ledger._hints[G] == (3600, False)
    with pytest.raises(quota.QuotaExceeded):
        await submit(db, seconds=1, now=T0 + timedelta(hours=1, seconds=1))


async def test_members_and_guilds_are_separate(db):
    await submit(db, seconds=60, user_id=U)
    await submit(db, seconds=60, user_id=U + 1)
    await submit(db, seconds=60, user_id=U, guild_id=G + 1)
    assert (await usage_at(db, T0)).left == 0
    other = await quota.usage(
        db, guild_id=G + 2, user_id=U, role_ids=(), now=T0, default_seconds=60
    )
    assert other.left == 60


# ----- concurrency -----------------------------------------------------------------------


async def test_100_concurrent_reservations_for_one_member(db):
    await guild_store.update_guild_settings(db, G, max_concurrent_jobs=1000)
    await guild_store.set_member_allowance(db, G, U, 60, now=T0)

    async def one(i: int) -> bool:
        try:
            await submit(db, seconds=7, now=T0 + timedelta(microseconds=i))
        except quota.QuotaExceeded as exc:
            assert exc.reason == "allowance"
            return False
        return True

    results = await asyncio.gather(*(one(i) for i in range(100)))
    assert sum(results) == 60 // 7
    assert await db.fetchval("SELECT COUNT(*) FROM quota_ledger") == 60 // 7
    assert await db.fetchval("SELECT SUM(seconds) FROM quota_ledger") == 7 * (60 // 7)
    assert (await usage_at(db, T0 + timedelta(seconds=1))).left == 60 - 7 * (60 // 7)


async def test_concurrent_reservations_from_two_connections(tmp_path):
    """Two Database objects (as two processes would) still cannot overspend: BEGIN IMMEDIATE."""
    path = tmp_path / "shared.db"
    first = await Database.open(path)
    await first.migrate()
    second = await Database.open(path)
    try:
        await guild_store.update_guild_settings(first, G, max_concurrent_jobs=1000)

        async def one(db: Database, i: int) -> bool:
            try:
                await submit(db, seconds=5, now=T0 + timedelta(microseconds=i))
            except quota.QuotaExceeded:
                return False
            return True

        results = await asyncio.gather(*(one(first if i % 2 else second, i) for i in range(40)))
        assert sum(results) == 12
        assert await first.fetchval("SELECT SUM(seconds) FROM quota_ledger") == 60
    finally:
        await second.close()
        await first.close()


# ----- the quote is a ceiling (issue 13 item 9) ------------------------------------------


async def test_settle_above_the_quote_charges_the_quote_and_flags_it(db):
    """A provider that bills more than quoted never pushes the guild past its budget."""
    quota_ledger._hints.clear()
    await guild_store.update_guild_settings(db, G, monthly_budget_usd=1.0)
    first = await submit(db, seconds=5, cost=0.5)
    second = await submit(db, seconds=5, cost=0.5, user_id=2)  # exactly the budget
    await settle(db, first.job_id, 5, 0.9, T0 + timedelta(minutes=1))  # billed 0.4 over
    async with db.transaction() as conn:
        spent = await ledger.guild_spend(conn, G, month="2025-06")
        over = await ledger.guild_over_quote(conn, G, month="2025-06")
        rows = await conn.fetchall(
            "SELECT kind, job_id, data_json FROM audit_log WHERE kind = 'over_quote'"
        )
    assert spent == pytest.approx(1.0)  # the cap holds: the quote is what counts
    assert over == pytest.approx(0.4)  # the real provider cost is kept separately
    settle_entry = (await entries(db, first.job_id))[-1]
    assert settle_entry.cost_usd == pytest.approx(0)
    assert '"final_cost_usd": 0.9' in (settle_entry.note or "")
    assert [(r[0], r[1]) for r in rows] == [("over_quote", first.job_id)]
    await settle(db, second.job_id, 5, 0.3, T0 + timedelta(minutes=1))  # under: as before
    async with db.transaction() as conn:
        assert await ledger.guild_spend(conn, G, month="2025-06") == pytest.approx(0.8)
        assert await ledger.guild_over_quote(conn, G, month="2025-06") == pytest.approx(0.4)
