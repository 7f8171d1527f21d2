"""The output safety check end to end: the real NudeNet model on the simulator's real MP4s,
`/videoadmin safety`, spoiler and hold modes, Release (exactly once, also after a restart)
and Discard (refunded), age-restricted channels, and Leonardo's own `nsfw` flag."""

from __future__ import annotations

import asyncio
import json

from tests.fakes.discord_server import FakeMessage
from tests.fakes.leonardo_server import FakeLeonardo

SMALL = {"duration": 4, "resolution": "512x512"}


async def admin(v, name: str, options: dict) -> str:
    inter = await v.command(options, name=name, user_id=v.world.admin_id)
    return (await v.private(inter)).content


async def safety_checks(v) -> list[dict]:
    return [json.loads(row[4]) for row in await v.audit("safety")]


def clip_names(v) -> list[str]:
    return [a.filename for m in v.results() for a in m.attachments]


async def held_message(v, job_id: int) -> FakeMessage:
    return await v.fake.wait_for_message(
        v.world.other_channel_id,
        lambda m: f"ltx:safety:release:{job_id}" in m.custom_ids(),
        20,
    )


async def test_safe_clip_scores_low_with_the_real_model_and_posts_normally(video_bot) -> None:
    async with video_bot() as v:  # defaults: spoiler mode, threshold 0.6
        await v.command({"prompt": "a quiet harbour at dawn", **SMALL})
        result = await v.result()
        (name,) = [a.filename for a in result.attachments]
        assert name.startswith("ltx-job-1-") and not name.startswith("SPOILER_")
        assert v.clip_info(result).frames > 0
        await v.wait_job(1, "delivered")
        (check,) = await safety_checks(v)
        # The classifier really ran: one frame per second of the 4 s clip, and it found
        # nothing explicit in the simulator's drawn frames.
        assert check["frames"] == 4 and check["score"] < 0.2 and check["labels"] == {}
        assert check["action"] == "post" and check["mode"] == "spoiler"
        assert check["cpu_seconds"] > 0


async def test_spoiler_mode_with_threshold_zero_posts_a_spoiler(video_bot) -> None:
    async with video_bot() as v:
        answer = await admin(v, "videoadmin safety", {"mode": "spoiler", "threshold": 0.0})
        assert "mode spoiler, threshold 0" in answer and "Classifier: nudenet" in answer
        (change,) = await v.audit("admin")
        assert json.loads(change[4])["new"] == {"mode": "spoiler", "threshold": 0.0}
        await v.command({"prompt": "a red kite", **SMALL})
        result = await v.result()
        (name,) = [a.filename for a in result.attachments]
        assert name.startswith("SPOILER_ltx-job-1-")
        assert v.clip_info(result).has_audio  # the same clip, only covered
        await v.wait_job(1, "delivered")
        (check,) = await safety_checks(v)
        assert check["action"] == "spoiler" and check["threshold"] == 0.0


async def test_hold_then_release_posts_exactly_once(video_bot, fake_discord) -> None:
    w = fake_discord.world
    async with video_bot() as v:
        await admin(v, "videoadmin logchannel", {"channel": w.other_channel_id})
        await admin(v, "videoadmin safety", {"mode": "hold", "threshold": 0.0})
        inter = await v.command({"prompt": "a lighthouse", **SMALL})
        held = await held_message(v, 1)
        assert held.attachments[0].filename.startswith("SPOILER_ltx-job-1-")
        assert "Held for review" in held.content and not held.pinged_user_ids
        # Not posted in the member's channel; the member is told why.
        await fake_discord.wait_for(
            lambda: any("safety check flagged" in m.content for m in inter.followups),
            5,
            "the member's notice",
        )
        await asyncio.sleep(0.3)
        assert not v.results() and (await v.job(1)).status.value == "delivering"

        # An ordinary member may not decide.
        press = await v.press(held, "ltx:safety:release:1", user_id=w.user_id)
        assert "Only moderators" in await v.reply(press)
        assert not v.results()

        # A moderator releases; a double click changes nothing.
        first = await v.press(held, "ltx:safety:release:1", user_id=w.admin_id)
        assert "released" in await v.reply(first)
        result = await v.result()
        assert not result.attachments[0].filename.startswith("SPOILER_")
        job = await v.wait_job(1, "delivered")
        assert job.result_message_id == result.id
        assert [k for j, k, *_ in await v.ledger() if j == 1] == ["reserve", "settle"]
        # The buttons are gone after the decision (a second press is the next test's).
        assert held.custom_ids() == [] and "Released by" in held.content
        await asyncio.sleep(0.3)
        assert len(v.results()) == 1
        events = [c.get("event") for c in await safety_checks(v)]
        assert events == ["check", "released"]


async def test_double_release_is_decided_once(video_bot, fake_discord) -> None:
    w = fake_discord.world
    async with video_bot() as v:
        await admin(v, "videoadmin logchannel", {"channel": w.other_channel_id})
        await admin(v, "videoadmin safety", {"mode": "hold", "threshold": 0.0})
        await v.command({"prompt": "a dune", **SMALL})
        held = await held_message(v, 1)
        # Two presses before either answer (a double click): only one release happens.
        a, b = await asyncio.gather(
            fake_discord.send_component(held, "ltx:safety:release:1", w.admin_id),
            fake_discord.send_component(held, "ltx:safety:release:1", w.admin_id),
        )
        replies = sorted([await v.reply(a), await v.reply(b)])
        assert any("already released" in r for r in replies), replies
        await v.result()
        await v.wait_job(1, "delivered")
        await asyncio.sleep(0.5)
        assert len(v.results()) == 1


async def test_hold_then_discard_refunds_and_tells_the_member(video_bot, fake_discord) -> None:
    w = fake_discord.world
    async with video_bot() as v:
        await admin(v, "videoadmin logchannel", {"channel": w.other_channel_id})
        await admin(v, "videoadmin safety", {"mode": "hold", "threshold": 0.0})
        inter = await v.command({"prompt": "a storm", **SMALL})
        status = await v.status(inter)
        held = await held_message(v, 1)
        press = await v.press(held, "ltx:safety:discard:1", user_id=w.admin_id)
        assert "discarded" in await v.reply(press)
        await v.wait_job(1, "failed")
        await fake_discord.wait_for(
            lambda: "decided not to post" in status.content, 5, "the member is told"
        )
        assert "Nothing was charged" in status.content
        assert sum(s for j, _k, s, _u in await v.ledger() if j == 1) == 0
        assert not v.results() and "Discarded by" in held.content
        assert not list((v.tmp_path / "data").rglob("*.mp4")), "the held clip file is removed"
        assert [c.get("event") for c in await safety_checks(v)] == ["check", "discarded"]


async def test_a_held_clip_survives_a_restart_and_is_released_once(video_bot, fake_discord) -> None:
    w = fake_discord.world
    async with video_bot() as v:
        await admin(v, "videoadmin logchannel", {"channel": w.other_channel_id})
        await admin(v, "videoadmin safety", {"mode": "hold", "threshold": 0.0})
        await v.command({"prompt": "a glacier", **SMALL})
        held = await held_message(v, 1)
    async with video_bot() as v:
        await asyncio.sleep(0.5)  # resumed: still held, not posted again to the mod-log
        holds = [
            m
            for m in fake_discord.messages(w.other_channel_id)
            if "ltx:safety:release:1" in m.custom_ids()
        ]
        assert holds == [held] and not v.results()
        press = await v.press(held, "ltx:safety:release:1", user_id=w.admin_id)
        assert "released" in await v.reply(press)
        await v.result()
        await v.wait_job(1, "delivered")
        await asyncio.sleep(0.3)
        assert len(v.results()) == 1


async def test_age_restricted_channel_and_its_threads_skip_the_hold(
    video_bot, fake_discord
) -> None:
    w = fake_discord.world
    adult = fake_discord.add_channel(w.guild_id, "after-dark", nsfw=True)
    thread = fake_discord.add_thread(adult, "late")
    async with video_bot() as v:
        await admin(v, "videoadmin logchannel", {"channel": w.other_channel_id})
        await admin(v, "videoadmin safety", {"mode": "hold", "threshold": 0.0})
        for channel_id in (adult, thread):
            await v.command({"prompt": "a neon street", **SMALL}, channel_id=channel_id)
            result = await fake_discord.wait_for_message(
                channel_id, lambda m: bool(m.attachments), 20
            )
            assert not result.attachments[0].filename.startswith("SPOILER_")
        await v.wait_job(2, "delivered")
        checks = await safety_checks(v)
        assert [c["action"] for c in checks] == ["post", "post"]
        assert all("age-restricted" in c["note"] for c in checks)
        assert not [
            m
            for m in fake_discord.messages(w.other_channel_id)
            if "ltx:safety" in str(m.custom_ids())
        ]


async def test_hold_without_a_mod_log_channel_posts_a_spoiler(video_bot) -> None:
    async with video_bot() as v:
        answer = await admin(v, "videoadmin safety", {"mode": "hold", "threshold": 0.0})
        assert "No mod-log channel" in answer
        await v.command({"prompt": "a fox", **SMALL})
        result = await v.result()
        assert result.attachments[0].filename.startswith("SPOILER_")
        (check,) = await safety_checks(v)
        assert check["action"] == "spoiler" and "mod-log" in check["note"]


async def test_leonardo_nsfw_flag_counts_as_a_score_of_one(video_bot) -> None:
    async with FakeLeonardo(job_seconds=0.2) as server:
        server.nsfw = True
        settings = {
            "leonardo_api_key": server.api_key,
            "leonardo_base_url": server.rest_url,
            "simulator_enabled": False,
        }
        async with video_bot(**settings) as v:
            await v.command({"prompt": "a heron", "provider": "leonardo", "duration": 6})
            result = await v.result()  # default spoiler mode, threshold 0.6
            assert result.attachments[0].filename.startswith("SPOILER_")
            job = await v.wait_job(1, "delivered")
            assert job.provider_flagged
            (check,) = await safety_checks(v)
            assert check["score"] == 1.0 and "PROVIDER_NSFW_FLAG" in check["labels"]
