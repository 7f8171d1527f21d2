"""A delivered clip's mod-log entry carries its poster frame (a JPEG ~1 s in) as the embed
image; the frame is removed once posted, and none is kept for a guild without a log channel.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageStat

from tests.e2e.conftest import image_file, near
from tests.fakes.payloads import Permissions


async def _set_log_channel(v: Any) -> None:
    w = v.world
    setup = await v.command(
        {"channel": w.other_channel_id}, name="videoadmin logchannel", user_id=w.admin_id
    )
    await v.private(setup)


def _logged_generation(message: Any) -> bool:
    return any("Generation" in str(e.get("title", "")) for e in message.embeds)


async def test_mod_log_entry_shows_the_clip_poster_frame(video_bot: Any, tmp_path: Path) -> None:
    async with video_bot() as v:
        w = v.world
        await _set_log_channel(v)
        inter = await v.command(
            {"prompt": "a red kite", "duration": 4, "resolution": "640x512"},
            attachments={"image": image_file(color=(20, 40, 200))},
        )
        await v.status(inter)
        result = await v.result()
        logged = await v.fake.wait_for_message(w.other_channel_id, _logged_generation, 20)
        frames_dir = v.bot.service.files.posters_dir
        # The frame goes once the entry is posted (the clip itself is gone already).
        for _ in range(100):
            if not list(frames_dir.glob("*.jpg")):
                break
            await asyncio.sleep(0.05)
        assert not list(frames_dir.glob("*")), "poster frame left behind after posting"
        assert not list(v.bot.service.files.clips_dir.glob("*.mp4"))

    embed = logged.embeds[0]
    assert embed["image"]["url"] == "attachment://poster.jpg"
    assert any(f["name"] == "Inputs" for f in embed["fields"])  # the input image is still listed
    poster = logged.attachment("poster.jpg")
    with Image.open(io.BytesIO(poster.data)) as im:
        assert im.format == "JPEG"
        assert max(im.size) <= 320
        assert abs(im.size[0] / im.size[1] - 640 / 512) < 0.02
        frame = im.convert("RGB")
        stats = ImageStat.Stat(frame)
    assert len(poster.data) < 60_000
    # It is the clip's own frame about 1 s in: decode the posted clip there and compare.
    expected = frame_at(v.clip_path(result), 1.0).resize(frame.size)
    want = tuple(round(x) for x in ImageStat.Stat(expected).mean)
    assert near(tuple(round(x) for x in stats.mean), want, 8)  # type: ignore[arg-type]


def frame_at(path: Path, seconds: float) -> Image.Image:
    import av

    with av.open(str(path)) as container:
        for f in container.decode(video=0):
            if f.time is not None and f.time >= seconds:
                return f.to_image().convert("RGB")
    raise AssertionError("clip shorter than expected")


async def test_no_poster_frame_without_a_log_channel(video_bot: Any) -> None:
    async with video_bot() as v:
        inter = await v.command({"prompt": "a quiet harbour", "duration": 4})
        await v.status(inter)
        await v.result()
        await v.wait_job(1, "delivered")
        await asyncio.sleep(0.2)
        assert not list(v.bot.service.files.posters_dir.glob("*"))


async def test_a_log_channel_without_attach_files_gets_the_entry_without_the_frame(
    video_bot: Any, fake_discord: Any
) -> None:
    w = fake_discord.world
    guild = fake_discord.guilds[w.guild_id]
    deny = str(Permissions.ATTACH_FILES)
    log_channel = fake_discord.add_channel(
        w.guild_id,
        "mod-log-no-files",
        permission_overwrites=[
            {"id": str(guild.bot_role_id), "type": 0, "allow": "0", "deny": deny}
        ],
    )
    async with video_bot() as v:
        setup = await v.command(
            {"channel": log_channel}, name="videoadmin logchannel", user_id=w.admin_id
        )
        await v.private(setup)
        await v.status(await v.command({"prompt": "a paper boat", "duration": 4}))
        await v.result()
        logged = await fake_discord.wait_for_message(log_channel, _logged_generation, 20)
        assert not logged.attachments and "image" not in logged.embeds[0]
        for _ in range(100):  # the frame goes all the same
            if not list(v.bot.service.files.posters_dir.glob("*")):
                break
            await asyncio.sleep(0.05)
        assert not list(v.bot.service.files.posters_dir.glob("*"))
        pending = await v.bot.db.fetchone("SELECT COUNT(*) FROM modlog_outbox")
        assert pending[0] == 0
