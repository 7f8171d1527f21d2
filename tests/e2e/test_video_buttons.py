"""The buttons end to end: Cancel (queued and running, requester/moderator/other), Again
(same inputs, new seed, through the quota) and Delete (requester/moderator, audited)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from bot.providers.simulator import SIMULATOR_LIMITS, SimulatorProvider
from tests.e2e.conftest import image_file


def charged(ledger, job_id: int) -> float:
    return sum(seconds for jid, _kind, seconds, _user in ledger if jid == job_id)


@pytest.fixture
def one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator takes one job at a time, so a second one waits in the bot's queue."""
    limits = dataclasses.replace(SIMULATOR_LIMITS, max_concurrency=1)
    monkeypatch.setattr(SimulatorProvider, "limits", limits)


async def test_cancel_queued_and_running_jobs_refunds_them(
    video_bot, fake_discord, one_at_a_time
) -> None:
    w = fake_discord.world
    bob = fake_discord.add_member(w.guild_id, username="bob")
    small = {"duration": 4, "resolution": "512x512"}
    async with video_bot(simulator_delay_seconds=30) as v:
        first = await v.command({"prompt": "a long render", **small})
        first_status = await v.status(first)
        await v.wait_job(1, "submitted", "running")
        second = await v.command({"prompt": "waiting in line", **small})
        second_status = await v.status(second)
        assert "Queued — position 1" in second_status.content
        assert (await v.job(2)).status.value == "pending"

        # Before submission: the requester cancels; it never reaches the provider.
        press = await v.press(second_status, "ltx:cancel:2")
        assert "cancelled; nothing was charged" in await v.reply(press)
        cancelled = await v.wait_job(2, "cancelled")
        assert cancelled.provider_job_id is None and cancelled.attempts == 0
        await fake_discord.wait_for(
            lambda: "was cancelled" in second_status.content, 5, "the queued job's ending"
        )
        assert "Nothing was charged" in second_status.content
        assert second_status.custom_ids() == []  # no Cancel button left
        assert charged(await v.ledger(), 2) == 0

        # Another member may not cancel someone else's job.
        press = await v.press(first_status, "ltx:cancel:1", user_id=bob.id)
        assert "Only the member who asked" in await v.reply(press)
        assert (await v.job(1)).status.value in ("submitted", "running")

        # After submission: a moderator cancels; the provider is told, the quota refunded.
        press = await v.press(first_status, "ltx:cancel:1", user_id=w.admin_id)
        assert "cancelled" in await v.reply(press)
        await v.wait_job(1, "cancelled")
        await fake_discord.wait_for(lambda: v.bot.tracker.stats["cancel"] == 1, 5, "remote cancel")
        await fake_discord.wait_for(
            lambda: "stopped by a moderator" in first_status.content, 5, "the running job's ending"
        )
        assert charged(await v.ledger(), 1) == 0
        assert v.submits() == 1
        # The requester's private summary shows the refund with the allowance now left.
        private = first.original
        assert private is not None and private.ephemeral
        await fake_discord.wait_for(
            lambda: "60 s of your allowance left" in private.content, 5, "the private refund"
        )
        (entry,) = await v.audit("cancel")
        assert entry[0] == w.admin_id and entry[1] == w.user_id and entry[2] == 1

        # /jobs lists both, newest first, with their state and reason.
        jobs = await v.command(name="jobs")
        answer = await jobs.wait_for_original(lambda m: bool(m.embeds))
        assert answer.ephemeral
        text = answer.embeds[0]["description"]
        assert text.index("#2") < text.index("#1")
        assert text.count("cancelled") >= 2 and "stopped by a moderator" in text
        assert not any(m.attachments for m in fake_discord.messages(w.channel_id))


async def test_again_reuses_the_inputs_with_a_new_seed_through_the_quota(video_bot) -> None:
    async with video_bot(quota_seconds_per_day=10) as v:
        inter = await v.command(
            {"prompt": "a kite over dunes", "duration": 4, "resolution": "512x512"},
            attachments={"image": image_file("kite.png", width=512, height=512)},
        )
        first = await v.result()
        job1 = await v.wait_job(1, "delivered")
        assert job1.request.seed is not None and f"seed {job1.request.seed}" in first.content

        # Another member cannot redo a clip made from someone else's images.
        bob = v.fake.add_member(v.world.guild_id, username="bob")
        press = await v.press(first, "ltx:again:1", user_id=bob.id)
        assert "only they can press it" in await v.reply(press)
        assert len(await v.jobs()) == 1

        press = await v.press(first, "ltx:again:1")
        summary = await v.reply(press)
        assert "Job 2" in summary and "2 s of your allowance left" in summary
        second = await v.result(lambda m: m.id != first.id)
        job2 = await v.wait_job(2, "delivered")
        assert job2.mode == job1.mode and job2.prompt == job1.prompt
        assert job2.request.image.sha256 == job1.request.image.sha256
        assert (job2.request.width, job2.request.height) == (
            job1.request.width,
            job1.request.height,
        )
        assert job2.request.seed != job1.request.seed
        assert f"seed {job2.request.seed}" in second.content
        info = v.clip_info(second)
        assert info.has_audio and round(info.duration_s) == 4
        assert [kind for jid, kind, *_ in await v.ledger() if jid == 2] == ["reserve", "settle"]

        # A third one does not fit the 10 s allowance: refused privately, nothing charged.
        ledger = await v.ledger()
        press = await v.press(second, "ltx:again:2")
        assert "2 s of video left" in await v.reply(press)
        assert await v.ledger() == ledger and len(await v.jobs()) == 2
        assert inter.original is not None


async def test_delete_by_requester_or_moderator_only_and_audited(video_bot, fake_discord) -> None:
    w = fake_discord.world
    bob = fake_discord.add_member(w.guild_id, username="bob")
    async with video_bot() as v:
        await v.command({"prompt": "one", "duration": 4, "resolution": "512x512"})
        first = await v.result()
        press = await v.press(first, "ltx:delete:1", user_id=bob.id)
        assert "Only the member who asked" in await v.reply(press)
        assert not first.deleted

        press = await v.press(first, "ltx:delete:1")
        assert "Deleted" in await v.reply(press)
        assert first.deleted

        await v.command({"prompt": "two", "duration": 4, "resolution": "512x512"})
        second = await v.result(lambda m: m.id != first.id)
        press = await v.press(second, "ltx:delete:2", user_id=w.admin_id)
        assert "Deleted" in await v.reply(press)
        assert second.deleted

        entries = await v.audit("delete")
        assert [(e[0], e[1], e[2]) for e in entries] == [
            (w.user_id, w.user_id, 1),
            (w.admin_id, w.user_id, 2),
        ]
        assert "by the requester" in entries[0][3] and "by a moderator" in entries[1][3]
        assert str(second.id) in entries[1][4]


async def test_again_works_when_a_fast_provider_took_the_inputs_first(
    video_bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 item 7: the copy for Again is made before the tracker can take the job, so
    the tracker removing the inputs right after a fast submit cannot race it."""
    from bot.jobs.service import VideoService

    real_job = VideoService.job
    seen: set[int] = set()

    async def slow_first_read(self, job_id: int):  # the cog's first read after admission
        if job_id not in seen:
            seen.add(job_id)
            for _ in range(100):  # until the tracker has submitted and removed the inputs
                job = await real_job(self, job_id)
                if job is not None and job.input_dir is None:
                    break
                await asyncio.sleep(0.02)
        return await real_job(self, job_id)

    monkeypatch.setattr(VideoService, "job", slow_first_read)
    async with video_bot(simulator_delay_seconds=0.05) as v:
        await v.command(
            {"prompt": "a kite over dunes", "duration": 4, "resolution": "512x512"},
            attachments={"image": image_file("kite.png", width=512, height=512)},
        )
        first = await v.result()
        await v.wait_job(1, "delivered")
        press = await v.press(first, "ltx:again:1")
        assert "Job 2" in await v.reply(press)
        await v.wait_job(2, "delivered")
