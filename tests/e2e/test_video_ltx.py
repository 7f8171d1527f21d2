"""/video on provider:ltx end to end: the real bot against the fake Discord and the fake LTX
server (real HTTP on 127.0.0.1): text- and image-to-video, a soundtrack (a real sound file
made with PyAV), Extend and Retake through their buttons and modals, and 402."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import bot.jobs.tracker.settings
from bot.jobs.tracker import MSG_OUT_OF_CREDIT, TrackerSettings
from tests.e2e.conftest import image_file
from tests.fakes.discord_server import FakeFile
from tests.fakes.ltx_server import FakeLtx
from tests.fakes.payloads import CallbackType
from tests.ltx_media import make_sound


@pytest.fixture(autouse=True)
def quick_first_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = functools.partial(
        TrackerSettings, prior_base_seconds=0.3, prior_seconds_per_video_second=0.0
    )
    monkeypatch.setattr(bot.jobs.tracker.settings, "TrackerSettings", quick)


@pytest.fixture
def ltx_bot(video_bot: Any) -> Any:
    @asynccontextmanager
    async def _make(**overrides: Any) -> AsyncIterator[tuple[Any, FakeLtx]]:
        async with FakeLtx(job_seconds=0.2) as server:
            settings = {
                "ltx_api_key": server.api_key,
                "ltx_base_url": server.base_url,
                "simulator_enabled": False,
                "quota_seconds_per_day": 200,
                **overrides,
            }
            async with video_bot(**settings) as v:
                yield v, server

    return _make


def posted_to(server: FakeLtx) -> list[Any]:
    return [r for r in server.requests if r.method == "POST" and r.path.startswith("/v2/")]


async def test_text_and_image_to_video_on_ltx(ltx_bot) -> None:
    async with ltx_bot(default_provider="ltx") as (v, server):
        assert set(v.bot.providers) == {"ltx"}
        inter = await v.command({"prompt": "a lighthouse", "duration": 6, "provider": "ltx"})
        private = (await v.private(inter)).content
        assert "$0.36" in private  # 6 s at 1080p on ltx-2-3-fast
        first = await v.result()
        info = v.clip_info(first)
        assert info.frames == 6 * 24 and info.has_audio
        ids = first.custom_ids()
        assert {"ltx:again:1", "ltx:delete:1", "ltx:extend:1", "ltx:retake:1"} == set(ids)
        await v.command(
            {"prompt": "the waves roll", "duration": 6}, attachments={"image": image_file()}
        )
        second = await v.result(lambda m: m.id != first.id)
        assert v.clip_info(second).frames == 6 * 24
        paths = [r.path for r in posted_to(server)]
        assert paths == ["/v2/text-to-video", "/v2/image-to-video"]
        assert [r.authorization for r in server.requests if r.method == "PUT"] == [None]


async def test_a_soundtrack_drives_the_clip(ltx_bot, tmp_path) -> None:
    sound = make_sound(tmp_path / "beat.wav", 3.2)
    async with ltx_bot() as (v, server):
        inter = await v.command(
            {"prompt": "dancers on a roof"},
            attachments={"soundtrack": FakeFile("beat.wav", sound, "audio/wav")},
        )
        private = (await v.private(inter)).content
        assert "audio-to-video" in private and "$0.32" in private  # 3.2 s of audio at $0.10
        result = await v.result()
        assert v.clip_info(result).frames == 4 * 25
        (sent,) = posted_to(server)
        assert sent.path == "/v2/audio-to-video" and sent.json["model"] == "ltx-2-3-pro"
        job = await v.wait_job(1, "delivered")
        data = json.loads((await v.audit("generation"))[-1]["data_json"])
        assert data["operation"] == "audio-to-video" and job.request.soundtrack is not None
        assert [i["name"] for i in data["inputs"]] == ["soundtrack"]
        # too short: refused before anything is sent or charged
        short = make_sound(tmp_path / "short.wav", 1.0)
        refusal = await v.refusal(
            {"prompt": "x"}, attachments={"soundtrack": FakeFile("s.wav", short, "audio/wav")}
        )
        assert "2–20 s" in refusal.content
        assert len(posted_to(server)) == 1


async def test_extend_and_retake_through_buttons_and_modals(ltx_bot) -> None:
    async with ltx_bot() as (v, server):
        await v.command({"prompt": "a paper boat", "duration": 6})
        original = await v.result()
        # someone else may not edit it
        other = int(v.fake.add_member(v.world.guild_id, username="bob").user["id"])
        refused = await v.fake.send_component(original, "ltx:extend:1", other)
        await refused.wait_for_callback()
        assert refused.callback is not None and refused.callback.type != CallbackType.MODAL
        opened = await v.press(original, "ltx:extend:1")
        assert opened.callback is not None and opened.callback.type == CallbackType.MODAL
        submitted = await v.fake.send_modal_submit(opened, {"seconds": "4", "where": "end"})
        await submitted.wait_for_callback()
        private = (await v.private(submitted)).content
        assert "extend job 1" in private and "$1.00" in private  # 4 s + 6 s context at $0.10
        extended = await v.result(lambda m: m.id != original.id)
        assert extended.message_reference is not None
        assert int(extended.message_reference["message_id"]) == original.id
        assert v.clip_info(extended).duration_s == pytest.approx(10)
        assert "ltx:again:2" not in extended.custom_ids()
        extend_sent = posted_to(server)[-1]
        assert extend_sent.path == "/v2/extend" and extend_sent.json["duration"] == 4
        opened = await v.press(original, "ltx:retake:1")
        submitted = await v.fake.send_modal_submit(
            opened, {"start": "1", "end": "3.5", "redo": "audio", "prompt": "a duck quacks"}
        )
        await submitted.wait_for_callback()
        retaken = await v.result(lambda m: m.id not in (original.id, extended.id))
        assert int(retaken.message_reference["message_id"]) == original.id
        retake_sent = posted_to(server)[-1]
        assert retake_sent.path == "/v2/retake"
        assert retake_sent.json["mode"] == "replace_audio"
        assert retake_sent.json["start_time"] == 1 and retake_sent.json["duration"] == 2.5
        job = await v.wait_job(3, "delivered")
        assert job.request.edit is not None and job.request.edit.source_job_id == 1


async def test_out_of_credit_tells_the_member_and_the_admins(ltx_bot) -> None:
    async with ltx_bot() as (v, server):
        server.out_of_credit = True
        inter = await v.command({"prompt": "a comet", "duration": 6})
        await v.private(inter)
        await v.wait_job(1, "failed")
        # the status message ends with the reason; the private summary shows the refund
        status = await v.fake.wait_for_message(
            v.world.channel_id, lambda m: "out of credit" in m.content, 10
        )
        assert "nothing was charged" in status.content
        entries = await v.audit("provider_account")
        assert len(entries) == 1 and "402" in entries[0]["summary"]
        kinds = [row[1] for row in await v.ledger()]
        assert kinds == ["reserve", "refund"]
        job = await v.job(1)
        assert job.failure_reason == MSG_OUT_OF_CREDIT


async def test_no_soundtrack_option_without_a_provider_for_it(video_bot, fake_discord) -> None:
    async with video_bot():
        (video,) = [c for c in fake_discord.global_commands if c["name"] == "video"]
        assert "soundtrack" not in {o["name"] for o in video["options"]}
