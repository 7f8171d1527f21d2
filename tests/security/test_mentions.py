"""No mass mentions anywhere: whatever members or admins type (prompts, reasons, terms), no
message the bot sends can ping @everyone/@here or a role, and the only user it may ping is
the member whose clip or ending it posts.

Three layers: the client default (`AllowedMentions.none()`), every `AllowedMentions(...)`
built in bot/ and cogs/ (everyone and roles explicitly off), and a run through the fake
Discord, which computes who each message really pinged (`pinged_everyone`,
`pinged_role_ids`, `pinged_user_ids`) from the allowed_mentions the bot sent.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import discord

from bot.client import VideoBot
from tests.e2e.conftest import bot_settings
from tests.fakes.discord_server import FakeDiscord, FakeMessage

ROOT = Path(__file__).resolve().parents[2]
LOUD = "@everyone @here <@&{role}> <@{other}> hi"


def test_the_client_default_pings_nobody(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    bot = VideoBot(bot_settings(fake_discord, tmp_path))
    default = bot.allowed_mentions
    assert default is not None
    assert default.to_dict() == discord.AllowedMentions.none().to_dict()


def test_every_allowed_mentions_in_the_code_keeps_everyone_and_roles_off() -> None:
    found = 0
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("cogs/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = ast.unparse(node.func)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            assert not func.endswith("AllowedMentions.all"), where
            if func.endswith("AllowedMentions"):
                found += 1
                flags = {k.arg: ast.unparse(k.value) for k in node.keywords}
                assert flags.get("everyone") == "False", where
                assert flags.get("roles") == "False", where
    assert found >= 1  # cogs/video/common.py: requester_only()


def bot_messages(fake: FakeDiscord) -> list[FakeMessage]:
    messages: list[FakeMessage] = []
    for guild in fake.guilds.values():
        for channel in guild.channels:
            messages += fake.messages(channel, include_deleted=True)
    for inter in fake.interactions.values():
        messages += [m for m in (inter.original, *inter.followups) if m is not None]
    return [m for m in messages if m.author_id == fake.bot_user_id]


async def test_nothing_the_bot_posts_pings_everyone_or_roles(
    video_bot: Any, fake_discord: FakeDiscord
) -> None:
    w = fake_discord.world
    assert w is not None
    role = fake_discord.add_role(w.guild_id, "everyone-ish")
    other = fake_discord.add_member(w.guild_id, username="bystander").id
    loud = LOUD.format(role=role, other=other)
    small = {"duration": 4, "resolution": "512x512"}
    async with video_bot() as v:
        admin = w.admin_id
        # The mod log goes to #videos; admins write loud reasons and terms.
        await v.private(
            await v.command(
                {"channel": w.other_channel_id}, name="videoadmin logchannel", user_id=admin
            )
        )
        await v.private(
            await v.command(
                {"member": other, "reason": loud}, name="videoadmin block", user_id=admin
            )
        )
        await v.private(
            await v.command({"term": "@here"}, name="videoadmin blockword add", user_id=admin)
        )
        await v.private(
            await v.command({"prompt": loud}, name="videoadmin blockword test", user_id=admin)
        )
        # Members: a delivered clip, a refused prompt, a failed job (ending pings the owner).
        delivered = await v.command({"prompt": loud.replace("@here", ""), **small})
        await v.result()
        await v.private(await v.command({"prompt": f"{loud} again", **small}))  # blocked term
        v.bot.providers["simulator"].fail_prompts_containing = "volcano"  # type: ignore[attr-defined]
        failing = await v.command({"prompt": f"volcano {loud.replace('@here', '')}", **small})
        await v.private(failing)
        await v.wait_job(2, "failed")
        await fake_discord.wait_for(
            lambda: any("failed" in m.content for m in failing.followups), 10, "the ending"
        )
        jobs = await v.command(name="jobs")
        await jobs.wait_for_original(lambda m: bool(m.embeds))
        shown = await v.command({}, name="videoadmin log show", user_id=admin)
        await shown.wait_for_original(lambda m: bool(m.embeds), 10)
        await fake_discord.wait_for(
            lambda: len(fake_discord.messages(w.other_channel_id)) >= 3, 10, "mod-log posts"
        )
        assert delivered.acknowledged
    messages = bot_messages(fake_discord)
    texts = " ".join(m.content + str(m.embeds) for m in messages)
    assert "everyone" in texts and str(role) in texts  # the loud text was echoed somewhere
    for message in messages:
        assert not message.pinged_everyone, message.content[:200]
        assert not message.pinged_role_ids, message.content[:200]
        assert message.pinged_user_ids <= {w.user_id}, message.content[:200]
