"""Bounds of settings: one rule per quantity, whether set by env var or admin command.

The allowance is seconds of *video* per member per window, not wall-clock time, so any
non-negative number the bot can carry is a valid setting; where a setting has a real
upper or lower limit, the refusal names the accepted range and an example to set.
"""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings

BOUNDED_VARS = [
    "QUOTA_SECONDS_PER_DAY",
    "SIMULATOR_DELAY_SECONDS",
    "MAX_ACTIVE_JOBS_PER_MEMBER",
    "PROVIDER_REQUESTS_PER_SECOND",
    "LEONARDO_FAST_USD_PER_SECOND",
    "LEONARDO_PRO_USD_PER_SECOND",
    "IDLE_POLL_SHARE",
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


@pytest.mark.parametrize("value", ["100000", "864000", "10000000"])
def test_allowance_above_a_day_of_wall_clock_is_accepted(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("QUOTA_SECONDS_PER_DAY", value)
    assert load_settings().quota_seconds_per_day == int(value)


def test_concurrency_accepts_what_the_admin_command_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_ACTIVE_JOBS_PER_MEMBER", "100")
    assert load_settings().max_active_jobs_per_member == 100


def test_allowance_refusal_names_the_range_and_an_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = refusal(monkeypatch, "QUOTA_SECONDS_PER_DAY", "-5")
    assert "QUOTA_SECONDS_PER_DAY: must be 0 or more" in text
    assert "seconds of video per member" in text
    assert "set e.g. 600" in text
    assert "86400" not in text and "86,400" not in text


@pytest.mark.parametrize("name", BOUNDED_VARS)
@pytest.mark.parametrize("value", ["-1", "1e400", "nan", "inf"])
def test_every_bounded_setting_names_its_range_and_an_example(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    text = refusal(monkeypatch, name, value)
    assert text.startswith(f"invalid configuration: {name}: must be ")
    assert "; set e.g. " in text


def test_float_settings_refuse_non_finite_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROVIDER_REQUESTS_PER_SECOND", "LEONARDO_FAST_USD_PER_SECOND"):
        for value in ("inf", "nan"):
            assert name in refusal(monkeypatch, name, value)
        monkeypatch.delenv(name)
