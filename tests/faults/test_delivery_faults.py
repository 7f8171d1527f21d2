"""Delivery faults that used to lose or double a clip (issue 13, items 1–3).

* "stored but answer lost": Discord stores the clip message, but its answer is a 5xx or the
  connection drops. The tracker's retry in the same run must find that post (by the job's
  delivery key) instead of posting a second clip — on the follow-up (webhook, no nonce) and
  on the channel path (stable nonce + history lookup).
* stale post: another deployment (own database, same bot, same channel) posted a clip of
  its own job number 1; this job 1 must neither be marked delivered on it nor skip its post.
* outage after restart: the restarted bot cannot reach Discord for a few calls (channel
  lookup 5xx before the gateway is up); the rendered clip is delivered once Discord is
  back, not thrown away as "channel no longer exists".
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

import bot.jobs.tracker.settings
from bot.jobs.tracker import TrackerSettings
from tests.faults.conftest import (
    QUICK_TRACKER,
    TERMINAL,
    ledger_problems,
    post_as_other_deployment,
)

pytestmark = pytest.mark.usefixtures("quick_tracker")

OPTIONS = {"prompt": "a lighthouse", "duration": 4, "resolution": "512x512"}
WEBHOOK_POST = r"^/webhooks/\d+/[^/]+$"
CHANNEL_POST = r"^/channels/\d+/messages$"


def _with_files(rec: Any) -> bool:
    return bool(rec.files)


async def _one_clip(v: Any, job_id: int = 1, *, stale: tuple[int, ...] = ()) -> Any:
    job = await v.wait_job(job_id, *TERMINAL, timeout=40)
    assert job.status.value == "delivered", (job.status, job.failure_reason)
    await asyncio.sleep(0.5)
    mine = [m for m in v.results() if m.id not in stale]
    assert len(mine) == 1, f"{len(mine)} clips posted"
    assert mine[0].id == job.result_message_id
    key = getattr(job, "delivery_key", None)
    assert key and key in mine[0].attachments[0].filename
    assert v.clip_info(mine[0]).frames > 0
    assert await ledger_problems(v.bot.db) == []
    return job


@pytest.mark.parametrize("status", [500, 503, 0])
async def test_followup_stored_but_answer_lost(video_bot, fake_discord, status: int) -> None:
    """The follow-up with the clip is stored, its answer lost (5xx / dropped connection)."""
    async with video_bot(simulator_delay_seconds=1.0) as v:
        inter = await v.command(OPTIONS)
        await v.status(inter)
        fake_discord.fail_next(
            status, method="POST", path=WEBHOOK_POST, when=_with_files, after_commit=True
        )
        await _one_clip(v)


@pytest.mark.parametrize("status", [500, 503, 0])
async def test_channel_post_stored_but_answer_lost(video_bot, fake_discord, status: int) -> None:
    """Off the token: the channel post is stored, its answer lost; nonce + lookup."""
    async with video_bot(simulator_delay_seconds=1.0) as v:
        inter = await v.command(OPTIONS)
        await v.status(inter)
        fake_discord.expire_interaction(inter)
        fake_discord.fail_next(
            status, method="POST", path=CHANNEL_POST, when=_with_files, after_commit=True
        )
        job = await _one_clip(v)
        posts = [
            r for r in fake_discord.requests_to("POST /channels/{channel_id}/messages") if r.files
        ]
        assert posts and all(
            r.json.get("nonce") and r.json.get("enforce_nonce") is True for r in posts
        )
        assert {r.json["nonce"] for r in posts} == {f"ltx{job.delivery_key}"}


@pytest.mark.parametrize("stale_name", ["ltx-job-1.mp4", "ltx-job-1-0123456789abcdef.mp4"])
async def test_stale_post_of_another_deployment_is_not_matched(
    video_bot, fake_discord, stale_name: str
) -> None:
    w = fake_discord.world
    async with video_bot(simulator_delay_seconds=1.5) as v:
        inter = await v.command(OPTIONS)
        await v.status(inter)
        await v.wait_job(1, "submitted", "running")
        stale = await post_as_other_deployment(fake_discord, w.channel_id, stale_name)
    async with video_bot(simulator_delay_seconds=1.5) as v:
        # The restarted bot also loses the answer of its first post: its retry looks up.
        fake_discord.fail_next(
            503, method="POST", path=CHANNEL_POST, when=_with_files, after_commit=True
        )
        job = await _one_clip(v, stale=(stale,))
        assert job.result_message_id != stale
        assert not fake_discord.message(stale).deleted


async def test_busy_channel_retry_finds_its_post_past_200_messages(video_bot, fake_discord) -> None:
    """More than 200 messages between the job's start and its lookup: still found."""
    w = fake_discord.world
    async with video_bot(simulator_delay_seconds=3.0) as v:
        inter = await v.command(OPTIONS)
        await v.status(inter)
        fake_discord.expire_interaction(inter)
        for i in range(230):
            await fake_discord.post_user_message(w.channel_id, w.user_id, f"chatter {i}")
        fake_discord.fail_next(
            0, method="POST", path=CHANNEL_POST, when=_with_files, after_commit=True
        )
        await _one_clip(v)


async def test_outage_after_restart_delivers(
    video_bot, fake_discord, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped while posting; restarted into a short Discord outage: delivered, not failed."""
    quick = functools.partial(TrackerSettings, **{**QUICK_TRACKER, "shutdown_grace_seconds": 0.5})
    monkeypatch.setattr(bot.jobs.tracker.settings, "TrackerSettings", quick)
    w = fake_discord.world
    async with video_bot(simulator_delay_seconds=0.5) as v:
        inter = await v.command(OPTIONS)
        await v.status(inter)
        # The clip upload is held by a long rate limit; the bot stops meanwhile.
        fake_discord.fail_next(
            429, method="POST", path=WEBHOOK_POST, when=_with_files, retry_after=30
        )
        await v.wait_job(1, "delivering", timeout=20)
        await fake_discord.wait_for(
            lambda: any(r.files and r.status == 429 for r in fake_discord.requests),
            10,
            "the held upload",
        )
    assert not v.results()
    # Discord's REST is down for the first calls of the restarted bot's delivery: the channel
    # lookup (when the tracker resumes before the gateway has sent the guild) and the clip's
    # upload (when it resumes after: with job leases it claims the job once it is connected).
    before = len(fake_discord.requests)
    fake_discord.fail_next(503, method="GET", path=rf"^/channels/{w.channel_id}$", times=2)
    fake_discord.fail_next(503, method="POST", path=CHANNEL_POST, when=_with_files, times=2)
    async with video_bot(simulator_delay_seconds=0.5) as v:
        await _one_clip(v)
        hit = [r for r in fake_discord.requests[before:] if r.status == 503]
        assert hit, "the outage was not exercised"
