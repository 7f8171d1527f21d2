"""The fake Discord proven with the real, unmodified discord.py client.

A small `commands.Bot` points at FakeDiscord through `bot.discord_api` (what
DISCORD_API_BASE_URL does in production), logs in, connects to the gateway, syncs its
commands and answers slash commands and a button, while the fake records everything.
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import time
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot.discord_api import (
    DISCORD_API_BASE,
    DISCORD_GATEWAY,
    apply_api_base,
    attachment_url_allowed,
    current_api_base,
    prepare_gateway,
)
from tests.fakes.discord_server import FakeDiscord, FakeFile, running_bot
from tests.fakes.payloads import CallbackType, Permissions


class AgainView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)

    @discord.ui.button(label="Again", custom_id="ping:again")
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content="pressed again", view=None)


class PingBot(commands.Bot):
    """What a real bot does against DISCORD_API_BASE_URL, in miniature."""

    def __init__(
        self, api_base: str, *, sync_guild: int | None = None, members: bool = False
    ) -> None:
        intents = discord.Intents.default()
        intents.members = members
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=0.05,
        )
        apply_api_base(api_base)
        self.sync_guild = sync_guild
        self.errors: list[BaseException] = []
        self.seen: dict[int, discord.Interaction] = {}
        self.tree.on_error = self._on_tree_error  # type: ignore[method-assign]
        self.tree.add_command(ping)
        self.tree.add_command(slow)
        self.tree.add_command(quiet)
        self.tree.add_command(files)
        self.tree.add_command(admin)

    async def setup_hook(self) -> None:
        guild = discord.Object(self.sync_guild) if self.sync_guild else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)

    async def connect(self, *, reconnect: bool = True) -> None:
        await prepare_gateway(self)
        await super().connect(reconnect=reconnect)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py sleeps 5 s before every re-IDENTIFY (not the first one); the fake has no
        # identify rate limit, so tests skip the wait.
        return None

    async def _on_tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        self.errors.append(error)


@app_commands.command(name="ping", description="Answer, upload a file and post in the channel")
@app_commands.describe(text="what to echo", file="a file to send back")
async def ping(
    interaction: discord.Interaction, text: str = "pong", file: discord.Attachment | None = None
) -> None:
    await interaction.response.defer(thinking=True)
    client = interaction.client
    assert isinstance(client, PingBot)
    client.seen[interaction.id] = interaction
    data = await file.read() if file is not None else text.encode()
    name = f"echo-{file.filename}" if file is not None else "echo.txt"
    await interaction.edit_original_response(content=f"pong: {text}")
    await interaction.followup.send("here is your file", file=discord.File(io.BytesIO(data), name))
    assert isinstance(interaction.channel, discord.TextChannel)
    await interaction.channel.send(
        f"{interaction.user.mention} done",
        allowed_mentions=discord.AllowedMentions(users=[interaction.user]),
        view=AgainView(),
    )


@app_commands.command(name="quiet", description="Defers publicly, then tries to whisper")
async def quiet(interaction: discord.Interaction) -> None:
    await interaction.response.defer(thinking=True)
    await interaction.followup.send("secret?", ephemeral=True)
    await interaction.followup.send("really secret", ephemeral=True)


@app_commands.command(name="files", description="Answers with a file, then swaps it")
async def files(interaction: discord.Interaction) -> None:
    client = interaction.client
    assert isinstance(client, PingBot)
    client.seen[interaction.id] = interaction
    await interaction.response.send_message("v1", file=discord.File(io.BytesIO(b"one"), "one.txt"))
    await interaction.edit_original_response(
        content="v2", attachments=[discord.File(io.BytesIO(b"two"), "two.txt")]
    )


admin = app_commands.Group(
    name="admin",
    description="Admin tools",
    default_permissions=discord.Permissions(manage_guild=True),
    guild_only=True,
)


@admin.command(name="block", description="Block a member")
@app_commands.describe(member="who", channel="where", days="how long", reason="why")
async def block(
    interaction: discord.Interaction,
    member: discord.Member,
    channel: discord.TextChannel | None = None,
    days: app_commands.Range[int, 1, 30] = 1,
    reason: str = "-",
) -> None:
    assert isinstance(interaction.user, discord.Member)
    allowed = interaction.user.guild_permissions.manage_guild
    where = channel.name if channel is not None else "everywhere"
    await interaction.response.send_message(
        f"{member.name} blocked in {where} for {days}d ({reason}); by admin: {allowed}",
        ephemeral=True,
    )


@app_commands.command(name="slow", description="Acknowledges too late")
async def slow(interaction: discord.Interaction) -> None:
    client = interaction.client
    assert isinstance(client, PingBot)
    client.seen[interaction.id] = interaction
    await asyncio.sleep(0.3)
    await interaction.response.send_message("too late")


@pytest.fixture
async def bot(fake_discord: FakeDiscord) -> AsyncIterator[PingBot]:
    world = fake_discord.world
    assert world is not None
    client = PingBot(fake_discord.api_base, sync_guild=world.guild_id)
    async with running_bot(client, fake_discord):
        yield client
    assert client.errors == []


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ----- login, gateway, sync -----------------------------------------------------------------


async def test_login_gateway_and_command_sync(fake_discord: FakeDiscord, bot: PingBot) -> None:
    world = fake_discord.world
    assert world is not None
    assert current_api_base() == fake_discord.api_base
    routes = [r.route for r in fake_discord.requests]
    # login, application info, command sync, gateway discovery, in the client's order
    assert routes[:4] == [
        "GET /users/@me",
        "GET /oauth2/applications/@me",
        "PUT /applications/{app_id}/guilds/{guild_id}/commands",
        "GET /gateway/bot",
    ]
    assert all(r.authorized for r in fake_discord.requests)
    assert fake_discord.unknown_requests == []
    put = fake_discord.requests[2]
    assert sorted(c["name"] for c in put.json) == ["admin", "files", "ping", "quiet", "slow"]
    registered = {c["name"]: c for c in fake_discord.commands(world.guild_id)}
    assert [o["type"] for o in registered["ping"]["options"]] == [3, 11]  # string, attachment
    assert fake_discord.command_creates == {str(world.guild_id): 5}
    assert registered["admin"]["default_member_permissions"] == str(Permissions.MANAGE_GUILD)

    # gateway: one IDENTIFY on the discovered URL, READY, then GUILD_CREATE filled the cache
    assert [(c.path, c.kind) for c in fake_discord.gateway_connections] == [
        ("/gateway", "identify")
    ]
    assert fake_discord.gateway_connections[0].query["compress"] == "zlib-stream"
    guild = bot.get_guild(world.guild_id)
    assert guild is not None and guild.name == "Test Guild"
    assert {c.name for c in guild.text_channels} == {"general", "videos"}
    assert guild.me is not None and guild.me.id == fake_discord.bot_user_id
    channel = guild.get_channel(world.channel_id)
    assert isinstance(channel, discord.TextChannel)
    assert channel.permissions_for(guild.me).attach_files
    assert bot.user is not None and bot.user.id == fake_discord.bot_user_id
    assert bot.application_id == fake_discord.application_id
    assert fake_discord.heartbeats >= 1  # discord.py beats right after HELLO

    # a member writes: MESSAGE_CREATE arrives, content withheld (no message-content intent)
    said = await fake_discord.post_user_message(world.channel_id, world.user_id, "hello bot")
    await fake_discord.wait_for(
        lambda: any(m.id == said.id for m in bot.cached_messages), 5, "the bot to see it"
    )
    seen = next(m for m in bot.cached_messages if m.id == said.id)
    assert seen.author.id == world.user_id and seen.content == ""
    assert guild.get_member(world.user_id) is None  # no members intent: only the bot is sent


# ----- a slash command end to end --------------------------------------------------------------


async def test_slash_command_defer_edit_followup_upload_and_channel_message(
    fake_discord: FakeDiscord, bot: PingBot
) -> None:
    world = fake_discord.world
    assert world is not None
    picture = os.urandom(50_000)
    inter = await fake_discord.send_slash_command(
        world.guild_id,
        world.channel_id,
        world.user_id,
        "ping",
        {"text": "hello <@&1>"},
        attachments={"file": FakeFile("cat.bin", picture, "application/octet-stream")},
    )
    callback = await inter.wait_for_callback()
    assert callback.type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert callback.request.query["with_response"] == "1"
    assert callback.request.response["interaction"]["response_message_loading"] is True
    assert not callback.ephemeral

    original = await inter.wait_for_original(lambda m: not m.loading)
    assert original.content == "pong: hello <@&1>"
    assert original.pinged_role_ids == set()  # the client's AllowedMentions.none()
    followup = await inter.wait_for_followup()
    assert followup.content == "here is your file"
    [uploaded] = followup.attachments
    assert uploaded.filename == "echo-cat.bin"
    assert uploaded.data == picture  # fake CDN → bot → multipart upload → fake

    # the upload went out as multipart: payload_json + files[0]
    upload = next(r for r in fake_discord.requests if r.route == "POST /webhooks/{app_id}/{token}")
    assert [part.name for part in upload.parts] == ["payload_json", "files[0]"]
    assert upload.json["attachments"] == [{"id": 0, "filename": "echo-cat.bin"}]
    assert upload.query["wait"] == "1"
    # the bot fetched the option's attachment from the fake's own URL
    downloads = fake_discord.requests_to("GET /attachments/{attachment_id}/{filename}")
    assert [d.status for d in downloads] == [200]

    # ... and the stored upload is served back byte for byte
    async with aiohttp.ClientSession() as http, http.get(uploaded.url) as resp:
        assert resp.status == 200
        assert await resp.read() == picture

    posted = await fake_discord.wait_for_message(world.channel_id, lambda m: "done" in m.content)
    assert posted.content == f"<@{world.user_id}> done"
    assert posted.pinged_user_ids == {world.user_id}
    assert posted.custom_ids() == ["ping:again"]
    assert not posted.ephemeral and posted.interaction_id is None

    # a button press on that message: the view edits it (UPDATE_MESSAGE)
    press = await fake_discord.send_component(posted, "ping:again", world.user_id)
    assert (await press.wait_for_callback()).type == CallbackType.UPDATE_MESSAGE
    await fake_discord.wait_for(lambda: posted.content == "pressed again", 5, "the edit")
    assert posted.components == []
    assert fake_discord.unknown_requests == []


async def test_first_followup_after_a_deferral_replaces_the_thinking_message(
    fake_discord: FakeDiscord, bot: PingBot
) -> None:
    """Discord's rule (and a classic surprise): a follow-up sent straight after a public
    defer fills in the "thinking" message, so `ephemeral=True` on it has no effect."""
    world = fake_discord.world
    assert world is not None
    inter = await fake_discord.send_slash_command(
        world.guild_id, world.channel_id, world.user_id, "quiet"
    )
    original = await inter.wait_for_original(lambda m: not m.loading)
    assert original.content == "secret?"
    assert not original.ephemeral
    await fake_discord.wait_for(lambda: len(inter.followups) == 1, 5, "the second follow-up")
    assert inter.followups[0].content == "really secret"
    assert inter.followups[0].ephemeral
    assert [m.id for m in fake_discord.messages(world.channel_id, include_ephemeral=False)] == [
        original.id
    ]


async def test_subcommand_with_member_channel_and_range_options(
    fake_discord: FakeDiscord, bot: PingBot
) -> None:
    world = fake_discord.world
    assert world is not None
    inter = await fake_discord.send_slash_command(
        world.guild_id,
        world.channel_id,
        world.admin_id,
        "admin block",
        {"member": world.user_id, "channel": world.other_channel_id, "days": 3},
    )
    callback = await inter.wait_for_callback()
    assert callback.type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE and callback.ephemeral
    original = await inter.wait_for_original()
    assert original.content == "alice blocked in videos for 3d (-); by admin: True"
    assert original.ephemeral
    [group] = inter.payload["data"]["options"]
    assert (group["type"], group["name"]) == (1, "block")
    assert set(inter.payload["data"]["resolved"]) == {"users", "members", "channels"}
    # what Discord's client would refuse to send
    with pytest.raises(ValueError, match="days=31"):
        await fake_discord.send_slash_command(
            world.guild_id,
            world.channel_id,
            world.admin_id,
            "admin block",
            {"member": world.user_id, "days": 31},
        )
    with pytest.raises(ValueError, match="required option"):
        await fake_discord.send_slash_command(
            world.guild_id, world.channel_id, world.admin_id, "admin block", {"days": 2}
        )
    with pytest.raises(LookupError, match="no subcommand 'unblock'"):
        await fake_discord.send_slash_command(
            world.guild_id, world.channel_id, world.admin_id, "admin unblock"
        )


async def test_remaining_message_endpoints(fake_discord: FakeDiscord, bot: PingBot) -> None:
    """Multipart callback, PATCH @original replacing an attachment, GET/DELETE @original,
    follow-up edit/delete, and the channel/guild fetches discord.py offers."""
    world = fake_discord.world
    assert world is not None
    inter = await fake_discord.send_slash_command(
        world.guild_id, world.channel_id, world.user_id, "files"
    )
    original = await inter.wait_for_original(lambda m: m.content == "v2")
    assert [(a.filename, a.data) for a in original.attachments] == [("two.txt", b"two")]
    callback = inter.callbacks[0]
    assert callback.type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE
    assert [part.name for part in callback.request.parts] == ["payload_json", "files[0]"]
    assert callback.request.response["resource"]["message"]["attachments"][0]["filename"] == (
        "one.txt"
    )
    interaction = bot.seen[inter.id]
    assert interaction.filesize_limit == 10 * 1024 * 1024  # the guild's upload limit

    fetched = await interaction.original_response()  # GET @original
    assert fetched.id == original.id and fetched.content == "v2"
    followup = await interaction.followup.send("f1", wait=True)
    await followup.edit(content="f2")  # PATCH /webhooks/{app}/{token}/messages/{id}
    assert fake_discord.message(followup.id).content == "f2"
    assert fake_discord.message(followup.id).edited_at is not None
    await followup.delete()
    await interaction.delete_original_response()
    assert {m.id for m in fake_discord.deleted_messages} == {followup.id, original.id}
    async with aiohttp.ClientSession() as http:
        url = f"{fake_discord.api_base}/webhooks/{bot.application_id}/{inter.token}"
        async with http.get(f"{url}/messages/@original") as resp:
            assert resp.status == 404
            assert await resp.json() == {"message": "Unknown Message", "code": 10008}

    channel = await bot.fetch_channel(world.channel_id)
    assert isinstance(channel, discord.TextChannel) and channel.name == "general"
    sent = await channel.send("to be deleted")
    assert (await channel.fetch_message(sent.id)).content == "to be deleted"
    await sent.delete()
    with pytest.raises(discord.NotFound):
        await channel.fetch_message(sent.id)
    member = await channel.guild.fetch_member(world.user_id)
    assert member.name == "alice"
    history = [m.content async for m in channel.history(limit=10)]
    assert "to be deleted" not in history
    assert fake_discord.unknown_requests == []


async def test_nonce_enforce_nonce_and_answer_lost(fake_discord: FakeDiscord, bot: PingBot) -> None:
    """Discord: `nonce` is echoed on create (not in history); with `enforce_nonce` a repeat
    by the same author returns the first message and creates none; > 25 characters is a
    form error. `after_commit` faults store the message and lose the answer."""
    world = fake_discord.world
    assert world is not None
    channel = await bot.fetch_channel(world.channel_id)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("once", nonce="ltx0123456789abcdef")  # enforce_nonce=true
    again = await channel.send("once more", nonce="ltx0123456789abcdef")
    assert again.id == first.id and again.content == "once"
    assert [m.content for m in fake_discord.messages(world.channel_id)].count("once more") == 0
    sent = fake_discord.requests_to("POST /channels/{channel_id}/messages")[-1]
    assert sent.json["enforce_nonce"] is True and sent.response["nonce"] == "ltx0123456789abcdef"
    async with aiohttp.ClientSession() as http:
        url = f"{fake_discord.api_base}/channels/{world.channel_id}/messages"
        headers = {"Authorization": f"Bot {fake_discord.token}"}
        async with http.post(url, json={"content": "a", "nonce": "n1"}, headers=headers) as r1:
            assert r1.status == 200
        async with http.post(url, json={"content": "b", "nonce": "n1"}, headers=headers) as r2:
            assert r2.status == 200 and (await r2.json())["content"] == "b"  # not enforced
        async with http.post(url, json={"content": "c", "nonce": "x" * 26}, headers=headers) as r3:
            assert r3.status == 400 and (await r3.json())["code"] == 50035
        async with http.get(url, headers=headers) as listed:
            assert all("nonce" not in m for m in await listed.json())
    fake_discord.fail_next(503, method="POST", path=r"^/channels/\d+/messages$", after_commit=True)
    with pytest.raises(discord.DiscordServerError):
        await channel.send("stored anyway")
    assert [m.content for m in fake_discord.messages(world.channel_id)].count("stored anyway") == 1


# ----- gateway drops -------------------------------------------------------------------------


async def test_gateway_drop_resumes_and_replays_missed_events(
    fake_discord: FakeDiscord, bot: PingBot
) -> None:
    world = fake_discord.world
    assert world is not None
    await fake_discord.disconnect_gateway(code=4000)
    # sent while the bot is away: buffered and replayed on RESUME
    inter = await fake_discord.send_slash_command(
        world.guild_id, world.channel_id, world.user_id, "ping", {"text": "missed"}
    )
    await inter.wait_for_original(lambda m: not m.loading)
    assert fake_discord.resumes == 1
    assert fake_discord.gateway_connections[-1].path == "/gateway-resume"  # resume_gateway_url
    assert fake_discord.identifies == 1

    # an invalidated session: RESUME is refused, the client identifies again
    await fake_discord.disconnect_gateway(code=4000, resumable=False)
    await fake_discord.wait_for(lambda: fake_discord.identifies == 2, 5, "a new IDENTIFY")
    assert [c.kind for c in fake_discord.gateway_connections] == [
        "identify",
        "resume",
        "invalid-resume",
        "identify",
    ]
    await fake_discord.wait_for(lambda: bot.get_guild(world.guild_id) is not None, 5, "guild")
    inter = await fake_discord.send_slash_command(
        world.guild_id, world.channel_id, world.user_id, "ping", {"text": "after"}
    )
    original = await inter.wait_for_original(lambda m: not m.loading)
    assert original.content == "pong: after"

    # op 7 RECONNECT: the client reconnects and resumes by itself
    fake_discord.send_reconnect()
    await fake_discord.wait_for(lambda: fake_discord.resumes == 2, 5, "a second RESUME")


# ----- latency under load --------------------------------------------------------------------


async def test_ack_latency_for_50_simultaneous_commands(
    fake_discord: FakeDiscord, bot: PingBot
) -> None:
    world = fake_discord.world
    assert world is not None
    started = time.perf_counter()
    inters = await asyncio.gather(
        *(
            fake_discord.send_slash_command(
                world.guild_id, world.channel_id, world.user_id, "ping", {"text": f"n{i}"}
            )
            for i in range(50)
        )
    )
    await fake_discord.wait_for(
        lambda: len(fake_discord.messages(world.channel_id, include_ephemeral=False)) == 150,
        15,
        "50 originals, 50 follow-ups and 50 channel messages",
    )
    elapsed = time.perf_counter() - started
    latencies = [i.ack_latency for i in inters]
    assert all(lat is not None for lat in latencies)
    values = [lat * 1000 for lat in latencies if lat is not None]
    p50, p99 = statistics.median(values), _pct(values, 0.99)
    print(
        f"\nack latency, 50 simultaneous /ping: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(values):.1f} ms; all 50 fully answered in {elapsed:.2f} s"
    )
    assert p99 < 3000  # Discord's acknowledgement deadline
    contents = sorted(i.original.content for i in inters if i.original is not None)
    assert contents == sorted(f"pong: n{i}" for i in range(50))


# ----- Discord's errors, as discord.py sees them -----------------------------------------------


async def test_errors_and_fault_injection(fake_discord: FakeDiscord, bot: PingBot) -> None:
    world = fake_discord.world
    assert world is not None
    channel = bot.get_channel(world.channel_id)
    assert isinstance(channel, discord.TextChannel)

    # 429 with retry_after: discord.py waits and retries, the second try lands
    fault = fake_discord.fail_next(
        429, method="POST", path=r"^/channels/\d+/messages$", retry_after=0.1
    )
    before = len(fake_discord.requests)
    message = await channel.send("after a rate limit")
    assert len(fault.hits) == 1 and fault.exhausted
    posts = [r for r in fake_discord.requests[before:] if r.method == "POST"]
    assert [r.status for r in posts] == [429, 200]
    assert fake_discord.message(message.id).content == "after a rate limit"

    # 403 / 5xx / 401 injected
    fake_discord.fail_next(403, path=r"/messages$")
    with pytest.raises(discord.Forbidden) as forbidden:
        await channel.send("nope")
    assert forbidden.value.code == 50013
    fake_discord.fail_next(503, path=r"/messages$")
    with pytest.raises(discord.DiscordServerError):
        await channel.send("nope")

    # Discord's own rules
    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send("x" * 2001)
    assert (too_long.value.status, too_long.value.code) == (400, 50035)
    assert "content" in str(too_long.value)
    fake_discord.set_upload_limit(world.guild_id, 1000)
    with pytest.raises(discord.HTTPException) as too_big:
        await channel.send(file=discord.File(io.BytesIO(b"x" * 1001), "big.bin"))
    assert (too_big.value.status, too_big.value.code) == (413, 40005)
    await channel.send(file=discord.File(io.BytesIO(b"x" * 1000), "fits.bin"))

    locked = fake_discord.add_channel(
        world.guild_id,
        "locked",
        permission_overwrites=[
            {
                "id": str(world.guild_id),
                "type": 0,
                "allow": "0",
                "deny": str(Permissions.SEND_MESSAGES),
            }
        ],
    )
    await fake_discord.wait_for(lambda: bot.get_channel(locked) is not None, 5, "CHANNEL_CREATE")
    locked_channel = bot.get_channel(locked)
    assert isinstance(locked_channel, discord.TextChannel)
    assert not locked_channel.permissions_for(locked_channel.guild.me).send_messages
    with pytest.raises(discord.Forbidden) as denied:
        await locked_channel.send("hi")
    assert denied.value.code == 50013

    fake_discord.delete_message(message.id)
    with pytest.raises(discord.NotFound) as gone:
        await message.edit(content="edited")
    assert gone.value.code == 10008
    fake_discord.delete_channel(world.other_channel_id)
    videos = bot.get_partial_messageable(world.other_channel_id)
    with pytest.raises(discord.NotFound) as no_channel:
        await videos.send("hello?")
    assert no_channel.value.code == 10003
    await fake_discord.wait_for(
        lambda: bot.get_channel(world.other_channel_id) is None, 5, "CHANNEL_DELETE"
    )

    # an expired interaction token: every webhook call → 401 Invalid Webhook Token
    inter = await fake_discord.send_slash_command(
        world.guild_id, world.channel_id, world.user_id, "ping"
    )
    await inter.wait_for_followup()
    fake_discord.expire_interaction(inter)
    with pytest.raises(discord.HTTPException) as expired:
        await bot.seen[inter.id].edit_original_response(content="late")
    assert (expired.value.status, expired.value.code) == (401, 50027)

    # acknowledging after the deadline → 404 Unknown interaction (10062)
    fake_discord.ack_deadline = 0.1
    late = await fake_discord.send_slash_command(
        world.guild_id, world.channel_id, world.user_id, "slow"
    )
    await fake_discord.wait_for(lambda: bot.errors, 5, "the late answer to fail")
    error = bot.errors.pop()
    assert isinstance(error, app_commands.CommandInvokeError)
    assert isinstance(error.original, discord.NotFound) and error.original.code == 10062
    assert not late.acknowledged

    # unknown routes: 404 with a JSON body and exactly `application/json`
    async with aiohttp.ClientSession() as http, http.get(f"{fake_discord.api_base}/nope") as resp:
        assert resp.status == 404
        assert resp.headers["Content-Type"] == "application/json"
        assert await resp.json() == {"message": "404: Not Found", "code": 0}
    assert fake_discord.unknown_requests[-1].path == "/nope"

    # attachment links expire like Discord's signed CDN URLs
    url = inter.followups[0].attachments[0].url
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 200
        fake_discord.expire_attachment_urls()
        async with http.get(url) as resp:
            assert resp.status == 404


async def test_strict_commands_and_options(fake_discord: FakeDiscord, bot: PingBot) -> None:
    world = fake_discord.world
    assert world is not None
    with pytest.raises(LookupError, match="not registered"):
        await fake_discord.send_slash_command(
            world.guild_id, world.channel_id, world.user_id, "video"
        )
    with pytest.raises(ValueError, match="no option 'txt'"):
        await fake_discord.send_slash_command(
            world.guild_id, world.channel_id, world.user_id, "ping", {"txt": "x"}
        )
    with pytest.raises(ValueError, match="must be a string"):
        await fake_discord.send_slash_command(
            world.guild_id, world.channel_id, world.user_id, "ping", {"text": 3}
        )


# ----- bot.discord_api on its own ------------------------------------------------------------


async def test_api_base_switching_and_attachment_hosts() -> None:
    try:
        apply_api_base("http://127.0.0.1:9/api/v10/")
        assert current_api_base() == "http://127.0.0.1:9/api/v10"
        apply_api_base("http://127.0.0.1:9/api/v10")  # idempotent
        assert attachment_url_allowed("http://127.0.0.1:9/attachments/1/a.png")
        assert not attachment_url_allowed("http://127.0.0.1:10/attachments/1/a.png")
        assert not attachment_url_allowed("http://10.0.0.1:9/x")
        assert attachment_url_allowed("https://cdn.discordapp.com/attachments/1/2/a.png")
        with pytest.raises(ValueError, match="DISCORD_API_BASE_URL"):
            apply_api_base("ftp://example.com")
    finally:
        apply_api_base(DISCORD_API_BASE)
    assert current_api_base() == DISCORD_API_BASE
    assert discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY == DISCORD_GATEWAY
    assert not attachment_url_allowed("http://127.0.0.1:9/attachments/1/a.png")
    assert not attachment_url_allowed("http://cdn.discordapp.com/attachments/1/2/a.png")


async def test_global_sync_and_default_base_keeps_builtin_gateway(
    fake_discord: FakeDiscord,
) -> None:
    client = PingBot(fake_discord.api_base, members=True)  # global commands
    async with running_bot(client, fake_discord):
        assert len(fake_discord.commands()) == 5
        world = fake_discord.world
        assert world is not None
        guild = client.get_guild(world.guild_id)
        assert guild is not None
        alice = guild.get_member(world.user_id)  # members intent: GUILD_CREATE has everyone
        assert alice is not None and alice.name == "alice"
        [found] = await guild.query_members("ali")  # REQUEST_GUILD_MEMBERS → chunk
        assert found.id == world.user_id
        inter = await fake_discord.send_slash_command(
            world.guild_id, world.channel_id, world.user_id, "ping"
        )
        assert "guild_id" not in inter.payload["data"]  # a global command
        await inter.wait_for_followup()
        await fake_discord.wait_for_message(world.channel_id, lambda m: "done" in m.content)
    assert client.errors == []
    assert discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY != DISCORD_GATEWAY
    apply_api_base(DISCORD_API_BASE)
    assert discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY == DISCORD_GATEWAY


async def test_disallowed_privileged_intent_is_refused() -> None:
    async with FakeDiscord(privileged_intents=0) as fake:
        fake.populate_default_world()
        client = PingBot(fake.api_base, members=True)
        try:
            with pytest.raises(discord.PrivilegedIntentsRequired):
                async with running_bot(client, fake):
                    pass
        finally:
            apply_api_base(DISCORD_API_BASE)
        assert [c.kind for c in fake.gateway_connections] == ["open"]  # closed with 4014
