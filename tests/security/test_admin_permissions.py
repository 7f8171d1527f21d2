"""Every `/videoadmin` path checks Manage Server at run time, not only through
`default_member_permissions` (which server admins can override in Integrations settings).

The command tree of the real bot is walked: every command under `/videoadmin`, nested groups
included, is invoked through the fake Discord by a member without Manage Server (a plain
member, and a moderator with Manage Messages / Kick / Moderate Members), with every option
filled in. Each gets the ephemeral refusal and changes nothing in the database.
`/quota member:` for someone else is refused the same way.

The other half of "who may press what" is covered where the features live:
Cancel/Delete by another member (tests/e2e/test_video_buttons.py), the admin log pager and
the `blockword remove` autocomplete for non-admins (tests/unit/test_admin_cog.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from discord import AppCommandOptionType, app_commands

from bot.client import VideoBot
from cogs.ui.checks import MANAGE_GUILD_REFUSAL
from tests.fakes.discord_server import FakeDiscord, FakeFile
from tests.fakes.payloads import Permissions
from tests.fuzz.images import corpus

MODERATOR = (
    Permissions.EVERYONE_DEFAULT
    | Permissions.MANAGE_MESSAGES
    | Permissions.KICK_MEMBERS
    | Permissions.MODERATE_MEMBERS
    | Permissions.VIEW_AUDIT_LOG
)


def admin_commands(bot: VideoBot) -> list[app_commands.Command[Any, ..., Any]]:
    group = bot.tree.get_command("videoadmin")
    assert isinstance(group, app_commands.Group)
    return [c for c in group.walk_commands() if isinstance(c, app_commands.Command)]


def option_values(
    command: app_commands.Command[Any, ..., Any], fake: FakeDiscord, target: int, role: int
) -> dict[str, Any]:
    """A value for every option of `command` that Discord's UI would let through."""
    world = fake.world
    assert world is not None
    values: dict[str, Any] = {}
    for param in command.parameters:
        if param.choices:
            values[param.name] = param.choices[0].value
        elif param.type is AppCommandOptionType.string:
            shortest = int(param.min_value or 1)  # Range[str, a, b]: lengths
            values[param.name] = "7d" if "duration" in param.name else "x" * shortest
        elif param.type in (AppCommandOptionType.integer, AppCommandOptionType.number):
            values[param.name] = int(param.min_value) if param.min_value is not None else 1
        elif param.type is AppCommandOptionType.boolean:
            values[param.name] = True
        elif param.type is AppCommandOptionType.user:
            values[param.name] = target
        elif param.type is AppCommandOptionType.role:
            values[param.name] = role
        elif param.type is AppCommandOptionType.channel:
            values[param.name] = world.channel_id
        elif param.type is AppCommandOptionType.attachment:
            values[param.name] = FakeFile("x.png", corpus()["png-RGB"], "image/png")
        else:
            raise AssertionError(f"no test value for {command.qualified_name} {param.name}")
    return values


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}


@pytest.mark.parametrize("who", ["member", "moderator"])
async def test_every_admin_command_refuses_without_manage_server(
    video_bot: Any, fake_discord: FakeDiscord, tmp_path: Path, who: str
) -> None:
    world = fake_discord.world
    assert world is not None
    role = fake_discord.add_role(world.guild_id, "fans")
    target = fake_discord.add_member(world.guild_id, username="target").id
    caller = (
        world.user_id
        if who == "member"
        else fake_discord.add_member(world.guild_id, username="mod", permissions=MODERATOR).id
    )
    db_path = tmp_path / "data" / "bot.db"
    async with video_bot() as v:
        commands = admin_commands(v.bot)
        names = {c.qualified_name for c in commands}
        # The walk reaches the nested groups (allowance, blockword, log) and the top level.
        assert {"videoadmin block", "videoadmin allowance default"} <= names
        assert {"videoadmin blockword add", "videoadmin log export"} <= names
        assert len(names) >= 20, sorted(names)
        # Hidden from members by default (Manage Server = 1 << 5) ...
        synced = {c["name"]: c for c in fake_discord.commands()}
        assert int(synced["videoadmin"]["default_member_permissions"]) == Permissions.MANAGE_GUILD
        # ... and refused at run time when an admin has shown it to everyone.
        before = snapshot(db_path)
        for command in commands:
            options = option_values(command, fake_discord, target, role)
            inter = await v.command(options, name=command.qualified_name, user_id=caller)
            answer = await v.private(inter)
            assert MANAGE_GUILD_REFUSAL in answer.content, (command.qualified_name, answer.content)
            assert not [m for m in inter.followups if not m.ephemeral], command.qualified_name
        assert snapshot(db_path) == before, "a refused admin command changed the database"


async def test_quota_of_another_member_needs_manage_server(
    video_bot: Any, fake_discord: FakeDiscord
) -> None:
    world = fake_discord.world
    assert world is not None
    bob = fake_discord.add_member(world.guild_id, username="bob").id
    async with video_bot() as v:
        inter = await v.command({"member": bob}, name="quota")
        answer = await v.private(inter)
        assert "Manage Server" in answer.content and not answer.embeds
        own = await v.command({"member": world.user_id}, name="quota")
        assert (await own.wait_for_original(lambda m: bool(m.embeds))).ephemeral
        admin = await v.command({"member": bob}, name="quota", user_id=world.admin_id)
        assert (await admin.wait_for_original(lambda m: bool(m.embeds))).ephemeral
