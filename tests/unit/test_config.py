from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings

ENV_VARS = [
    "DISCORD_TOKEN",
    "DISCORD_API_BASE_URL",
    "DATABASE_URL",
    "BYTECOMPUTE_API_KEY",
    "BYTECOMPUTE_BASE_URL",
    "LEONARDO_API_KEY",
    "LEONARDO_BASE_URL",
    "DEFAULT_PROVIDER",
    "SIMULATOR_ENABLED",
    "QUOTA_SECONDS_PER_DAY",
    "DEV_GUILD_ID",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_offer_only_the_simulator() -> None:
    s = load_settings()
    assert s.providers == ["simulator"]
    assert s.effective_default_provider == "simulator"
    assert s.quota_seconds_per_day == 60
    assert s.database_path.as_posix() == "data/bot.db"
    assert s.discord_token is None


def test_real_key_turns_simulator_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYTECOMPUTE_API_KEY", "bc-secret")
    s = load_settings()
    assert s.providers == ["bytecompute"]
    monkeypatch.setenv("SIMULATOR_ENABLED", "true")
    monkeypatch.setenv("LEONARDO_API_KEY", "leo-secret")
    s = load_settings()
    assert s.providers == ["bytecompute", "leonardo", "simulator"]
    assert s.effective_default_provider == "bytecompute"
    assert "bc-secret" not in repr(s)


def test_dotenv_is_read(tmp_path) -> None:
    (tmp_path / ".env").write_text("QUOTA_SECONDS_PER_DAY=90\nDEV_GUILD_ID=1234\n")
    s = load_settings()
    assert s.quota_seconds_per_day == 90
    assert s.dev_guild_id == 1234


def test_database_url_takes_sqlite_or_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:pw@db.internal:5432/ltx")
    s = load_settings()
    assert s.uses_postgresql and s.database_target == "postgresql://bot:pw@db.internal:5432/ltx"
    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/bot.db")
    s = load_settings()
    assert not s.uses_postgresql and s.database_target == "var/bot.db"


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("QUOTA_SECONDS_PER_DAY", "lots", "QUOTA_SECONDS_PER_DAY"),
        ("QUOTA_SECONDS_PER_DAY", "-5", "QUOTA_SECONDS_PER_DAY"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("DATABASE_URL", "postgresql:///nohost", "DATABASE_URL"),
        ("DEFAULT_PROVIDER", "runway", "DEFAULT_PROVIDER"),
        ("DEFAULT_PROVIDER", "leonardo", "not configured"),
        ("DISCORD_API_BASE_URL", "discord.com/api", "DISCORD_API_BASE_URL"),
        ("DEV_GUILD_ID", "abc", "DEV_GUILD_ID"),
        ("SIMULATOR_ENABLED", "maybe", "SIMULATOR_ENABLED"),
    ],
)
def test_bad_values_give_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert needle in text
    assert "\n" not in text


def test_trailing_slash_and_blank_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEONARDO_BASE_URL", "http://127.0.0.1:9/api/rest/")
    monkeypatch.setenv("DISCORD_TOKEN", "   ")
    s = load_settings()
    assert s.leonardo_base_url == "http://127.0.0.1:9/api/rest"
    assert s.discord_token is None
