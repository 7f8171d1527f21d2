"""/video end to end (simulator): each mode, and each negotiated adjustment shown up front."""

from __future__ import annotations

from bot.jobs.offerings import negotiated_size
from tests.e2e.conftest import corner_colors, image_file, near

RED = (220, 40, 30)
BLUE = (30, 60, 220)


async def test_image_to_video_animates_the_attached_image(video_bot) -> None:
    async with video_bot() as v:
        inter = await v.command(
            {"prompt": "the red wall breathes", "duration": 4, "resolution": "640x512"},
            attachments={"image": image_file("wall.png", color=RED)},
        )
        private = await v.private(inter)
        assert "image-to-video" in private.content and "Adjusted" not in private.content
        status = await v.status(inter)
        assert "image-to-video" in status.content
        assert "ltx:cancel:1" in status.custom_ids()
        result = await v.result()
        info = v.clip_info(result)
        assert (info.width, info.height) == (640, 512) and info.has_audio
        first, last = corner_colors(v.clip_path(result))
        assert near(first, RED) and near(last, RED), (first, last)
        assert "image-to-video" in result.content
        # One attachment download per image, done when the command arrived.
        assert v.attachment_downloads() == 1


async def test_frame_to_video_goes_from_the_first_to_the_last_frame(video_bot) -> None:
    async with video_bot() as v:
        inter = await v.command(
            {"prompt": "sunrise to dusk", "duration": 4, "resolution": "512x512"},
            attachments={
                "first_frame": image_file("a.jpg", width=512, height=512, color=RED),
                "last_frame": image_file("b.webp", width=512, height=512, color=BLUE),
            },
        )
        private = await v.private(inter)
        assert "frame-to-video" in private.content
        result = await v.result()
        first, last = corner_colors(v.clip_path(result))
        assert near(first, RED) and near(last, BLUE), (first, last)
        job = await v.wait_job(1, "delivered")
        assert job.mode.value == "frame-to-video" and job.result_message_id == result.id


async def test_every_adjustment_is_shown_before_anything_is_made(video_bot) -> None:
    asked = {"duration": 2, "fps": 24, "resolution": "600x400", "aspect_ratio": "16:9"}
    async with video_bot(quota_seconds_per_day=60) as v:
        inter = await v.command({"prompt": "a paper boat on a puddle", **asked})
        private = (await v.private(inter)).content
        result = await v.result()
        info = v.clip_info(result)
        # What was made differs from what was asked, and each change is stated in words.
        assert info.fps != asked["fps"] and round(info.duration_s) != asked["duration"]
        assert (info.width, info.height) != (600, 400)
        assert f"frame rate 24 fps → {info.fps:g} fps" in private
        assert f"duration 2 s → {round(info.duration_s)} s" in private
        assert f"resolution 600×400 → {info.width}×{info.height}" in private
        assert "aspect ratio 16:9 →" in private and "resolution takes priority" in private
        # Cost and the allowance left after this reservation are in the same summary.
        assert "$" in private
        assert f"{60 - round(info.duration_s)} s of your allowance left" in private
        # The public status repeats the adjustments (but no allowance figures).
        status = await v.status(inter)
        assert f"resolution 600×400 → {info.width}×{info.height}" in status.content
        assert "allowance" not in status.content.split("\n")[0]


async def test_resolution_autocomplete_offers_only_sizes_the_provider_accepts(video_bot) -> None:
    async with video_bot() as v:
        service = v.bot.service
        labels = service.resolution_choices("simulator", "16:9", "")
        assert labels and all(
            negotiated_size(v.bot.providers["simulator"], tuple(map(int, x.split("x"))))
            == tuple(map(int, x.split("x")))
            for x in labels
        )
        assert all(abs(int(w) / int(h) - 16 / 9) < 0.05 for w, h in (x.split("x") for x in labels))
        # A size the provider would change: the size it would make is offered first.
        snapped = service.resolution_choices("simulator", None, "600x400")
        assert snapped[0] == "768x512"


async def test_audio_false_makes_a_silent_clip(video_bot) -> None:
    async with video_bot() as v:
        inter = await v.command(
            {"prompt": "a silent film", "duration": 4, "resolution": "512x512", "audio": False}
        )
        assert "no sound" in (await v.private(inter)).content
        result = await v.result()
        info = v.clip_info(result)
        assert not info.has_audio and info.frames == 4 * round(info.fps)
        assert "no sound" in result.content
