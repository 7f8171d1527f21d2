"""Delivery end to end: token expiry fallback, upload limits (fit, 413), mentions, failures,
and a restart mid-job."""

from __future__ import annotations

import asyncio
import itertools

import pytest

import bot.client
from tests.fakes.discord_server import FakeMessage


def bot_messages(fake, channel_id: int) -> list[FakeMessage]:
    return [
        m
        for m in fake.messages(channel_id, include_deleted=True)
        if m.author_id == fake.bot_user_id
    ]


def replies_to(message: FakeMessage, target: FakeMessage) -> bool:
    ref = message.message_reference or {}
    return str(ref.get("message_id")) == str(target.id)


async def test_expired_token_moves_progress_and_result_to_channel_replies(
    video_bot, fake_discord
) -> None:
    w = fake_discord.world
    async with video_bot(simulator_delay_seconds=2.0) as v:
        inter = await v.command({"prompt": "a clock tower", "duration": 4, "resolution": "512x512"})
        status = await v.status(inter)
        fake_discord.expire_interaction(inter)  # as if 15 minutes had passed

        result = await v.result()
        assert result.webhook_id is None, "posted as the bot's own channel message"
        assert replies_to(result, status)
        assert result.pinged_user_ids == {w.user_id} and not result.pinged_everyone
        assert {"ltx:again:1", "ltx:delete:1"} <= set(result.custom_ids())
        info = v.clip_info(result)
        assert info.has_audio and (info.width, info.height) == (512, 512)

        # Progress went through a channel message replying to the status (removed at the
        # end), pinging nobody; the status message itself now shows the final state.
        progress = [
            m
            for m in bot_messages(fake_discord, w.channel_id)
            if m.webhook_id is None and not m.attachments and replies_to(m, status)
        ]
        assert progress, "a channel progress message"
        assert all(not m.pinged_user_ids and not m.pinged_everyone for m in progress)
        assert any("elapsed" in h.get("content", "") for m in progress for h in m.history)
        await fake_discord.wait_for(lambda: "Done" in status.content, 5, "final status")
        assert status.custom_ids() == []
        job = await v.wait_job(1, "delivered")
        assert job.result_message_id == result.id
        # The webhook refused the token after expiry; nothing used it successfully since.
        refused = [r for r in fake_discord.requests if r.status == 401]
        assert refused and all(r.path.startswith("/webhooks/") for r in refused)


async def test_oversized_clip_is_reencoded_under_the_upload_limit(video_bot, fake_discord) -> None:
    w = fake_discord.world
    limit = 100_000
    fake_discord.set_upload_limit(w.guild_id, limit)
    async with video_bot() as v:
        await v.command({"prompt": "surf at noon", "duration": 4, "resolution": "640x512"})
        result = await v.result()
        info = v.clip_info(result)
        assert info.size_bytes <= limit
        assert info.has_audio and info.audio_codec == "aac" and info.frames > 0
        assert abs(info.duration_s - 4) < 0.2
        assert "Re-encoded to fit" in result.content
        # Only one upload: the limit Discord gave with the interaction was respected.
        uploads = [r for r in fake_discord.requests if r.files]
        assert len(uploads) == 1 and uploads[0].status == 200


async def test_413_is_never_retried_with_the_same_file(video_bot, fake_discord) -> None:
    w = fake_discord.world
    async with video_bot() as v:
        inter = await v.command({"prompt": "rain on glass", "duration": 4, "resolution": "640x512"})
        await v.status(inter)
        # The server's limit drops after the command arrived: the interaction's figure is stale.
        fake_discord.set_upload_limit(w.guild_id, 120_000)
        result = await v.result()
        uploads = [r for r in fake_discord.requests if r.files]
        sizes = [len(r.files[0].data) for r in uploads]
        assert uploads[0].status == 413 and uploads[-1].status == 200
        assert all(b < a for a, b in itertools.pairwise(sizes)), sizes
        assert v.clip_info(result).size_bytes <= 120_000 and v.clip_info(result).has_audio

        # When nothing fits, the member is told clearly and nothing is charged.
        fake_discord.set_upload_limit(w.guild_id, 4_000)
        before = len(uploads)
        inter = await v.command({"prompt": "rain again", "duration": 4, "resolution": "640x512"})
        status = await v.status(inter)
        await v.wait_job(2, "failed")
        await fake_discord.wait_for(lambda: "failed" in status.content, 5, "the failure")
        assert "too large" in status.content and "Nothing was charged" in status.content
        sizes = [len(r.files[0].data) for r in fake_discord.requests if r.files][before:]
        assert len(set(sizes)) == len(sizes), "never the same file twice"
        assert sum(s for j, _k, s, _u in await v.ledger() if j == 2) == 0


async def test_mentions_in_the_prompt_ping_nobody(video_bot, fake_discord) -> None:
    w = fake_discord.world
    role = fake_discord.add_role(w.guild_id, "everyone-who-likes-cats")
    prompt = f"@everyone @here <@&{role}> <@{w.admin_id}> look at **this** cat"
    async with video_bot() as v:
        inter = await v.command({"prompt": prompt, "duration": 4, "resolution": "512x512"})
        result = await v.result()
        status = await v.status(inter)
        for message in [*bot_messages(fake_discord, w.channel_id), inter.original]:
            assert not message.pinged_everyone and not message.pinged_role_ids, message.content
            assert message.pinged_user_ids <= {w.user_id}, message.content
        assert result.pinged_user_ids == {w.user_id}
        assert not status.pinged_user_ids
        # The prompt is echoed (made inert), and reached the provider exactly as written.
        assert "look at \\*\\*this\\*\\* cat" in result.content
        assert (await v.job(1)).prompt == prompt


async def test_provider_failure_ends_with_a_clear_message_and_refund(
    video_bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = bot.client.build_providers

    def failing(*args, **kwargs):
        providers = real(*args, **kwargs)
        providers["simulator"].fail_prompts_containing = "volcano"
        return providers

    monkeypatch.setattr(bot.client, "build_providers", failing)
    async with video_bot() as v:
        inter = await v.command({"prompt": "a volcano", "duration": 4, "resolution": "512x512"})
        status = await v.status(inter)
        await v.wait_job(1, "failed")
        await v.fake.wait_for(lambda: "failed" in status.content, 5, "the failure")
        assert "Nothing was charged" in status.content and status.custom_ids() == []
        await v.fake.wait_for(
            lambda: "60 s of your allowance left" in inter.original.content, 5, "private refund"
        )
        assert sum(s for j, _k, s, _u in await v.ledger() if j == 1) == 0


async def test_restart_mid_job_delivers_exactly_once(video_bot, fake_discord) -> None:
    w = fake_discord.world
    async with video_bot(simulator_delay_seconds=1.5) as v:
        inter = await v.command({"prompt": "a ferry", "duration": 4, "resolution": "512x512"})
        status = await v.status(inter)
        await v.wait_job(1, "submitted", "running")
    assert not v.results()
    async with video_bot(simulator_delay_seconds=1.5) as v:
        result = await v.result()
        assert result.webhook_id is None and replies_to(result, status)
        assert result.pinged_user_ids == {w.user_id}
        job = await v.wait_job(1, "delivered")
        assert job.result_message_id == result.id
        info = v.clip_info(result)
        assert info.has_audio and round(info.duration_s) == 4
        await asyncio.sleep(0.5)
        assert len(v.results()) == 1
        assert [k for j, k, *_ in await v.ledger() if j == 1] == ["reserve", "settle"]


async def test_cancel_button_works_after_a_restart(video_bot, fake_discord) -> None:
    w = fake_discord.world
    async with video_bot(simulator_delay_seconds=30) as v:
        inter = await v.command({"prompt": "a glacier", "duration": 4, "resolution": "512x512"})
        status = await v.status(inter)
        await v.wait_job(1, "submitted", "running")
    async with video_bot(simulator_delay_seconds=30) as v:
        press = await v.press(status, "ltx:cancel:1")  # the button of the old process
        assert "cancelled" in await v.reply(press)
        await v.wait_job(1, "cancelled")
        # Off the token (new process): the old status shows the end, and a reply pings the
        # requester only.
        ending = await fake_discord.wait_for_message(
            w.channel_id, lambda m: m.webhook_id is None and "was cancelled" in m.content
        )
        assert replies_to(ending, status) and ending.pinged_user_ids == {w.user_id}
        await fake_discord.wait_for(lambda: "was cancelled" in status.content, 5, "status end")
        assert status.custom_ids() == []
        assert sum(s for j, _k, s, _u in await v.ledger() if j == 1) == 0


async def test_progress_shows_provider_progress_at_most_one_edit_per_interval(
    video_bot, fake_discord
) -> None:
    interval = 0.8
    async with video_bot(simulator_delay_seconds=3.0, progress_interval=interval) as v:
        inter = await v.command({"prompt": "a slow dawn", "duration": 4, "resolution": "512x512"})
        status = await v.status(inter)
        await v.result()
        await fake_discord.wait_for(lambda: "Done" in status.content, 5, "final status")
        lines = [h["content"].rsplit("\n", 1)[-1] for h in status.history if "content" in h]
        # Queue/submission state, then the provider's progress and ETA, then the end.
        assert any("%" in line and "left" in line and "elapsed" in line for line in lines), lines
        assert lines[-1].startswith("✅ Done")
        edits = [
            r.at
            for r in fake_discord.requests
            if r.method == "PATCH" and r.path.endswith(f"/messages/{status.id}")
        ]
        created = next(
            r.at
            for r in fake_discord.requests
            if r.method == "POST" and r.path.startswith("/webhooks/") and inter.token in r.path
        )
        # Every edit but the final one waits for the interval since the previous write.
        gaps = [b - a for a, b in itertools.pairwise([created, *edits[:-1]])]
        assert len(gaps) >= 2 and all(gap >= interval * 0.95 for gap in gaps), gaps


async def test_crash_between_post_and_record_does_not_post_twice(video_bot, fake_discord) -> None:
    """A kill after Discord accepted the clip but before its message id was saved: the next
    process finds its own earlier post instead of posting the clip again."""
    async with video_bot(simulator_delay_seconds=0.3) as v:
        await v.command({"prompt": "a windmill", "duration": 4, "resolution": "512x512"})
        first = await v.result()
        await v.wait_job(1, "delivered")
        # Put the row back where the crash would have left it.
        await v.bot.db.execute(
            "UPDATE jobs SET status = 'delivering', result_message_id = NULL, "
            "result_channel_id = NULL WHERE id = 1"
        )
    async with video_bot(simulator_delay_seconds=0.3) as v:
        job = await v.wait_job(1, "delivered")
        assert job.result_message_id == first.id
        await asyncio.sleep(0.5)
        assert len(v.results()) == 1
        assert [k for j, k, *_ in await v.ledger() if j == 1] == ["reserve", "settle"]


async def test_mod_log_records_failures_and_refusals(
    video_bot, fake_discord, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = fake_discord.world
    real = bot.client.build_providers

    def failing(*args, **kwargs):
        providers = real(*args, **kwargs)
        providers["simulator"].fail_prompts_containing = "volcano"
        return providers

    monkeypatch.setattr(bot.client, "build_providers", failing)
    async with video_bot() as v:
        setup = await v.command(
            {"channel": w.other_channel_id}, name="videoadmin logchannel", user_id=w.admin_id
        )
        await v.private(setup)
        blockword = await v.command(
            {"term": "forbidden"}, name="videoadmin blockword add", user_id=w.admin_id
        )
        await v.private(blockword)

        refused = await v.command({"prompt": "a forbidden dance", "duration": 4})
        assert "blocked term" in (await v.private(refused)).content
        failed = await v.command({"prompt": "a volcano", "duration": 4, "resolution": "512x512"})
        await v.status(failed)
        await v.wait_job(1, "failed")

        def logged(word: str):
            return lambda m: any(word in str(e).lower() for e in m.embeds)

        refusal = await fake_discord.wait_for_message(w.other_channel_id, logged("refus"), 15)
        failure = await fake_discord.wait_for_message(w.other_channel_id, logged("failed"), 15)
        for entry in (refusal, failure):
            assert not entry.pinged_everyone and not entry.pinged_user_ids
        kinds = [r["kind"] for r in await v.bot.db.fetchall("SELECT kind FROM audit_log")]
        assert kinds.count("refusal") == 1 and kinds.count("generation") == 1
