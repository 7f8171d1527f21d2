"""A process that is stopping (SIGTERM, a deploy) still answers: while it waits for a
submission in flight, a new /video is admitted and answered as usual, and after the restart
both clips are delivered exactly once (the unfinished job is resumed from the table)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.providers.simulator import SimulatorProvider

SMALL = {"duration": 4, "resolution": "512x512"}


@pytest.fixture
def held_submit(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """The simulator's submissions wait for this event: a call in flight at shutdown."""
    gate = asyncio.Event()
    submit = SimulatorProvider.submit

    async def held(self: SimulatorProvider, request: Any) -> Any:
        await gate.wait()
        return await submit(self, request)

    monkeypatch.setattr(SimulatorProvider, "submit", held)
    return gate


async def test_video_sent_during_a_stop_is_answered_and_delivered_after_the_restart(
    video_bot, fake_discord, held_submit
) -> None:
    async with video_bot(shutdown_grace_seconds=10) as v:
        first = await v.command({"prompt": "in flight at shutdown", **SMALL})
        await v.status(first)
        await v.wait_job(1, "pending")
        closing = asyncio.create_task(v.bot.close())
        await fake_discord.wait_for(lambda: v.bot.tracker._stopping, 5, "the stop to begin")
        late = await v.command({"prompt": "sent during the stop", **SMALL})
        summary = await v.private(late, timeout=5)
        assert "Job 2" in summary.content  # admitted and told, not left unanswered
        await v.status(late)
        held_submit.set()  # the submission in flight finishes within the grace period
        await asyncio.wait_for(closing, 15)
    async with video_bot() as again:
        await again.wait_job(1, "delivered", timeout=20)
        await again.wait_job(2, "delivered", timeout=20)
        await asyncio.sleep(0.5)  # a second post would come right after the first
        clips = again.results()
        assert len(clips) == 2  # each clip once
        for clip in clips:
            assert again.clip_info(clip).duration_s == pytest.approx(4, abs=0.2)
