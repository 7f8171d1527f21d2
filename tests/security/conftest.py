"""Fixtures for the security tests: a fake Discord whose bot token is a canary, and a running
bot (the e2e harness) configured with canary provider keys."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import bot.jobs.tracker.settings
from bot.client import VideoBot
from bot.discord_api import DISCORD_API_BASE, apply_api_base
from bot.jobs.tracker import TrackerSettings
from tests.e2e.conftest import (
    VideoHarness,
    bot_settings,
    make_bot,  # noqa: F401  (a fixture for these tests)
    video_bot,  # noqa: F401  (a fixture for these tests)
)
from tests.fakes.discord_server import FakeDiscord, running_bot

DISCORD_CANARY = "MTA5ODc2NTQzMjE.discord_SECRET_canary.tok_2f9c"
BYTECOMPUTE_CANARY = "bc_SECRET_canary_123"
LEONARDO_CANARY = "leo_SECRET_canary_456"
CANARIES = (DISCORD_CANARY, BYTECOMPUTE_CANARY, LEONARDO_CANARY)


@pytest.fixture
async def canary_discord() -> AsyncIterator[FakeDiscord]:
    """A started fake Discord (default world) whose bot token is `DISCORD_CANARY`."""
    fake = FakeDiscord(token=DISCORD_CANARY)
    fake.populate_default_world()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
        apply_api_base(DISCORD_API_BASE)


@pytest.fixture
def quick_first_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake providers finish in 0.2 s; without history the tracker would expect minutes."""
    quick = functools.partial(
        TrackerSettings, prior_base_seconds=0.3, prior_seconds_per_video_second=0.0
    )
    monkeypatch.setattr(bot.jobs.tracker.settings, "TrackerSettings", quick)


@pytest.fixture
def harness(canary_discord: FakeDiscord, tmp_path: Path) -> Callable[..., Any]:
    """`async with harness(**settings) as v:` → a VideoHarness around a bot on the canary
    fake Discord."""

    @asynccontextmanager
    async def _make(**overrides: Any) -> AsyncIterator[VideoHarness]:
        overrides.setdefault("simulator_delay_seconds", 0.3)
        settings = bot_settings(canary_discord, tmp_path, **overrides)
        async with running_bot(VideoBot(settings), canary_discord) as running:
            cog = running.get_cog("VideoCog")
            assert cog is not None
            cog.status.progress_interval = 0.2  # type: ignore[attr-defined]
            yield VideoHarness(canary_discord, running, tmp_path)

    return _make
