"""/videoadmin callbacks driven with fake interactions: run-time permission checks,
answers, and the changes they make."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from discord import app_commands

from bot import moderation
from bot.db import Database, utcnow
from bot.moderation.audit import listen
from cogs.admin.cog import AdminCog
from cogs.ui.checks import MANAGE_GUILD_REFUSAL
from cogs.ui.pages import Pager

GUILD = 111
BOT_ID = 900
ADMIN = 7
MEMBER = 42


@dataclass
class Sent:
    content: str | None
    kwargs: dict[str, Any]


class FakeResponse:
    def __init__(self) -> None:
        self.done = False
        self.deferred: dict[str, Any] | None = None
        self.messages: list[Sent] = []
        self.edits: list[dict[str, Any]] = []

    def is_done(self) -> bool:
        return self.done

    async def defer(self, *, ephemeral: bool = False, thinking: bool = False) -> None:
        assert not self.done, "interaction acknowledged twice"
        self.done = True
        self.deferred = {"ephemeral": ephemeral, "thinking": thinking}

    async def send_message(self, content: str | None = None, **kwargs: Any) -> None:
        assert not self.done, "interaction acknowledged twice"
        self.done = True
        self.messages.append(Sent(content, kwargs))

    async def edit_message(self, **kwargs: Any) -> None:
        self.done = True
        self.edits.append(kwargs)


class FakeWebhookMessage:
    def __init__(self) -> None:
        self.edits: list[dict[str, Any]] = []

    async def edit(self, **kwargs: Any) -> None:
        self.edits.append(kwargs)


class FakeFollowup:
    def __init__(self) -> None:
        self.messages: list[Sent] = []

    async def send(self, content: str | None = None, **kwargs: Any) -> FakeWebhookMessage:
        self.messages.append(Sent(content, kwargs))
        return FakeWebhookMessage()


@dataclass
class FakeInteraction:
    user: Any
    guild: Any
    client: Any
    response: FakeResponse = field(default_factory=FakeResponse)
    followup: FakeFollowup = field(default_factory=FakeFollowup)

    @property
    def guild_id(self) -> int | None:
        return None if self.guild is None else self.guild.id

    def replies(self) -> list[Sent]:
        return self.response.messages + self.followup.messages

    def text(self) -> str:
        return "\n".join(m.content or "" for m in self.replies())


class FakeChannel:
    def __init__(self, channel_id: int, **perms: bool) -> None:
        self.id = channel_id
        self.mention = f"<#{channel_id}>"
        self.perms = discord.Permissions(**perms)

    def permissions_for(self, member: Any) -> discord.Permissions:
        assert member.id == BOT_ID  # checks the bot's permissions, not the admin's
        return self.perms


class FakeModLog:
    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


def person(user_id: int, **perms: bool) -> SimpleNamespace:
    return SimpleNamespace(
        id=user_id,
        mention=f"<@{user_id}>",
        bot=False,
        display_name=f"user{user_id}",
        guild_permissions=discord.Permissions(**perms),
    )


@pytest.fixture
def bot(db: Database) -> SimpleNamespace:
    modlog = FakeModLog()
    listen(db, modlog.wake)  # as the real ModLog does when started
    return SimpleNamespace(db=db, modlog=modlog, user=SimpleNamespace(id=BOT_ID))


@pytest.fixture
def cog(bot) -> AdminCog:
    return AdminCog(bot)


def guild(**extra: Any) -> SimpleNamespace:
    values = {"id": GUILD, "me": SimpleNamespace(id=BOT_ID), "filesize_limit": 10 * 1024 * 1024}
    values.update(extra)
    return SimpleNamespace(**values)


def interaction(bot, user: Any | None = None, **kw: Any) -> FakeInteraction:
    return FakeInteraction(
        user=user or person(ADMIN, manage_guild=True), guild=kw.pop("guild", guild()), client=bot
    )


async def call(
    command: Any, cog: AdminCog, itx: FakeInteraction, *args: Any, **kwargs: Any
) -> None:
    await command.callback(cog, itx, *args, **kwargs)


def own_commands(cog: AdminCog) -> list[app_commands.Command[Any, ..., Any]]:
    return [
        c
        for c in cog.walk_app_commands()
        if isinstance(c, app_commands.Command) and c.binding is cog
    ]


SAMPLE_ARGS = {
    "member": person(MEMBER),
    "term": "nsfw",
    "days": 30,
    "prompt": "a prompt",
    "channel": FakeChannel(555, view_channel=True, send_messages=True, embed_links=True),
}


async def audit_count(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM audit_log"))


# ----- permissions -----------------------------------------------------------------------


def test_group_is_hidden_from_non_admins_and_guild_only(cog: AdminCog) -> None:
    group = cog.videoadmin
    assert group.default_permissions == discord.Permissions(manage_guild=True)
    assert group.guild_only
    names = {c.qualified_name for c in cog.walk_app_commands()}
    assert {
        "videoadmin logchannel",
        "videoadmin block",
        "videoadmin unblock",
        "videoadmin blockword add",
        "videoadmin blockword remove",
        "videoadmin blockword list",
        "videoadmin log show",
        "videoadmin log export",
        "videoadmin retention",
        "videoadmin allowance",
    } <= names


@pytest.mark.parametrize(
    "user",
    [
        person(MEMBER),  # no permissions
        person(MEMBER, manage_messages=True, kick_members=True, ban_members=True),
        SimpleNamespace(id=MEMBER, mention="<@42>", bot=False),  # a bare User (no perms)
    ],
)
async def test_every_callback_checks_manage_server_at_run_time(bot, cog, db, user) -> None:
    commands_ = own_commands(cog)
    assert len(commands_) >= 10
    for command in commands_:
        itx = interaction(bot, user)
        args = {p.name: SAMPLE_ARGS[p.name] for p in command.parameters if p.required}
        await command.callback(cog, itx, **args)
        assert itx.text() == MANAGE_GUILD_REFUSAL, command.qualified_name
        assert all(m.kwargs.get("ephemeral") for m in itx.replies())
    # Nothing changed.
    assert await audit_count(db) == 0
    assert await db.fetchval("SELECT COUNT(*) FROM blocked_members") == 0
    assert await db.fetchval("SELECT COUNT(*) FROM blocked_terms") == 0
    assert await db.fetchval("SELECT COUNT(*) FROM guild_settings") == 0
    assert bot.modlog.wakes == 0


async def test_administrators_pass_the_check(bot, cog, db) -> None:
    itx = interaction(bot, person(ADMIN, administrator=True))
    await call(cog.retention, cog, itx, 30)
    assert "kept for 30 days" in itx.text()
    assert itx.response.deferred == {"ephemeral": True, "thinking": True}


async def test_outside_a_guild_nothing_runs(bot, cog, db) -> None:
    itx = interaction(bot, guild=None)
    await call(cog.retention, cog, itx, 30)
    assert itx.text() == MANAGE_GUILD_REFUSAL
    assert await audit_count(db) == 0


# ----- logchannel ------------------------------------------------------------------------


async def test_logchannel_says_which_permissions_are_missing(bot, cog, db) -> None:
    itx = interaction(bot)
    channel = FakeChannel(555, view_channel=True, send_messages=False, embed_links=False)
    await call(cog.logchannel, cog, itx, channel)
    assert "missing **Send Messages, Embed Links**" in itx.text()
    assert await audit_count(db) == 0


async def test_logchannel_sets_audits_and_turns_off(bot, cog, db) -> None:
    channel = FakeChannel(555, view_channel=True, send_messages=True, embed_links=True)
    itx = interaction(bot)
    await call(cog.logchannel, cog, itx, channel)
    assert "Mod-log channel set to <#555>" in itx.text()
    assert itx.followup.messages[0].kwargs["allowed_mentions"].to_dict() == {"parse": []}
    assert await db.fetchval("SELECT log_channel_id FROM guild_settings") == 555
    assert bot.modlog.wakes == 1
    # The change itself is queued for the new channel.
    assert await db.fetchval("SELECT COUNT(*) FROM modlog_outbox") == 1

    itx = interaction(bot)
    await call(cog.logchannel, cog, itx, None)
    assert "off" in itx.text()
    assert await db.fetchval("SELECT log_channel_id FROM guild_settings") is None
    [latest, _first] = await moderation.recent_entries(db, GUILD)
    assert (latest.data["old"], latest.data["new"], latest.actor_id) == (555, None, ADMIN)


# ----- block / unblock -------------------------------------------------------------------


async def test_block_and_unblock(bot, cog, db) -> None:
    itx = interaction(bot)
    await call(cog.block, cog, itx, person(MEMBER), "too many clips", "soon")
    assert "can't read the duration" in itx.text()
    assert await moderation.check_member(db, GUILD, MEMBER, utcnow()) is None

    itx = interaction(bot)
    await call(cog.block, cog, itx, person(MEMBER), "too many clips", "2h")
    assert itx.text().startswith("<@42> can't use /video until <t:")
    assert "Reason (not shown to them): too many clips" in itx.text()
    assert await moderation.check_member(db, GUILD, MEMBER, utcnow()) is not None

    itx = interaction(bot)
    await call(cog.blocked, cog, itx)
    embed = itx.followup.messages[0].kwargs["embed"]
    assert "<@42> until <t:" in embed.description and "too many clips" in embed.description

    itx = interaction(bot)
    await call(cog.unblock, cog, itx, person(MEMBER))
    assert itx.text() == "<@42> can use /video again."
    itx = interaction(bot)
    await call(cog.unblock, cog, itx, person(MEMBER))
    assert itx.text() == "<@42> isn't blocked."
    assert await moderation.check_member(db, GUILD, MEMBER, utcnow()) is None
    assert await audit_count(db) == 2


async def test_blocking_a_bot_is_refused(bot, cog, db) -> None:
    robot = person(77)
    robot.bot = True
    itx = interaction(bot)
    await call(cog.block, cog, itx, robot, None, None)
    assert "Bots" in itx.text()
    assert await audit_count(db) == 0


# ----- blockword -------------------------------------------------------------------------


async def test_blockword_add_list_test_remove(bot, cog, db) -> None:
    itx = interaction(bot)
    await call(cog.blockword_add, cog, itx, "nsfw")
    assert itx.text().startswith("Blocked term `nsfw` (#1)")

    itx = interaction(bot)
    await call(cog.blockword_add, cog, itx, "(a+)+", True)
    assert "Repeating a group" in itx.text()

    itx = interaction(bot)
    await call(cog.blockword_add, cog, itx, r"gr[a@]phic", True)
    assert itx.text().startswith("Blocked expression `gr[a@]phic` (#2)")

    itx = interaction(bot)
    await call(cog.blockword_list, cog, itx)
    description = itx.followup.messages[0].kwargs["embed"].description
    assert "`#1` term `nsfw`" in description and "`#2` regex `gr[a@]phic`" in description

    itx = interaction(bot)
    await call(cog.blockword_test, cog, itx, "a n.s.f.w clip")
    assert itx.text() == "That prompt would be refused by blocked term #1, matching `n.s.f.w`."
    itx = interaction(bot)
    await call(cog.blockword_test, cog, itx, "a calm lake")
    assert itx.text() == "That prompt passes the blocked terms."

    admin_itx = interaction(bot)
    choices = await cog._term_autocomplete(admin_itx, "gr")
    assert [c.value for c in choices] == ["#2"]
    assert await cog._term_autocomplete(interaction(bot, person(MEMBER)), "") == []

    itx = interaction(bot)
    await call(cog.blockword_remove, cog, itx, "#2")
    assert itx.text() == "Removed blocked expression `gr[a@]phic` (#2)."
    itx = interaction(bot)
    await call(cog.blockword_remove, cog, itx, "nope")
    assert "No blocked term" in itx.text()
    assert [t.pattern for t in await moderation.list_blocked_terms(db, GUILD)] == ["nsfw"]
    assert await audit_count(db) == 3  # add, add, remove
    # Regex validation ran in the shared sandbox; stop it so no helper outlives the test.
    from bot.textmatch import default_sandbox

    default_sandbox().close()


# ----- log show / export -----------------------------------------------------------------


async def test_log_show_pages_with_buttons(bot, cog, db) -> None:
    async with db.transaction() as conn:
        for i in range(25):
            await moderation.audit(
                conn,
                guild_id=GUILD,
                kind="refusal",
                summary=f"entry {i} **bold** @everyone",
                actor_id=MEMBER if i % 2 else 5,
                target_id=MEMBER if i % 2 else 5,
                now=utcnow(),
            )
    itx = interaction(bot)
    await call(cog.log_show, cog, itx, None, 25)
    [message] = itx.followup.messages
    assert message.kwargs["ephemeral"] is True
    view = message.kwargs["view"]
    assert isinstance(view, Pager) and len(view.pages) == 3
    first = message.kwargs["embed"].description
    assert first.splitlines()[0].startswith("`#25`")  # newest first
    assert "\\*\\*bold\\*\\*" in first and "@\u200beveryone" in first  # inert
    assert view.prev_page.disabled and not view.next_page.disabled

    press = interaction(bot)
    assert await view.interaction_check(press)
    await view.next_page.callback(press)
    assert view.index == 1 and press.response.edits[-1]["embed"] is view.pages[1]
    await view.next_page.callback(interaction(bot))
    assert view.index == 2 and view.next_page.disabled and not view.prev_page.disabled
    # Someone else cannot turn the pages, and is told so privately.
    stranger = interaction(bot, person(MEMBER))
    assert not await view.interaction_check(stranger)
    [refusal] = stranger.response.messages
    assert refusal.kwargs["ephemeral"] is True and "Only the admin" in refusal.content
    view.stop()

    itx = interaction(bot)
    await call(cog.log_show, cog, itx, person(MEMBER), 50)
    member_view = itx.followup.messages[0].kwargs["view"]
    lines = [line for page in member_view.pages for line in page.description.splitlines()]
    assert len(lines) == 12 and all("member <@42>" in line for line in lines)
    member_view.stop()

    itx = interaction(bot)
    await call(cog.log_show, cog, itx, None, 5)
    assert "view" not in itx.followup.messages[0].kwargs  # one page: no buttons
    assert len(itx.followup.messages[0].kwargs["embed"].description.splitlines()) == 5


async def test_log_export_attaches_a_csv_that_round_trips(bot, cog, db) -> None:
    async with db.transaction() as conn:
        ids = [
            await moderation.audit(
                conn,
                guild_id=GUILD,
                kind="generation",
                summary=f"job {i}",
                job_id=i,
                data={"prompt": f"=cmd|' /C calc'!A{i}, \"quoted\"\nline"},
                now=utcnow(),
            )
            for i in range(3)
        ]
    itx = interaction(bot)
    await call(cog.log_export, cog, itx, None, None)
    [message] = itx.followup.messages
    file = message.kwargs["file"]
    assert isinstance(file, discord.File) and file.filename.endswith(".csv")
    rows = moderation.read_csv_export(file.fp.read())
    assert [int(r["id"]) for r in rows] == ids
    assert rows[2]["data_json"] == '{"prompt": "=cmd|\' /C calc\'!A2, \\"quoted\\"\\nline"}'
    assert "3 log entries" in (message.content or "")
    # The export itself is audited.
    latest = (await moderation.recent_entries(db, GUILD, limit=1))[0]
    assert latest.data["action"] == "export" and latest.actor_id == ADMIN

    itx = interaction(bot)
    await call(cog.log_export, cog, itx, "last week", None)
    assert "YYYY-MM-DD" in itx.text()

    itx = interaction(bot, guild=guild(filesize_limit=100))
    await call(cog.log_export, cog, itx, None, None)
    assert "upload limit" in itx.text()


async def test_retention_command(bot, cog, db) -> None:
    itx = interaction(bot)
    await call(cog.retention, cog, itx, 14)
    assert itx.text() == "Log entries are now kept for 14 days (was 90)."
    assert await db.fetchval("SELECT retention_days FROM guild_settings") == 14
