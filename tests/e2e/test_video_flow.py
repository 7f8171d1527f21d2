"""The real bot against the fake Discord: /video with the simulator, end to end."""

from __future__ import annotations

from pathlib import Path

from bot.media import probe
from tests.fakes.discord_server import FakeDiscord


async def test_video_text_to_video_posts_a_decodable_mp4(
    fake_discord: FakeDiscord, make_bot, tmp_path: Path
) -> None:
    w = fake_discord.world
    async with make_bot():
        assert {c["name"] for c in fake_discord.commands()} >= {
            "video",
            "quota",
            "jobs",
            "videoadmin",
        }
        inter = await fake_discord.send_slash_command(
            w.guild_id,
            w.channel_id,
            w.user_id,
            "video",
            {"prompt": "a lighthouse in a storm @everyone", "duration": 4, "resolution": "640x512"},
        )
        callback = await inter.wait_for_callback()
        assert callback.type == 5  # deferred
        assert inter.ack_latency is not None and inter.ack_latency < 1.0
        result = await fake_discord.wait_for_message(
            w.channel_id, lambda m: bool(m.attachments), timeout=30
        )
        clip = tmp_path / "result.mp4"
        clip.write_bytes(result.attachments[0].data)
        info = probe(clip)
        assert abs(info.duration_s - 4.0) <= 1 / 25 + 1e-6
        assert (info.width, info.height) == (640, 512)
        assert info.has_audio
        # Only the requester is pinged; "@everyone" in the prompt pings nobody.
        assert result.pinged_user_ids == {w.user_id}
        assert not result.pinged_everyone
        assert {"ltx:again:1", "ltx:delete:1"} <= set(result.custom_ids())
        # The private confirmation is ephemeral and says what will be made.
        original = inter.original
        assert original is not None and original.ephemeral
        assert "4 s" in original.content and "640×512" in original.content


async def test_generation_is_audited_and_posted_to_the_mod_log(
    fake_discord: FakeDiscord, make_bot
) -> None:
    w = fake_discord.world
    async with make_bot() as bot:
        inter = await fake_discord.send_slash_command(
            w.guild_id,
            w.channel_id,
            w.admin_id,
            "videoadmin logchannel",
            {"channel": w.other_channel_id},
        )
        await inter.wait_for_callback()
        await inter.wait_for_original(lambda m: not m.loading)
        await fake_discord.send_slash_command(
            w.guild_id,
            w.channel_id,
            w.user_id,
            "video",
            {"prompt": "a kite over the dunes", "duration": 4, "resolution": "640x512"},
        )
        result = await fake_discord.wait_for_message(
            w.channel_id, lambda m: bool(m.attachments), timeout=30
        )
        logged = await fake_discord.wait_for_message(
            w.other_channel_id,
            lambda m: any("kite" in str(e) for e in m.embeds),
            timeout=30,
        )
        rows = await bot.db.fetchall(
            "SELECT kind, job_id, data_json FROM audit_log WHERE kind = 'generation'"
        )
    assert len(rows) == 1
    import json

    data = json.loads(rows[0]["data_json"])
    assert data["outcome"] == "delivered"
    assert data["prompt"] == "a kite over the dunes"
    assert data["result_url"].endswith(f"/{w.channel_id}/{result.id}")
    assert data["settings"]["width"] == 640
    assert not logged.pinged_everyone and not logged.pinged_user_ids
