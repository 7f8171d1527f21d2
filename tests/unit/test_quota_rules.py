"""Pure allowance rules: windows, role resolution, weights, refill schedule, wording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot import quota
from bot.store.guilds import MemberAllowance, RoleAllowance
from bot.store.quotas import JobCharge
from cogs.ui import timefmt

T0 = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)  # the night Europe moves its clocks


def role(role_id: int, seconds: int | None) -> RoleAllowance:
    return RoleAllowance(guild_id=1, role_id=role_id, seconds=seconds, updated_at=T0)


def member(seconds: int | None) -> MemberAllowance:
    return MemberAllowance(guild_id=1, user_id=2, seconds=seconds, updated_at=T0)


def charge(job_id: int, at: datetime, seconds: float, closed: bool = False) -> JobCharge:
    return JobCharge(job_id=job_id, reserved_at=at, seconds=seconds, cost_usd=0, closed=closed)


# ----- windows ---------------------------------------------------------------------------


def test_window_start_is_exactly_one_window_back():
    assert quota.window_start(T0, 86_400) == T0 - timedelta(days=1)
    assert quota.window_start(T0, 3600) == datetime(2025, 3, 29, 23, 30, tzinfo=UTC)


def test_window_start_ignores_the_callers_timezone_and_dst():
    # 02:30 local on the DST night in Berlin does not exist; an aware instant is absolute.
    berlin_summer = timezone(timedelta(hours=2))
    local = datetime(2025, 3, 30, 3, 30, tzinfo=berlin_summer)  # == 01:30 UTC
    start = quota.window_start(local, 86_400)
    assert start.tzinfo == UTC
    assert start == datetime(2025, 3, 29, 1, 30, tzinfo=UTC)
    assert (local - start) == timedelta(hours=24)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        quota.window_start(datetime(2025, 1, 1), 60)  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        quota.month_start(datetime(2025, 1, 1))  # noqa: DTZ001


def test_calendar_month_is_utc():
    late_in_new_york = datetime(2025, 1, 31, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    # 03:00 UTC on 1 February: February's budget already applies.
    assert quota.month_start(late_in_new_york) == datetime(2025, 2, 1, tzinfo=UTC)
    assert quota.next_month_start(late_in_new_york) == datetime(2025, 3, 1, tzinfo=UTC)
    assert quota.next_month_start(datetime(2025, 12, 31, 23, 59, tzinfo=UTC)) == datetime(
        2026, 1, 1, tzinfo=UTC
    )


# ----- resolution ------------------------------------------------------------------------


def test_default_applies_without_any_rule():
    got = quota.resolve_allowance(None, [], None, 60)
    assert (got.seconds, got.source) == (60, "default")


def test_guild_default_beats_bot_default():
    got = quota.resolve_allowance(None, [], 30, 60)
    assert (got.seconds, got.source) == (30, "guild")


def test_most_generous_role_wins():
    got = quota.resolve_allowance(None, [role(10, 30), role(11, 120), role(12, 90)], 60, 60)
    assert (got.seconds, got.source, got.role_id) == (120, "role", 11)


def test_unlimited_role_beats_any_number():
    got = quota.resolve_allowance(None, [role(10, 10_000), role(11, None)], 60, 60)
    assert (got.seconds, got.source, got.role_id) == (None, "role", 11)


def test_role_applies_even_when_below_the_guild_default():
    got = quota.resolve_allowance(None, [role(10, 5)], 60, 60)
    assert (got.seconds, got.source) == (5, "role")


def test_override_beats_roles_including_zero_and_unlimited():
    roles = [role(10, None), role(11, 500)]
    assert quota.resolve_allowance(member(0), roles, 60, 60).seconds == 0
    assert quota.resolve_allowance(member(7), roles, 60, 60).seconds == 7
    unlimited = quota.resolve_allowance(member(None), [role(10, 1)], 60, 60)
    assert (unlimited.seconds, unlimited.source) == (None, "member")


def test_describe_names_the_source():
    assert quota.resolve_allowance(None, [role(77, 1)], None, 60).describe() == "role <@&77>"
    assert quota.resolve_allowance(member(1), [], None, 60).describe() == "personal allowance"


# ----- weights ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1280, 720, 1.0),  # exactly 921,600 px: not HD
        (720, 1280, 1.0),
        (1281, 720, 2.0),
        (1920, 1080, 2.0),
        (960, 960, 1.0),  # also exactly 921,600 px
        (961, 960, 2.0),
    ],
)
def test_hd_weight_applies_strictly_above_921600_pixels(width, height, expected):
    assert quota.weight_for(width, height, 2.0) == expected
    assert quota.is_hd(width, height) is (width * height > 921_600)


def test_hd_weight_is_configurable():
    assert quota.weight_for(1920, 1080, 3.5) == 3.5
    assert quota.weight_for(1280, 720, 3.5) == 1.0


# ----- refills ---------------------------------------------------------------------------


def test_refills_are_reservation_time_plus_window_and_skip_refunded_jobs():
    charges = [
        charge(1, T0, 10),
        charge(2, T0 + timedelta(minutes=5), 0, closed=True),  # refunded
        charge(3, T0 + timedelta(minutes=9), 20),
        charge(4, T0 + timedelta(minutes=9), 4),
    ]
    schedule = quota.refills(charges, 3600)
    assert schedule == [
        (T0 + timedelta(hours=1), 10),
        (T0 + timedelta(hours=1, minutes=9), 24),
    ]


def test_available_at_accumulates_refills_until_enough():
    schedule = [(T0, 10.0), (T0 + timedelta(hours=1), 10.0)]
    assert quota.available_at(12, 10, schedule) is None  # fits now
    assert quota.available_at(12, 20, schedule) == T0
    assert quota.available_at(5, 20, schedule) == T0 + timedelta(hours=1)
    assert quota.available_at(0, 25, schedule) is None  # never, with these refills


# ----- wording ---------------------------------------------------------------------------


def test_formatting():
    assert quota.fmt_seconds(12) == "12 s"
    assert quota.fmt_seconds(12.5) == "12.5 s"
    assert quota.fmt_seconds(1234) == "1,234 s"
    assert quota.fmt_window(86_400) == "24 h"
    assert quota.fmt_window(7 * 86_400) == "7 days"
    assert quota.fmt_window(5400) == "1.50 h"
    assert quota.fmt_allowance(None) == "unlimited"
    assert quota.fmt_allowance(0, 86_400) == "none (0 s) per 24 h"
    assert quota.fmt_allowance(60, 3600) == "60 s per 1 h"


def test_discord_time_rounds_up():
    at = datetime(2025, 1, 1, 14, 5, 0, 500_000, tzinfo=UTC)
    unix = int(datetime(2025, 1, 1, 14, 5, 1, tzinfo=UTC).timestamp())
    assert timefmt.discord_time(at) == f"<t:{unix}:t>"
    assert timefmt.when(at) == f"<t:{unix}:t> (<t:{unix}:R>)"


def test_refusal_message_names_what_is_left_and_when_it_refills():
    refill = T0 + timedelta(hours=2)
    exc = quota.allowance_refusal(
        allowance=quota.Allowance(seconds=60, source="guild"),
        window_seconds=86_400,
        left=12,
        needed=20,
        weight=1.0,
        schedule=[(refill, 10.0)],
    )
    unix = int(refill.timestamp())
    assert exc.reason == "allowance"
    assert exc.refill_at == refill
    assert exc.message.startswith("You have 12 s of video left; this clip needs 20 s.")
    assert f"10 s more at <t:{unix}:t> (<t:{unix}:R>)." in exc.message
    assert "Enough for this clip" not in exc.message


def test_refusal_message_when_first_refill_is_not_enough():
    first, second = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    exc = quota.allowance_refusal(
        allowance=quota.Allowance(seconds=60, source="guild"),
        window_seconds=86_400,
        left=0,
        needed=20,
        weight=2.0,
        schedule=[(first, 10.0), (second, 30.0)],
    )
    assert exc.refill_at == second
    assert "this clip needs 20 s (HD counts 2×)" in exc.message
    assert f"Enough for this clip at <t:{int(second.timestamp())}:t>" in exc.message


def test_refusal_when_clip_exceeds_the_whole_allowance():
    exc = quota.allowance_refusal(
        allowance=quota.Allowance(seconds=10, source="guild"),
        window_seconds=86_400,
        left=10,
        needed=20,
        weight=1.0,
        schedule=[],
    )
    assert exc.refill_at is None
    assert "your allowance is 10 s per 24 h" in exc.message
    assert "shorter duration" in exc.message


def test_quota_exceeded_carries_its_fields():
    exc = quota.QuotaExceeded("busy", reason="concurrency")
    assert (exc.message, exc.refill_at, exc.reason, str(exc)) == (
        "busy",
        None,
        "concurrency",
        "busy",
    )
