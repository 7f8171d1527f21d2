"""/video with provider:bytecompute and provider:leonardo, end to end against the fake
provider servers (real HTTP on 127.0.0.1), including their negotiation paths."""

from __future__ import annotations

import functools

import pytest

import bot.jobs.tracker.settings
from bot.jobs.tracker import TrackerSettings
from tests.e2e.conftest import image_file
from tests.fakes.bytecompute_server import FakeByteCompute
from tests.fakes.leonardo_server import FakeLeonardo


@pytest.fixture(autouse=True)
def quick_first_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes finish in 0.2 s; without history the tracker would expect minutes."""
    quick = functools.partial(
        TrackerSettings, prior_base_seconds=0.3, prior_seconds_per_video_second=0.0
    )
    monkeypatch.setattr(bot.jobs.tracker.settings, "TrackerSettings", quick)


async def test_bytecompute_lowers_fps_for_a_long_1080p_clip(video_bot) -> None:
    async with FakeByteCompute(job_seconds=0.2) as server:
        settings = {
            "bytecompute_api_key": server.api_key,
            "bytecompute_base_url": server.base_url,
            "simulator_enabled": True,
        }
        # The server also reports a change of its own after accepting the job.
        server.extra_adjustments = [{"field": "duration", "from": 10, "to": 8, "reason": "busy"}]
        server.response_variant.adjustments = "list"
        async with video_bot(**settings) as v:
            assert set(v.bot.providers) == {"bytecompute", "simulator"}
            options = {"duration": 10, "resolution": "1920x1080", "fps": 50}
            inter = await v.command({"prompt": "city lights", "provider": "bytecompute", **options})
            private = (await v.private(inter)).content
            assert "frame rate 50 fps → 25 fps" in private
            assert "GPU time" in private and "bytecompute" in private
            result = await v.result()
            assert v.clip_info(result).frames > 0  # the provider's clip, decodable
            # What reached the provider is what the member was shown.
            (sent,) = server.requests_to("/v1/generate")
            assert sent.form["fps"] == "25" and sent.form["duration"] == "10"
            assert sent.form["resolution"] == "1920x1080" and sent.form["prompt"] == "city lights"
            job = await v.wait_job(1, "delivered")
            assert job.provider == "bytecompute" and job.provider_job_id
            assert v.bot.providers["bytecompute"].limits.supports_seed is False
            assert "seed" not in result.content  # ByteCompute takes no seed: none is invented
            # The provider's own change reached the member: status header and result.
            assert job.seconds == 8
            status = await v.status(inter)
            assert "duration 10 s → 8 s (busy)" in status.content
            assert "· 8 s ·" in result.content and f"${job.cost_usd:.2f}" in result.content


async def test_leonardo_snaps_the_duration_and_takes_an_image(video_bot) -> None:
    async with FakeLeonardo(job_seconds=0.2) as server:
        settings = {
            "leonardo_api_key": server.api_key,
            "leonardo_base_url": server.rest_url,
            "simulator_enabled": False,
        }
        async with video_bot(**settings) as v:
            assert set(v.bot.providers) == {"leonardo"}
            inter = await v.command(
                {"prompt": "a heron takes off", "provider": "leonardo", "duration": 7, "fps": 30},
                attachments={"image": image_file("heron.jpg", width=960, height=540)},
            )
            private = (await v.private(inter)).content
            assert "duration 7 s → 6 s" in private and "frame rate 30 fps → 25 fps" in private
            assert "image-to-video" in private and "1920×1080" in private
            result = await v.result()
            assert v.clip_info(result).has_audio
            (body,) = [r.json for r in server.requests_to("/api/rest/v2/generations")]
            params = body.get("parameters", body)
            assert params["duration"] == 6 and params["prompt"] == "a heron takes off"
            assert server.init_images, "the image was uploaded through Leonardo's init-image flow"
            job = await v.wait_job(1, "delivered")
            assert f"seed {job.request.seed}" in result.content
            assert f"${job.cost_usd:.2f}" in result.content
