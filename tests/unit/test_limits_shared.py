"""bot.limits: each bound is defined once and used by the env settings and the admin path."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from discord import app_commands

from bot import limits, quota
from bot.config import ConfigError, Settings, load_settings
from bot.db import Database
from bot.quota import AllowanceInputError
from cogs.admin import allowance

T0 = datetime(2025, 1, 1, tzinfo=UTC)
G = 77

BOUNDED_VARS = [
    "QUOTA_SECONDS_PER_DAY",
    "SIMULATOR_DELAY_SECONDS",
    "MAX_ACTIVE_JOBS_PER_MEMBER",
    "PROVIDER_REQUESTS_PER_SECOND",
    "LEONARDO_FAST_USD_PER_SECOND",
    "LEONARDO_PRO_USD_PER_SECOND",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in [*BOUNDED_VARS, "BYTECOMPUTE_API_KEY", "LEONARDO_API_KEY", "DEFAULT_PROVIDER"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def refusal(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "\n" not in text
    return text


def test_allowance_takes_what_the_admin_command_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    high = limits.ALLOWANCE_SECONDS.high
    assert high is not None and high >= 10_000_000
    monkeypatch.setenv("QUOTA_SECONDS_PER_DAY", str(high))
    assert load_settings().quota_seconds_per_day == high


def test_over_the_shared_bound_is_refused_with_the_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    high = limits.ALLOWANCE_SECONDS.high
    assert high is not None
    text = refusal(monkeypatch, "QUOTA_SECONDS_PER_DAY", str(high + 1))
    assert "QUOTA_SECONDS_PER_DAY: must be 0 or more" in text
    assert f"{high:,}" in text and "set e.g." in text
    text = refusal(monkeypatch, "MAX_ACTIVE_JOBS_PER_MEMBER", "0")
    assert "MAX_ACTIVE_JOBS_PER_MEMBER: must be 1 or more" in text and "set e.g." in text


def test_every_numeric_setting_has_exactly_one_shared_bound() -> None:
    for name, field in Settings.model_fields.items():
        if field.annotation in (int, float, int | None, float | None) and name != "dev_guild_id":
            bounds = [m for m in field.metadata if isinstance(m, limits.Bound)]
            assert len(bounds) == 1, name


def test_env_and_admin_command_share_one_bound_object() -> None:
    env = {
        name: next(m for m in field.metadata if isinstance(m, limits.Bound))
        for name, field in Settings.model_fields.items()
        if any(isinstance(m, limits.Bound) for m in field.metadata)
    }
    assert env["quota_seconds_per_day"] is limits.ALLOWANCE_SECONDS
    assert env["max_active_jobs_per_member"] is limits.JOBS_PER_MEMBER

    def option(command: str, param: str) -> app_commands.Parameter:
        cmd = allowance.allowance_group.get_command(command)
        assert isinstance(cmd, app_commands.Command)
        return next(p for p in cmd.parameters if p.name == param)

    for command in ("default", "role", "member"):
        seconds = option(command, "seconds")
        assert (seconds.min_value, seconds.max_value) == (
            limits.ALLOWANCE_SECONDS.low,
            limits.ALLOWANCE_SECONDS.high,
        )
    jobs = option("concurrency", "jobs")
    assert (jobs.min_value, jobs.max_value) == (
        limits.JOBS_PER_MEMBER.low,
        limits.JOBS_PER_MEMBER.high,
    )
    cooldown = option("cooldown", "seconds")
    assert (cooldown.min_value, cooldown.max_value) == (
        limits.COOLDOWN_SECONDS.low,
        limits.COOLDOWN_SECONDS.high,
    )
    budget = option("budget", "usd")
    assert budget.max_value == limits.MONTHLY_BUDGET_USD.high
    weight = option("hd-weight", "weight")
    assert (weight.min_value, weight.max_value) == (
        limits.HD_WEIGHT.low,
        limits.HD_WEIGHT.high,
    )


async def test_admin_path_refuses_and_accepts_at_the_shared_bounds(db: Database) -> None:
    high = limits.ALLOWANCE_SECONDS.high
    jobs = limits.JOBS_PER_MEMBER.high
    assert high is not None and jobs is not None
    await quota.set_default(
        db, guild_id=G, actor_id=1, seconds=high, window_hours=None, now=T0, default_seconds=60
    )
    await quota.set_member(db, guild_id=G, actor_id=1, user_id=5, seconds=high, now=T0)
    await quota.set_role(db, guild_id=G, actor_id=1, role_id=6, seconds=high, now=T0)
    await quota.set_concurrency(
        db, guild_id=G, actor_id=1, jobs=jobs, now=T0, default_max_concurrent=2
    )
    with pytest.raises(AllowanceInputError):
        await quota.set_member(db, guild_id=G, actor_id=1, user_id=5, seconds=high + 1, now=T0)
    with pytest.raises(AllowanceInputError):
        await quota.set_concurrency(
            db, guild_id=G, actor_id=1, jobs=jobs + 1, now=T0, default_max_concurrent=2
        )
    usage = await quota.usage(db, guild_id=G, user_id=9, role_ids=[], now=T0, default_seconds=60)
    assert usage.allowance.seconds == high and usage.max_concurrent == jobs


def test_bound_text_is_generated() -> None:
    assert limits.ALLOWANCE_SECONDS.describe().startswith("0 or more")
    assert limits.HD_WEIGHT.describe().startswith("from 1 to 10")
    assert limits.HD_WEIGHT.contains(10) and not limits.HD_WEIGHT.contains(10.5)
    assert not limits.ALLOWANCE_SECONDS.contains(float("nan"))


def test_simulator_delay_bound_is_the_simulators_job_expiry() -> None:
    from bot.providers.simulator import JOB_EXPIRY
    from bot.store.guilds import MAX_WINDOW_SECONDS

    assert limits.SIMULATOR_DELAY_SECONDS.high == JOB_EXPIRY.total_seconds()
    assert limits.WINDOW_HOURS.high * 3600 == MAX_WINDOW_SECONDS
