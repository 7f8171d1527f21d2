"""/video input errors end to end: each answered ephemerally with what to change, nothing
charged (quota ledger unchanged), nothing created or sent to the provider."""

from __future__ import annotations

import struct
import zlib
from typing import Any

from bot import moderation
from bot.db import utcnow
from tests.e2e.conftest import image_bytes, image_file
from tests.fakes.discord_server import FakeFile
from tests.fakes.payloads import Permissions


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny, valid-looking PNG whose header claims a huge picture (decompression bomb)."""
    data = bytearray(image_bytes(64, 64))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


async def assert_refused(v, options: dict[str, Any], expected: str, **kwargs: Any) -> str:
    """Run /video, expect an ephemeral refusal containing `expected`, and no side effects."""
    ledger, jobs, submits = await v.ledger(), await v.jobs(), v.submits()
    public_before = len(v.fake.messages(v.world.channel_id, include_ephemeral=False))
    msg = await v.refusal({"prompt": "a quiet harbour at dawn", **options}, **kwargs)
    assert expected in msg.content, msg.content
    assert await v.ledger() == ledger, "nothing may be charged"
    assert await v.jobs() == jobs, "no job may be created"
    assert v.submits() == submits, "nothing may reach the provider"
    assert len(v.fake.messages(v.world.channel_id, include_ephemeral=False)) == public_before
    return msg.content


async def test_input_errors_are_ephemeral_and_charge_nothing(video_bot) -> None:
    png = image_file("a.png")
    async with video_bot() as v:
        # Cheap checks answer at once (the acknowledgement itself), before any download.
        for options, attachments, expected in [
            ({}, {"image": png, "first_frame": png}, "not both"),
            ({}, {"image": png, "last_frame": png}, "not both"),
            ({}, {"last_frame": png}, "`last_frame` needs a `first_frame`"),
            ({"resolution": "big"}, {}, "`resolution` must look like `1280x720`"),
            ({"resolution": "10x10"}, {}, "`resolution` must look like"),
            (
                {},
                {"image": FakeFile("huge.png", b"\x89PNG\r\n\x1a\n" + bytes(11 * 2**20))},
                "images must be at most 10 MB",
            ),
        ]:
            text = await assert_refused(v, options, expected, attachments=attachments)
            assert text.startswith(("Use", "`")), text
        assert v.attachment_downloads() == 0
        for inter in v.fake.interactions.values():
            assert inter.callback is not None and inter.callback.type == 4  # answered, not deferred
            assert inter.callback.ephemeral

        # Checked by their bytes after the download, whatever the file is called.
        for attachment, expected in [
            (FakeFile("photo.png", b"just some text, not a picture\n" * 20), "not an image"),
            (image_file("anim.gif"), "(got GIF)"),
            (FakeFile("bomb.png", bomb_png(), "image/png"), "too many pixels"),
            (image_file("tiny.png", width=32, height=32), "too small"),
            (FakeFile("cut.png", image_bytes()[:200], "image/png"), "damaged or incomplete"),
        ]:
            await assert_refused(v, {}, expected, attachments={"image": attachment})
        assert v.attachment_downloads() == 5
        # Nothing of the refused inputs is left on disk.
        inputs = v.bot.settings.data_dir / "inputs"
        assert not inputs.exists() or not any(inputs.iterdir())

        await assert_refused(v, {"provider": "leonardo"}, "Provider `leonardo` is not available")


async def test_moderation_and_allowance_refusals(video_bot) -> None:
    async with video_bot(quota_seconds_per_day=10) as v:
        w, now = v.world, utcnow()
        await moderation.add_blocked_term(
            v.bot.db, w.guild_id, "forbidden fruit", is_regex=False, actor_id=w.admin_id, now=now
        )
        text = await assert_refused(v, {"prompt": "Eating the FORBIDDEN fruit"}, "blocked term")
        assert "please rephrase" in text

        # Allowance: an 8 s job reserves 8 of the 10 s; a 4 s one no longer fits.
        first = await v.command({"prompt": "a slow tide", "duration": 8, "resolution": "512x512"})
        assert "2 s of your allowance left" in (await v.private(first)).content
        text = await assert_refused(
            v, {"duration": 4, "resolution": "512x512"}, "2 s of video left"
        )
        assert "needs 4 s" in text
        await v.result()  # the admitted job still completes
        await v.wait_job(1, "delivered")

        await moderation.block_member(
            v.bot.db,
            w.guild_id,
            w.user_id,
            actor_id=w.admin_id,
            reason="spam",
            duration=None,
            now=now,
        )
        text = await assert_refused(v, {}, "can't use /video in this server")
        assert "spam" not in text  # the reason is for moderators
        refusals = await v.audit("refusal")
        assert len(refusals) == 3  # blocked term, allowance, blocked member


async def test_missing_channel_permissions_are_named(video_bot, fake_discord) -> None:
    w = fake_discord.world
    guild = fake_discord.guilds[w.guild_id]
    denied = Permissions.ATTACH_FILES | Permissions.EMBED_LINKS
    locked = fake_discord.add_channel(
        w.guild_id,
        "no-files",
        permission_overwrites=[
            {"id": str(guild.bot_role_id), "type": 0, "allow": "0", "deny": str(denied)}
        ],
    )
    async with video_bot() as v:
        text = await assert_refused(v, {}, "Attach Files", channel_id=locked)
        assert "Embed Links" in text and "Send Messages" not in text
        # The interaction's app_permissions decide; nothing was tried in the channel.
        assert not fake_discord.messages(locked, include_ephemeral=False)
        # A channel where the bot can post works as usual.
        inter = await v.command({"prompt": "ok here", "duration": 4, "resolution": "512x512"})
        await v.status(inter)
        await v.result()
