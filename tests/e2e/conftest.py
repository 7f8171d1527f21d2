"""Fixtures for running the real VideoBot against the fake Discord."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.client import VideoBot
from bot.config import Settings, load_settings
from tests.fakes.discord_server import FakeDiscord, running_bot


def bot_settings(fake: FakeDiscord, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "discord_token": fake.token,
        "discord_api_base_url": fake.api_base,
        "database_url": f"sqlite:///{tmp_path / 'data' / 'bot.db'}",
        "bytecompute_api_key": None,
        "leonardo_api_key": None,
        "simulator_enabled": True,
        "default_provider": None,
        "simulator_delay_seconds": 0.5,
        "quota_seconds_per_day": 60,
        "dev_guild_id": None,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def make_bot(fake_discord: FakeDiscord, tmp_path: Path) -> Callable[..., Any]:
    """`async with make_bot(**settings) as bot:` runs a VideoBot against the fake until exit."""

    @asynccontextmanager
    async def _make(**overrides: Any) -> AsyncIterator[VideoBot]:
        settings = bot_settings(fake_discord, tmp_path, **overrides)
        bot = VideoBot(settings)
        async with running_bot(bot, fake_discord) as running:
            yield running

    return _make
