"""/quota, /jobs and /videoadmin allowance …: the command callbacks driven with a recording
fake interaction against a real database (the gateway/HTTP end-to-end path is the e2e suite's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from discord import app_commands

from bot import quota
from bot.db import to_db_time, utcnow
from bot.jobs.service import VideoService
from bot.moderation.audit import listen
from bot.store import guilds as guild_store
from cogs import account
from cogs.account import AccountCog
from cogs.admin import allowance

G = 900
ADMIN, MEMBER, OTHER = 1, 2, 3

# 0002 exists: migration numbers must not have gaps.


@dataclass
class Sent:
    content: str | None
    embed: discord.Embed | None
    ephemeral: bool
    allowed_mentions: discord.AllowedMentions | None


@dataclass
class FakeResponse:
    deferred: dict[str, Any] | None = None
    sent: list[Sent] = field(default_factory=list)

    def is_done(self) -> bool:
        return self.deferred is not None or bool(self.sent)

    async def defer(self, *, ephemeral: bool = False, thinking: bool = False) -> None:
        assert not self.is_done(), "acknowledged twice"
        self.deferred = {"ephemeral": ephemeral, "thinking": thinking}

    async def send_message(
        self, content=None, *, embed=None, ephemeral=False, allowed_mentions=None
    ):
        assert not self.is_done(), "acknowledged twice"
        self.sent.append(Sent(content, embed, ephemeral, allowed_mentions))


@dataclass
class FakeFollowup:
    sent: list[Sent] = field(default_factory=list)

    async def send(self, content=None, *, embed=None, ephemeral=False, allowed_mentions=None):
        self.sent.append(Sent(content, embed, ephemeral, allowed_mentions))


class FakeInteraction:
    def __init__(self, client: Any, user: Any, guild_id: int | None = G) -> None:
        self.client = client
        self.user = user
        self.guild_id = guild_id
        self.response = FakeResponse()
        self.followup = FakeFollowup()

    @property
    def answer(self) -> Sent:
        """The one visible answer; every answer here must be ephemeral and ping nobody."""
        assert self.response.deferred == {"ephemeral": True, "thinking": True}
        assert len(self.followup.sent) == 1, self.followup.sent
        sent = self.followup.sent[0]
        assert sent.ephemeral
        assert sent.allowed_mentions is not None
        assert sent.allowed_mentions.to_dict()["parse"] == []
        return sent


def person(user_id: int, *, roles=(), manage_guild=False, name="Ann"):
    return SimpleNamespace(
        id=user_id,
        roles=[SimpleNamespace(id=r) for r in roles],
        guild_permissions=discord.Permissions(manage_guild=manage_guild),
        display_name=name,
        mention=f"<@{user_id}>",
    )


def role(role_id: int):
    return SimpleNamespace(id=role_id, mention=f"<@&{role_id}>")


@pytest.fixture
def bot(db, tmp_path):
    # The real service over the test database; /jobs reads through it (no tracker needed).
    service = VideoService(
        db,
        {},
        None,  # type: ignore[arg-type]
        data_dir=tmp_path,
        default_provider="simulator",
        default_quota_seconds=60,
        max_active_per_member=2,
    )
    return SimpleNamespace(
        db=db,
        service=service,
        settings=SimpleNamespace(quota_seconds_per_day=60, max_active_jobs_per_member=2),
    )


async def add_job(
    db,
    user_id: int,
    *,
    prompt: str,
    status: str = "pending",
    seconds=5.0,
    cost=0.1,
    at: datetime | None = None,
    failure: str | None = None,
) -> int:
    at = at or utcnow()
    async with db.transaction() as conn:
        job_id = await conn.fetchval(
            "INSERT INTO jobs (guild_id, user_id, provider, mode, prompt, params_json, status,"
            " seconds, cost_usd, failure_reason, created_at, updated_at)"
            " VALUES (?, ?, 'simulator', 'text-to-video', ?, '{}', ?, ?, ?, ?, ?, ?) RETURNING id",
            (G, user_id, prompt, status, seconds, cost, failure, to_db_time(at), to_db_time(at)),
        )
        return int(job_id)


pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)


async def reserve(db, user_id: int, seconds: float, *, roles=()) -> int:
    job_id = await add_job(db, user_id, prompt="p", seconds=seconds)
    async with db.transaction() as conn:
        await quota.reserve(
            conn,
            guild_id=G,
            user_id=user_id,
            job_id=job_id,
            seconds=seconds,
            width=1280,
            height=720,
            cost_usd=0.1,
            role_ids=roles,
            now=utcnow(),
            default_seconds=60,
        )
    return job_id


def fields(embed: discord.Embed) -> dict[str, str]:
    return {f.name: f.value for f in embed.fields}


# ----- /quota ----------------------------------------------------------------------------


async def test_quota_shows_own_allowance(bot, db):
    await reserve(bot.db, MEMBER, 15)
    inter = FakeInteraction(bot, person(MEMBER))
    await AccountCog.quota_command.callback(AccountCog(bot), inter, None)
    embed = inter.answer.embed
    got = fields(embed)
    assert got["Allowance"] == "60 s per 24 h (bot default)"
    assert (got["Used"], got["Reserved"], got["Left"]) == ("0 s", "15 s", "45 s")
    assert got["Active jobs"] == "1 of 2"
    assert got["Next refill"].startswith("15 s at <t:")
    assert "Ann" in embed.title


async def test_quota_uses_the_members_roles(bot, db):
    await guild_store.set_role_allowance(db, G, 77, None, now=utcnow())
    inter = FakeInteraction(bot, person(MEMBER, roles=(G, 77)))
    await AccountCog.quota_command.callback(AccountCog(bot), inter, None)
    got = fields(inter.answer.embed)
    assert got["Allowance"] == "unlimited (role <@&77>)"
    assert got["Left"] == "unlimited"


async def test_quota_of_someone_else_needs_manage_server(bot, db):
    inter = FakeInteraction(bot, person(MEMBER))
    await AccountCog.quota_command.callback(AccountCog(bot), inter, person(OTHER, name="Bob"))
    answer = inter.answer
    assert answer.embed is None
    assert "Manage Server" in answer.content


async def test_admin_can_view_someone_else(bot, db):
    await guild_store.set_role_allowance(db, G, 55, 100, now=utcnow())
    await reserve(bot.db, OTHER, 10, roles=(55,))
    inter = FakeInteraction(bot, person(ADMIN, manage_guild=True))
    await AccountCog.quota_command.callback(
        AccountCog(bot), inter, person(OTHER, roles=(55,), name="Bob")
    )
    embed = inter.answer.embed
    assert "Bob" in embed.title
    assert fields(embed)["Left"] == "90 s"


# ----- /jobs -----------------------------------------------------------------------------


async def test_jobs_lists_recent_jobs_newest_first_with_prompts_made_inert(bot, db):
    t = utcnow() - timedelta(hours=1)
    await add_job(db, MEMBER, prompt="a red fox", status="delivered", at=t)
    await add_job(
        db, MEMBER, prompt="@everyone *look*", status="failed", at=t, failure="NSFW filter"
    )
    await add_job(db, OTHER, prompt="not mine", at=t)
    inter = FakeInteraction(bot, person(MEMBER))
    await AccountCog.jobs_command.callback(AccountCog(bot), inter)
    text = inter.answer.embed.description
    assert "not mine" not in text
    assert text.index("failed") < text.index("delivered")
    assert "a red fox" in text
    assert "@everyone" not in text  # escaped, cannot ping
    assert "\\*look\\*" in text
    assert "NSFW filter" in text


async def test_jobs_when_there_are_none(bot, db):
    inter = FakeInteraction(bot, person(MEMBER))
    await AccountCog.jobs_command.callback(AccountCog(bot), inter)
    assert "No jobs yet" in inter.answer.embed.description


# ----- /videoadmin allowance … -----------------------------------------------------------


async def audit_rows(db) -> list[Any]:
    return await db.fetchall("SELECT * FROM audit_log ORDER BY id")


async def run(cmd: app_commands.Command, bot, user, **options) -> FakeInteraction:
    inter = FakeInteraction(bot, user)
    await cmd.callback(inter, **options)
    return inter


async def test_allowance_commands_refuse_without_manage_server(bot, db):
    inter = await run(
        allowance.role, bot, person(MEMBER), role=role(5), seconds=30, unlimited=False
    )
    assert "Manage Server" in inter.answer.content
    assert await guild_store.list_role_allowances(db, G) == []
    assert await audit_rows(db) == []


async def test_role_allowance_set_and_audited_with_old_and_new(bot, db):
    admin = person(ADMIN, manage_guild=True)
    inter = await run(allowance.role, bot, admin, role=role(5), seconds=30, unlimited=False)
    assert inter.answer.content == "Done — allowance of role <@&5>: not set → 30 s."
    inter = await run(allowance.role, bot, admin, role=role(5), seconds=None, unlimited=True)
    assert inter.answer.content == "Done — allowance of role <@&5>: 30 s → unlimited."
    [_first, second] = await audit_rows(db)
    assert (second["kind"], second["actor_id"], second["guild_id"]) == ("admin", ADMIN, G)
    assert "30 s → unlimited" in second["summary"]
    assert json.loads(second["data_json"])["old"] == {"seconds": 30}
    assert (await guild_store.get_role_allowance(db, G, 5)).seconds is None


async def test_member_override_options(bot, db):
    admin = person(ADMIN, manage_guild=True)
    both = await run(allowance.member, bot, admin, member=person(OTHER), seconds=5, unlimited=True)
    assert "not both" in both.answer.content
    neither = await run(
        allowance.member, bot, admin, member=person(OTHER), seconds=None, unlimited=False
    )
    assert "Give `seconds`" in neither.answer.content
    zero = await run(allowance.member, bot, admin, member=person(OTHER), seconds=0, unlimited=False)
    assert zero.answer.content == f"Done — allowance of <@{OTHER}>: not set → none (0 s)."
    row = (await audit_rows(db))[-1]
    assert (row["actor_id"], row["target_id"]) == (ADMIN, OTHER)
    cleared = await run(allowance.clear_member, bot, admin, member=person(OTHER))
    assert "none (0 s) → not set" in cleared.answer.content
    again = await run(allowance.clear_member, bot, admin, member=person(OTHER))
    assert "has no override" in again.answer.content
    assert len(await audit_rows(db)) == 2  # the no-op was not audited


async def test_guild_settings_commands(bot, db):
    wakes = []
    bot.modlog = SimpleNamespace(wake=lambda: wakes.append(1))
    listen(db, bot.modlog.wake)  # as the real ModLog does when started
    admin = person(ADMIN, manage_guild=True)
    r = await run(allowance.default, bot, admin, seconds=120, window_hours=12)
    assert r.answer.content == "Done — server default allowance: 60 s per 24 h → 120 s per 12 h."
    r = await run(allowance.concurrency, bot, admin, jobs=4)
    assert r.answer.content == "Done — concurrent jobs per member: bot default (2) → 4."
    r = await run(allowance.cooldown, bot, admin, seconds=30)
    assert r.answer.content == "Done — cooldown between clips: none → 30 s."
    r = await run(allowance.budget, bot, admin, usd=25.5)
    assert r.answer.content == "Done — monthly budget: none → $25.50."
    r = await run(allowance.budget, bot, admin, usd=0.0)
    assert r.answer.content == "Done — monthly budget: $25.50 → none."
    r = await run(allowance.hd_weight, bot, admin, weight=3.0)
    assert r.answer.content == "Done — HD weight: 2× → 3×."
    s = await guild_store.get_guild_settings(db, G)
    assert (s.quota_seconds, s.quota_window_seconds, s.max_concurrent_jobs) == (120, 43_200, 4)
    assert (s.cooldown_seconds, s.monthly_budget_usd, s.hd_weight) == (30, None, 3.0)
    rows = await audit_rows(db)
    assert len(rows) == len(wakes) == 6  # each change is audited and posted at once
    assert all(r["actor_id"] == ADMIN and r["kind"] == "admin" for r in rows)


async def test_reset_gives_the_allowance_back(bot, db):
    await reserve(db, OTHER, 60)
    admin = person(ADMIN, manage_guild=True)
    r = await run(allowance.reset, bot, admin, member=person(OTHER))
    assert r.answer.content == f"Done — allowance reset for <@{OTHER}>: 60 s used → 0 s."
    usage = await quota.usage(
        db, guild_id=G, user_id=OTHER, role_ids=(), now=utcnow(), default_seconds=60
    )
    assert usage.left == 60
    assert (await audit_rows(db))[-1]["target_id"] == OTHER


async def test_show_lists_everything(bot, db):
    admin = person(ADMIN, manage_guild=True)
    await guild_store.set_role_allowance(db, G, 5, 90, now=utcnow())
    await guild_store.set_member_allowance(db, G, OTHER, None, now=utcnow())
    await guild_store.update_guild_settings(db, G, monthly_budget_usd=10)
    await reserve(db, MEMBER, 5)
    r = await run(allowance.show, bot, admin)
    got = fields(r.answer.embed)
    assert got["Server default"] == "60 s per 24 h (bot default)"
    assert got["Roles (most generous applies)"] == "<@&5>: 90 s"
    assert got["Member overrides"] == f"<@{OTHER}>: unlimited"
    assert got["Monthly budget"] == "$10.00 ($0.10 spent this month)"
    assert got["Concurrent jobs per member"] == "2 (bot default)"


def test_long_lists_stay_within_embed_limits():
    lines = [f"<@{10**17 + i}>: 1,000 s" for i in range(200)]
    text = allowance._lines_field(lines, "none")
    assert len(text) <= 1024
    assert text.endswith("more")


# ----- command shapes --------------------------------------------------------------------


def test_allowance_group_shape():
    client = discord.Client(intents=discord.Intents.none())
    tree = app_commands.CommandTree(client)
    payload = allowance.allowance_group.to_dict(tree)
    subs = {o["name"]: o for o in payload["options"]}
    assert set(subs) == {
        "show",
        "default",
        "role",
        "member",
        "clear-member",
        "clear-role",
        "concurrency",
        "cooldown",
        "budget",
        "hd-weight",
        "reset",
    }
    role_opts = {o["name"]: o for o in subs["role"]["options"]}
    assert role_opts["role"]["required"] and role_opts["role"]["type"] == 8
    assert not role_opts["seconds"]["required"] and role_opts["seconds"]["min_value"] == 0
    assert role_opts["unlimited"]["type"] == 5
    assert subs["member"]["options"][0]["type"] == 6
    assert subs["hd-weight"]["options"][0]["min_value"] == 1
    # Not registered on its own: the admin cog nests it under /videoadmin.
    parent = allowance.allowance_group.parent
    assert parent is None or parent.name == "videoadmin"


def test_account_commands_are_guild_only():
    cog = AccountCog(SimpleNamespace())
    names = {c.name: c for c in cog.get_app_commands()}
    assert set(names) == {"quota", "jobs"}
    assert all(c.guild_only for c in names.values())
    assert account.role_ids_of(person(1, roles=(4, 5))) == [4, 5]


async def test_show_flags_provider_cost_over_the_quotes(bot, db):
    """Issue 13 item 9: what providers billed above the quotes is shown, not charged."""
    admin = person(ADMIN, manage_guild=True)
    await guild_store.update_guild_settings(db, G, monthly_budget_usd=10)
    job_id = await reserve(db, MEMBER, 5)
    async with db.transaction() as conn:
        await quota.settle(conn, job_id, seconds=5, cost_usd=0.35, now=utcnow())
    r = await run(allowance.show, bot, admin)
    got = fields(r.answer.embed)
    assert got["Monthly budget"] == "$10.00 ($0.10 spent this month)"
    assert got["Billed above quotes"] == (
        "$0.25 this month (not charged: a clip never costs more than its quote)"
    )
