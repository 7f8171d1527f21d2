"""A fake Discord (REST v10 + gateway) on 127.0.0.1 for end-to-end tests with real discord.py.

Usage in a test (the `fake_discord` fixture below does the first three lines)::

    async with FakeDiscord() as fake:
        world = fake.populate_default_world()      # guild, #general, alice, an admin
        apply_api_base(fake.api_base)              # what DISCORD_API_BASE_URL does
        async with running_bot(MyBot(...), fake):  # login, gateway, GUILD_CREATE
            inter = await fake.send_slash_command(world.guild_id, world.channel_id,
                                                  world.user_id, "video", {"prompt": "a cat"})
            callback = await inter.wait_for_callback()
            msg = await inter.wait_for_original(lambda m: not m.loading)

What it models (enough for the unmodified client, and strict where Discord is strict):

* REST under `/api/v10`: login, application info, `/gateway/bot`, command bulk overwrite
  (global and guild), interaction callbacks (JSON or multipart, `with_response`), the
  interaction webhook (`@original`, follow-ups), channel messages (JSON or multipart with
  `payload_json` + `files[n]`), channels, guilds, members, DMs. Unknown routes → 404 JSON.
  Every request is recorded in `.requests`. Error bodies are `{"message", "code"}` with
  Content-Type exactly `application/json`.
* Discord's rules: 3 s to acknowledge (10062 after), acknowledge once (40060), interaction
  token valid 15 min (50027 after, or after `expire_interaction`), first follow-up after a
  deferral replaces the "thinking" message, message limits (2,000 chars, embed limits,
  components, 10 files → 50035), empty messages (50006), per-guild upload limit (413/40005),
  bot channel permissions (403/50013), unknown channel/message (10003/10008).
* Gateway: HELLO, heartbeat ACKs, IDENTIFY (with `shard: [id, count]`: only the guilds with
  `(guild_id >> 22) % count == id` and their events and interactions) → READY (+
  `resume_gateway_url`) → GUILD_CREATE,
  RESUME with replay of missed events, INVALID_SESSION, RECONNECT, zlib-stream compression,
  MESSAGE_CREATE/UPDATE/DELETE for what the bot posts, GUILD_MEMBERS_CHUNK on request.
* Message nonces (channel messages only; webhooks have none): `nonce` (≤ 25 characters) is
  echoed in the create answer and MESSAGE_CREATE (never in fetched history); with
  `enforce_nonce` a second create by the same author with the same nonce within
  `nonce_window` seconds returns the first message and creates nothing.
* Fault injection: `fail_next(...)` (401/403/404/413/429 with `retry_after` and headers/5xx;
  `after_commit=True`: the request is carried out, then the answer is replaced by the error,
  or by a dropped connection with status 0 — "stored but the answer was lost"),
  `expire_interaction`, `delete_channel`, `delete_message`, `expire_attachment_urls`,
  `set_upload_limit`, `disconnect_gateway`.

Attachments given to slash commands are served by the fake itself at
`/attachments/<id>/<filename>?ex=…&is=…&hm=…` (like Discord's signed CDN links).
"""

# Waiting helpers take `timeout=` like asyncio.wait_for: the pleasant API for tests.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import secrets
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import pytest
from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes import payloads as p
from tests.fakes.payloads import CallbackType, MessageFlags, OptionType, Permissions

if TYPE_CHECKING:
    import discord

MiB = 1024 * 1024
DEFAULT_UPLOAD_LIMIT = 10 * MiB
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

_JSON = "application/json"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _json_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=_dumps(body).encode(),
        headers={"Content-Type": _JSON, **(headers or {})},
    )


class ApiError(Exception):
    """Raised inside a handler; becomes a Discord JSON error response."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        errors: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.body = p.error(code, message, errors)
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return _json_response(self.status, self.body, self.headers)


def _form_error(errors: Mapping[str, Any]) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", errors)


UNKNOWN_CHANNEL = (404, 10003, "Unknown Channel")
UNKNOWN_GUILD = (404, 10004, "Unknown Guild")
UNKNOWN_MEMBER = (404, 10007, "Unknown Member")
UNKNOWN_MESSAGE = (404, 10008, "Unknown Message")
UNKNOWN_USER = (404, 10013, "Unknown User")
UNKNOWN_WEBHOOK = (404, 10015, "Unknown Webhook")
UNKNOWN_INTERACTION = (404, 10062, "Unknown interaction")
MISSING_ACCESS = (403, 50001, "Missing Access")
MISSING_PERMISSIONS = (403, 50013, "Missing Permissions")
INVALID_WEBHOOK_TOKEN = (401, 50027, "Invalid Webhook Token")
ALREADY_ACKNOWLEDGED = (400, 40060, "Interaction has already been acknowledged.")
UNAUTHORIZED = (401, 0, "401: Unauthorized")


def _err(spec: tuple[int, int, str]) -> ApiError:
    return ApiError(*spec)


# ----- test-side inputs and recorded state ------------------------------------------------


@dataclass(frozen=True)
class FakeFile:
    """A file a test user attaches to a slash command option."""

    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None


@dataclass(eq=False)
class StoredAttachment:
    id: int
    filename: str
    data: bytes
    url: str
    content_type: str | None = None
    description: str | None = None
    width: int | None = None
    height: int | None = None
    ephemeral: bool = False
    expired: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> dict[str, Any]:
        return p.attachment(
            self.id,
            self.filename,
            size=self.size,
            url=self.url,
            content_type=self.content_type,
            width=self.width,
            height=self.height,
            description=self.description,
            ephemeral=self.ephemeral,
        )


@dataclass(eq=False)
class RecordedPart:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode()

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(eq=False)
class RecordedRequest:
    """One HTTP request the fake received (REST, or an attachment download)."""

    method: str
    path: str  # relative to /api/v10 for REST ("/channels/1/messages"), else the full path
    query: dict[str, str]
    json: Any  # the JSON body, or the parsed `payload_json` of a multipart body
    parts: list[RecordedPart]
    at: float  # time.monotonic()
    authorized: bool
    content_type: str | None = None
    route: str | None = None  # e.g. "POST /channels/{channel_id}/messages"; None if unknown
    status: int | None = None
    response: Any = None

    @property
    def multipart(self) -> bool:
        return bool(self.parts)

    @property
    def files(self) -> list[RecordedPart]:
        return [part for part in self.parts if part.filename is not None]


@dataclass(eq=False)
class FakeMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author: dict[str, Any]
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    tts: bool = False
    message_reference: dict[str, Any] | None = None
    allowed_mentions: dict[str, Any] | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    mentions: list[dict[str, Any]] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    edited_at: datetime | None = None
    deleted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # every payload applied
    pinged_user_ids: set[int] = field(default_factory=set)  # over the create and every edit
    pinged_role_ids: set[int] = field(default_factory=set)
    pinged_everyone: bool = False
    nonce: str | None = None  # as sent on create (enforce_nonce looks it up)
    created_mono: float = field(default_factory=time.monotonic)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MessageFlags.EPHEMERAL)

    @property
    def loading(self) -> bool:
        """Still the "Bot is thinking…" placeholder of a deferred interaction."""
        return bool(self.flags & MessageFlags.LOADING)

    @property
    def author_id(self) -> int:
        return int(self.author["id"])

    def attachment(self, filename: str) -> StoredAttachment:
        for att in self.attachments:
            if att.filename == filename:
                return att
        names = ", ".join(a.filename for a in self.attachments) or "none"
        raise KeyError(f"message {self.id} has no attachment {filename!r} (has: {names})")

    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in _iter_components(self.components) if "custom_id" in c]

    def payload(self) -> dict[str, Any]:
        return p.message(
            self.id,
            self.channel_id,
            self.author,
            content=self.content,
            guild_id=self.guild_id,
            embeds=self.embeds,
            attachments=[a.payload() for a in self.attachments],
            components=self.components,
            flags=self.flags,
            type=self.type,
            mentions=self.mentions,
            mention_roles=self.mention_roles,
            mention_everyone=self.mention_everyone,
            message_reference=self.message_reference,
            webhook_id=self.webhook_id,
            application_id=self.application_id,
            interaction_metadata=self.interaction_metadata,
            edited_at=self.edited_at,
            tts=self.tts,
        )


def _iter_components(components: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for comp in components:
        yield comp
        children = comp.get("components")
        if isinstance(children, list):
            yield from _iter_components(children)
        accessory = comp.get("accessory")
        if isinstance(accessory, Mapping):
            yield accessory


@dataclass(eq=False)
class InteractionCallback:
    """The bot's response to an interaction (`POST /interactions/{id}/{token}/callback`)."""

    type: int
    data: dict[str, Any] | None
    ephemeral: bool
    at: float  # time.monotonic()
    request: RecordedRequest


@dataclass(eq=False)
class FakeInteraction:
    id: int
    token: str
    type: int
    guild_id: int | None
    channel_id: int
    user_id: int
    name: str  # "video", "videoadmin block", "Animate", a component's or a modal's custom_id
    payload: dict[str, Any]
    created_at: float  # time.monotonic() when the test created it
    fake: FakeDiscord = field(repr=False)
    message_id: int | None = None  # the message a component was on
    dispatched_at: float | None = None  # when INTERACTION_CREATE was written to the gateway
    callbacks: list[InteractionCallback] = field(default_factory=list)
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    expired: bool = False
    command_type: int = 1  # application commands: 1 slash, 2 user, 3 message

    @property
    def modal(self) -> InteractionCallback | None:
        """The modal the bot answered with (callback type 9), if it did."""
        return next((c for c in self.callbacks if c.type == CallbackType.MODAL), None)

    @property
    def acknowledged(self) -> bool:
        return bool(self.callbacks)

    @property
    def callback(self) -> InteractionCallback | None:
        return self.callbacks[0] if self.callbacks else None

    @property
    def ack_latency(self) -> float | None:
        """Seconds from INTERACTION_CREATE on the wire to the callback arriving."""
        if not self.callbacks or self.dispatched_at is None:
            return None
        return self.callbacks[0].at - self.dispatched_at

    @property
    def original(self) -> FakeMessage | None:
        if self.original_message_id is None:
            return None
        return self.fake.message(self.original_message_id)

    @property
    def followups(self) -> list[FakeMessage]:
        return [self.fake.message(mid) for mid in self.followup_ids]

    async def wait_for_callback(self, timeout: float = 5.0) -> InteractionCallback:
        await self.fake.wait_for(lambda: self.callbacks, timeout, f"a callback to {self.name!r}")
        return self.callbacks[0]

    async def wait_for_original(
        self, predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 5.0
    ) -> FakeMessage:
        def check() -> FakeMessage | None:
            msg = self.original
            return msg if msg is not None and (predicate is None or predicate(msg)) else None

        return await self.fake.wait_for(check, timeout, f"the original response of {self.name!r}")

    async def wait_for_followup(
        self, predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 5.0
    ) -> FakeMessage:
        def check() -> FakeMessage | None:
            for msg in self.followups:
                if predicate is None or predicate(msg):
                    return msg
            return None

        return await self.fake.wait_for(check, timeout, f"a follow-up to {self.name!r}")


@dataclass(eq=False)
class FakeMember:
    user: dict[str, Any]
    roles: list[int]
    nick: str | None = None
    joined_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def id(self) -> int:
        return int(self.user["id"])

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        return p.member(
            self.user if with_user else None,
            roles=self.roles,
            nick=self.nick,
            joined_at=self.joined_at,
            permissions=permissions,
        )


@dataclass(eq=False)
class FakeGuild:
    id: int
    name: str
    owner_id: int
    upload_limit: int
    bot_role_id: int
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)
    channels: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    locale: str = "en-US"
    joined_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def payload(
        self, *, gateway: bool, include_members: Iterable[int] | None = None
    ) -> dict[str, Any]:
        members = [
            m.payload()
            for uid, m in self.members.items()
            if include_members is None or uid in set(include_members)
        ]
        return p.guild(
            self.id,
            self.name,
            owner_id=self.owner_id,
            roles=list(self.roles.values()),
            channels=[c for c in self.channels.values() if not p.is_thread(c["type"])],
            threads=[c for c in self.channels.values() if p.is_thread(c["type"])],
            members=members,
            member_count=len(self.members),
            features=self.features,
            preferred_locale=self.locale,
            joined_at=self.joined_at,
            gateway=gateway,
        )

    def base_permissions(self, user_id: int) -> int:
        if user_id == self.owner_id:
            return Permissions.ALL
        member = self.members.get(user_id)
        perms = int(self.roles[self.id]["permissions"])
        for role_id in member.roles if member else ():
            role = self.roles.get(role_id)
            if role is not None:
                perms |= int(role["permissions"])
        return Permissions.ALL if perms & Permissions.ADMINISTRATOR else perms

    def channel_permissions(self, channel_id: int, user_id: int) -> int:
        perms = self.base_permissions(user_id)
        if perms & Permissions.ADMINISTRATOR:
            return Permissions.ALL
        channel = self.channels[channel_id]
        if p.is_thread(channel["type"]):  # a thread has its parent's overwrites
            channel = self.channels[int(channel["parent_id"])]
        overwrites = {int(o["id"]): o for o in channel["permission_overwrites"]}
        everyone = overwrites.get(self.id)
        if everyone is not None:
            perms = (perms & ~int(everyone["deny"])) | int(everyone["allow"])
        member = self.members.get(user_id)
        allow = deny = 0
        for role_id in member.roles if member else ():
            ow = overwrites.get(role_id)
            if ow is not None and ow["type"] == 0:
                allow |= int(ow["allow"])
                deny |= int(ow["deny"])
        perms = (perms & ~deny) | allow
        own = overwrites.get(user_id)
        if own is not None and own["type"] == 1:
            perms = (perms & ~int(own["deny"])) | int(own["allow"])
        return perms


@dataclass(frozen=True)
class World:
    """The default scene `populate_default_world` builds."""

    guild_id: int
    channel_id: int  # #general
    user_id: int  # alice, an ordinary member
    admin_id: int  # has Manage Server
    other_channel_id: int  # #videos


@dataclass(eq=False)
class Fault:
    """Make the next `times` matching requests fail with `status` (see `FakeDiscord.fail_next`)."""

    status: int
    method: str | None
    path: re.Pattern[str] | None
    when: Callable[[RecordedRequest], bool] | None
    times: int
    body: dict[str, Any]
    headers: dict[str, str]
    after_commit: bool = False  # carry the request out, then answer with the fault
    hits: list[RecordedRequest] = field(default_factory=list)

    def matches(self, rec: RecordedRequest) -> bool:
        if len(self.hits) >= self.times:
            return False
        if self.method is not None and rec.method != self.method.upper():
            return False
        if self.path is not None and not self.path.search(rec.path):
            return False
        return self.when is None or self.when(rec)

    @property
    def exhausted(self) -> bool:
        return len(self.hits) >= self.times


@dataclass(frozen=True)
class GatewayConnection:
    path: str
    query: dict[str, str]
    at: float
    kind: str = "open"  # "identify", "resume", "invalid-resume" once known


@dataclass(eq=False)
class _Event:
    seq: int
    text: str
    interaction: FakeInteraction | None = None


@dataclass(eq=False)
class _Session:
    session_id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    buffer: deque[_Event] = field(default_factory=lambda: deque(maxlen=5000))
    conn: _Conn | None = None
    invalid: bool = False

    def owns(self, guild_id: int | None) -> bool:
        """Discord's routing: a guild's events go to shard (guild_id >> 22) % shard_count;
        direct messages to shard 0; an unsharded session gets everything."""
        if self.shard is None:
            return True
        shard_id, count = self.shard
        return (0 if guild_id is None else (guild_id >> 22) % count) == shard_id


class _Conn:
    """One gateway websocket: an ordered outbox drained by a writer task."""

    def __init__(self, ws: web.WebSocketResponse, compress: str | None) -> None:
        self.ws = ws
        self.compressor = zlib.compressobj() if compress == "zlib-stream" else None
        self.outbox: asyncio.Queue[tuple[str, FakeInteraction | None]] = asyncio.Queue()
        self.session: _Session | None = None
        self.closed_by_server = False
        self.client_close_code: int | None = None
        self.writer = asyncio.get_running_loop().create_task(self._write())

    def put(self, text: str, interaction: FakeInteraction | None = None) -> None:
        self.outbox.put_nowait((text, interaction))

    async def _write(self) -> None:
        while True:
            text, interaction = await self.outbox.get()
            try:
                if self.compressor is not None:
                    data = self.compressor.compress(text.encode()) + self.compressor.flush(
                        zlib.Z_SYNC_FLUSH
                    )
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                # Closed: the session buffer keeps the events for a RESUME.
                self.outbox.task_done()
                while not self.outbox.empty():
                    self.outbox.get_nowait()
                    self.outbox.task_done()
                return
            if interaction is not None and interaction.dispatched_at is None:
                interaction.dispatched_at = time.monotonic()
            self.outbox.task_done()

    async def aclose(self, code: int = WSCloseCode.GOING_AWAY) -> None:
        if not self.ws.closed:
            self.closed_by_server = True
        if not self.writer.done():
            # Let queued frames go out first (e.g. INVALID_SESSION before a close).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.outbox.join(), 1.0)
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer
        if not self.ws.closed:
            await self.ws.close(code=code)


# ----- message validation -----------------------------------------------------------------

_MENTION_USER = re.compile(r"<@!?(\d+)>")
_MENTION_ROLE = re.compile(r"<@&(\d+)>")


def _too_long(path: Sequence[str | int], limit: int) -> dict[str, Any]:
    return p.field_error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if key in into and isinstance(into[key], dict) and isinstance(value, Mapping):
            _merge(into[key], value)
        else:
            into[key] = value


def validate_message_payload(payload: Mapping[str, Any], *, files: int = 0) -> dict[str, Any]:
    """The `errors` object Discord would return for this message body ({} if valid)."""
    errors: dict[str, Any] = {}
    content = payload.get("content")
    if isinstance(content, str) and len(content) > 2000:
        _merge(errors, _too_long(["content"], 2000))
    embeds = payload.get("embeds") or []
    if len(embeds) > 10:
        _merge(errors, _too_long(["embeds"], 10))
    total = 0
    for i, embed in enumerate(embeds):
        for key, limit in (("title", 256), ("description", 4096)):
            value = embed.get(key) or ""
            total += len(value)
            if len(value) > limit:
                _merge(errors, _too_long(["embeds", i, key], limit))
        for key, sub, limit in (("footer", "text", 2048), ("author", "name", 256)):
            value = (embed.get(key) or {}).get(sub) or ""
            total += len(value)
            if len(value) > limit:
                _merge(errors, _too_long(["embeds", i, key, sub], limit))
        fields = embed.get("fields") or []
        if len(fields) > 25:
            _merge(errors, _too_long(["embeds", i, "fields"], 25))
        for j, fld in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                value = fld.get(key) or ""
                total += len(value)
                if not value:
                    _merge(
                        errors,
                        p.field_error(
                            ["embeds", i, "fields", j, key],
                            "BASE_TYPE_REQUIRED",
                            "This field is required",
                        ),
                    )
                elif len(value) > limit:
                    _merge(errors, _too_long(["embeds", i, "fields", j, key], limit))
    if total > 6000:
        _merge(
            errors,
            p.field_error(
                ["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
            ),
        )
    components = payload.get("components") or []
    v2 = bool((payload.get("flags") or 0) & MessageFlags.IS_COMPONENTS_V2)
    if not v2 and len(components) > 5:
        _merge(errors, _too_long(["components"], 5))
    seen: set[str] = set()
    for i, row in enumerate(components):
        if not v2 and row.get("type") == 1 and len(row.get("components") or []) > 5:
            _merge(errors, _too_long(["components", i, "components"], 5))
        for comp in _iter_components([row]):
            custom_id = comp.get("custom_id")
            if custom_id is not None:
                if len(custom_id) > 100:
                    _merge(errors, _too_long(["components", i, "custom_id"], 100))
                if custom_id in seen:
                    _merge(
                        errors,
                        p.field_error(
                            ["components", i],
                            "COMPONENT_CUSTOM_ID_DUPLICATED",
                            "Component custom id cannot be duplicated",
                        ),
                    )
                seen.add(custom_id)
            if comp.get("type") == 2 and len(comp.get("label") or "") > 80:
                _merge(errors, _too_long(["components", i, "label"], 80))
    attachments = payload.get("attachments") or []
    if max(len(attachments), files) > 10:
        _merge(errors, _too_long(["attachments"], 10))
    allowed = payload.get("allowed_mentions")
    if isinstance(allowed, Mapping):
        parse = allowed.get("parse") or []
        for kind in ("users", "roles"):
            if kind in parse and allowed.get(kind):
                _merge(
                    errors,
                    p.field_error(
                        ["allowed_mentions"],
                        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                        f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                    ),
                )
    return errors


def _is_empty(payload: Mapping[str, Any], files: int) -> bool:
    return not (
        payload.get("content")
        or payload.get("embeds")
        or payload.get("components")
        or payload.get("sticker_ids")
        or payload.get("poll")
        or payload.get("attachments")
        or files
    )


_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")


def validate_commands(commands: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Errors for a bulk-overwrite body ({} if valid): names, descriptions, option rules."""
    errors: dict[str, Any] = {}
    seen: set[tuple[int, str]] = set()

    def check_options(path: list[str | int], options: Sequence[Mapping[str, Any]]) -> None:
        if len(options) > 25:
            _merge(errors, _too_long([*path, "options"], 25))
        optional_seen = False
        names: set[str] = set()
        for j, opt in enumerate(options):
            opath: list[str | int] = [*path, "options", j]
            name = str(opt.get("name", ""))
            if not _COMMAND_NAME.match(name) or name != name.lower():
                _merge(
                    errors,
                    p.field_error(
                        [*opath, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Invalid name"
                    ),
                )
            if name in names:
                _merge(
                    errors,
                    p.field_error(
                        [*opath, "name"],
                        "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
                        "Option name already exists",
                    ),
                )
            names.add(name)
            desc = str(opt.get("description", ""))
            if not 1 <= len(desc) <= 100:
                _merge(errors, _too_long([*opath, "description"], 100))
            if len(opt.get("choices") or []) > 25:
                _merge(errors, _too_long([*opath, "choices"], 25))
            if opt.get("type") in (OptionType.SUB_COMMAND, OptionType.SUB_COMMAND_GROUP):
                check_options(opath, opt.get("options") or [])
                continue
            if opt.get("required"):
                if optional_seen:
                    _merge(
                        errors,
                        p.field_error(
                            [*opath, "required"],
                            "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                            "Required options must be placed before non-required options",
                        ),
                    )
            else:
                optional_seen = True

    for i, cmd in enumerate(commands):
        ctype = int(cmd.get("type", 1))
        name = str(cmd.get("name", ""))
        if ctype == 1 and (not _COMMAND_NAME.match(name) or name != name.lower()):
            _merge(
                errors,
                p.field_error([i, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Invalid name"),
            )
        if (ctype, name) in seen:
            _merge(
                errors,
                p.field_error(
                    [i, "name"],
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    f"Application command names must be unique: {name}",
                ),
            )
        seen.add((ctype, name))
        desc = str(cmd.get("description") or "")
        if ctype == 1 and not 1 <= len(desc) <= 100:
            _merge(errors, _too_long([i, "description"], 100))
        if ctype in (2, 3) and not 1 <= len(name) <= 32:
            _merge(errors, _too_long([i, "name"], 32))
        if ctype in (2, 3) and (desc or cmd.get("options")):
            _merge(
                errors,
                p.field_error(
                    [i],
                    "APPLICATION_COMMAND_INVALID_CONTEXT_MENU",
                    "User and message commands take no description or options",
                ),
            )
        check_options([i], cmd.get("options") or [])
    if sum(1 for c in commands if int(c.get("type", 1)) == 1) > 100:
        _merge(errors, _too_long(["_root"], 100))
    return errors


def modal_text_inputs(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A modal callback's text inputs by label (legacy action rows or label components)."""
    found: dict[str, dict[str, Any]] = {}
    for row in data.get("components") or []:
        if row.get("type") == 18:
            found[str(row.get("label", ""))] = dict(row.get("component") or {})
        for comp in row.get("components") or []:
            found[str(comp.get("label", ""))] = dict(comp)
    return found


def validate_modal(data: Mapping[str, Any]) -> dict[str, Any]:
    """Errors for a MODAL callback's `data` ({} if valid): Discord's length rules."""
    errors: dict[str, Any] = {}
    for key, limit in (("custom_id", 100), ("title", 45)):
        value = str(data.get(key) or "")
        if not value:
            _merge(errors, p.field_error([key], "BASE_TYPE_REQUIRED", "This field is required"))
        elif len(value) > limit:
            _merge(errors, _too_long([key], limit))
    rows = data.get("components") or []
    if not 1 <= len(rows) <= 5:
        _merge(errors, _too_long(["components"], 5))
    for i, row in enumerate(rows):
        inputs = [row["component"]] if row.get("type") == 18 else row.get("components") or []
        label_path: list[str | int] = ["components", i, "label"]
        for j, comp in enumerate(inputs):
            path: list[str | int] = ["components", i, "components", j]
            if row.get("type") != 18:
                label_path = [*path, "label"]
                label = str(comp.get("label") or row.get("label") or "")
            else:
                label = str(row.get("label") or "")
            if not 1 <= len(label) <= 45:
                _merge(errors, _too_long(label_path, 45))
            max_length = int(comp.get("max_length") or 4000)
            if not 1 <= max_length <= 4000:
                _merge(errors, _too_long([*path, "max_length"], 4000))
            value = comp.get("value")
            if value is not None and len(str(value)) > max_length:
                _merge(errors, _too_long([*path, "value"], max_length))
            if len(str(comp.get("placeholder") or "")) > 100:
                _merge(errors, _too_long([*path, "placeholder"], 100))
    return errors


def _image_size(data: bytes, content_type: str | None) -> tuple[int | None, int | None]:
    if not (content_type or "").startswith("image/"):
        return None, None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return img.width, img.height
    except Exception:
        return None, None


# ----- the server -------------------------------------------------------------------------

Handler = Callable[..., Any]


class FakeDiscord:
    """A fake Discord API + gateway on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        token: str = "fake-token",
        application_id: int | None = None,
        bot_user_id: int | None = None,
        bot_username: str = "LTX Video",
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        heartbeat_interval_ms: int = 41_250,
        ack_deadline: float | None = 3.0,
        token_lifetime: float = 15 * 60,
        strict_commands: bool = True,
        privileged_intents: int = PRIVILEGED_INTENTS,
        nonce_window: float = 180.0,
    ) -> None:
        self.token = token
        self.application_id = application_id or p.snowflake()
        self.bot_user_id = bot_user_id or self.application_id
        self.bot_user = p.client_user(self.bot_user_id, bot_username)
        self.default_upload_limit = upload_limit
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.ack_deadline = ack_deadline
        self.token_lifetime = token_lifetime
        self.strict_commands = strict_commands
        self.privileged_intents = privileged_intents
        self.nonce_window = nonce_window  # "the past few minutes" of enforce_nonce

        self.requests: list[RecordedRequest] = []
        self.gateway_connections: list[GatewayConnection] = []
        self.heartbeats = 0
        self.presence: dict[str, Any] | None = None
        self.guilds: dict[int, FakeGuild] = {}
        self.users: dict[int, dict[str, Any]] = {self.bot_user_id: dict(self.bot_user)}
        self.dm_channels: dict[int, dict[str, Any]] = {}
        self.deleted_channels: dict[int, dict[str, Any]] = {}
        # Guilds the bot was removed from: their channels answer 403 Missing Access.
        self.left_guilds: dict[int, FakeGuild] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.command_creates: dict[str, int] = {}  # scope ("global" / guild id) -> new commands
        self.faults: list[Fault] = []
        self.world: World | None = None

        self._owner = p.user(p.snowflake(), "app-owner")
        self.users[int(self._owner["id"])] = self._owner
        self._messages: dict[int, FakeMessage] = {}
        self._channel_messages: dict[int, list[FakeMessage]] = {}
        self._attachments: dict[int, StoredAttachment] = {}
        self._by_token: dict[str, FakeInteraction] = {}
        self._sessions: dict[str, _Session] = {}
        self._conns: set[_Conn] = set()
        self._change = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._routes: list[tuple[str, re.Pattern[str], str, Handler, bool]] = []
        self._build_routes()

    # ----- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=256 * MiB)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._handle_api)
        app.router.add_get("/gateway", self._handle_gateway)
        app.router.add_get("/gateway-resume", self._handle_gateway)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._handle_attachment)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        for conn in list(self._conns):
            await conn.aclose(WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway-resume"

    # ----- building the world -----------------------------------------------------------

    def add_user(
        self, user_id: int | None = None, username: str | None = None, *, bot: bool = False
    ) -> dict[str, Any]:
        uid = user_id or p.snowflake()
        if uid in self.users:
            return self.users[uid]
        data = p.user(uid, username or f"user{uid % 10_000}", bot=bot)
        self.users[uid] = data
        return data

    def add_guild(
        self,
        name: str = "Test Guild",
        *,
        guild_id: int | None = None,
        owner_id: int | None = None,
        channels: Sequence[str] = ("general",),
        upload_limit: int | None = None,
        bot_permissions: int = Permissions.BOT_DEFAULT,
        everyone_permissions: int = Permissions.EVERYONE_DEFAULT,
        features: Sequence[str] = (),
    ) -> FakeGuild:
        gid = guild_id or p.snowflake()
        owner = self.add_user(owner_id, "guild-owner")
        bot_role_id = p.snowflake()
        guild = FakeGuild(
            id=gid,
            name=name,
            owner_id=int(owner["id"]),
            upload_limit=upload_limit or self.default_upload_limit,
            bot_role_id=bot_role_id,
            features=list(features),
        )
        guild.roles[gid] = p.role(gid, "@everyone", permissions=everyone_permissions)
        guild.roles[bot_role_id] = p.role(
            bot_role_id,
            self.bot_user["username"],
            permissions=bot_permissions,
            position=1,
            managed=True,
            bot_id=self.bot_user_id,
        )
        guild.members[guild.owner_id] = FakeMember(owner, [])
        guild.members[self.bot_user_id] = FakeMember(dict(self.bot_user), [bot_role_id])
        self.guilds[gid] = guild
        for channel_name in channels:
            self.add_channel(gid, channel_name, _dispatch=False)
        self._dispatch_guild_event(guild, "GUILD_CREATE", None)
        return guild

    def add_channel(
        self,
        guild_id: int,
        name: str,
        *,
        channel_id: int | None = None,
        type: int = p.ChannelType.GUILD_TEXT,
        permission_overwrites: Sequence[Mapping[str, Any]] = (),
        nsfw: bool = False,
        _dispatch: bool = True,
    ) -> int:
        """A channel; `nsfw`: Discord's age-restricted flag (threads inherit the parent's)."""
        guild = self._guild(guild_id)
        cid = channel_id or p.snowflake()
        guild.channels[cid] = p.channel(
            cid,
            name,
            guild_id=guild_id,
            type=type,
            position=len(guild.channels),
            permission_overwrites=permission_overwrites,
            nsfw=nsfw,
        )
        self._channel_messages.setdefault(cid, [])
        if _dispatch:
            self._dispatch_guild_event(guild, "CHANNEL_CREATE", guild.channels[cid])
        return cid

    def add_role(
        self, guild_id: int, name: str, *, permissions: int = 0, role_id: int | None = None
    ) -> int:
        guild = self._guild(guild_id)
        rid = role_id or p.snowflake()
        guild.roles[rid] = p.role(rid, name, permissions=permissions, position=len(guild.roles))
        self._dispatch_guild_event(
            guild, "GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": guild.roles[rid]}
        )
        return rid

    def add_member(
        self,
        guild_id: int,
        user: int | Mapping[str, Any] | None = None,
        *,
        username: str | None = None,
        roles: Iterable[int] = (),
        permissions: int | None = None,
        nick: str | None = None,
    ) -> FakeMember:
        """Add a member; `permissions` gives them a personal role with exactly those bits."""
        guild = self._guild(guild_id)
        if isinstance(user, Mapping):
            data = dict(user)
            self.users[int(data["id"])] = data
        else:
            data = self.add_user(user, username)
        role_ids = list(roles)
        if permissions is not None:
            role_ids.append(
                self.add_role(guild_id, f"perms-{data['username']}", permissions=permissions)
            )
        member = FakeMember(data, role_ids, nick=nick)
        guild.members[member.id] = member
        payload = member.payload()
        payload["guild_id"] = str(guild_id)
        self._dispatch_guild_event(guild, "GUILD_MEMBER_ADD", payload, intent=INTENT_GUILD_MEMBERS)
        return member

    def populate_default_world(self) -> World:
        """One guild with #general and #videos, alice (member) and an admin (Manage Server)."""
        guild = self.add_guild("Test Guild", channels=("general", "videos"))
        general, videos = list(guild.channels)
        alice = self.add_member(guild.id, username="alice")
        admin = self.add_member(
            guild.id,
            username="admin",
            permissions=Permissions.EVERYONE_DEFAULT | Permissions.MANAGE_GUILD,
        )
        self.world = World(guild.id, general, alice.id, admin.id, videos)
        return self.world

    def set_upload_limit(self, guild_id: int, limit: int) -> None:
        self._guild(guild_id).upload_limit = limit

    # ----- inspection -------------------------------------------------------------------

    def message(self, message_id: int) -> FakeMessage:
        try:
            return self._messages[message_id]
        except KeyError:
            raise KeyError(f"no message {message_id}") from None

    def messages(
        self, channel_id: int, *, include_deleted: bool = False, include_ephemeral: bool = True
    ) -> list[FakeMessage]:
        return [
            m
            for m in self._channel_messages.get(channel_id, [])
            if (include_deleted or not m.deleted) and (include_ephemeral or not m.ephemeral)
        ]

    @property
    def deleted_messages(self) -> list[FakeMessage]:
        return [m for m in self._messages.values() if m.deleted]

    def interaction(self, interaction_id: int) -> FakeInteraction:
        return self.interactions[interaction_id]

    def interaction_responses(self, interaction_id: int) -> list[InteractionCallback]:
        return list(self.interactions[interaction_id].callbacks)

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        if guild_id is None:
            return list(self.global_commands)
        return list(self.guild_commands.get(guild_id, []))

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """Requests whose route template equals `route`, e.g. "PUT /applications/{app}/commands"."""
        return [r for r in self.requests if r.route == route]

    @property
    def unknown_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route is None]

    @property
    def resumes(self) -> int:
        return sum(1 for c in self.gateway_connections if c.kind == "resume")

    @property
    def identifies(self) -> int:
        return sum(1 for c in self.gateway_connections if c.kind == "identify")

    # ----- waiting ----------------------------------------------------------------------

    def _changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    async def wait_for(
        self, check: Callable[[], Any], timeout: float, what: str = "a condition"
    ) -> Any:
        """Wait until `check()` returns something truthy (re-checked on every state change)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"FakeDiscord: timed out after {timeout}s waiting for {what}")
            event = self._change
            with contextlib.suppress(asyncio.TimeoutError):
                # Woken by every fake state change; the short poll also catches conditions on
                # the client side (e.g. "the guild is in the bot's cache").
                await asyncio.wait_for(event.wait(), min(remaining, 0.02))

    async def wait_for_message(
        self,
        channel_id: int,
        predicate: Callable[[FakeMessage], bool] | None = None,
        timeout: float = 5.0,
    ) -> FakeMessage:
        """The first live message in the channel (ephemeral ones included) matching `predicate`."""

        def check() -> FakeMessage | None:
            for msg in self.messages(channel_id):
                if predicate is None or predicate(msg):
                    return msg
            return None

        return await self.wait_for(check, timeout, f"a message in channel {channel_id}")

    async def wait_for_request(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = 5.0, *, after: int = 0
    ) -> RecordedRequest:
        """The first answered request (from index `after`) matching `predicate`."""

        def check() -> RecordedRequest | None:
            for rec in self.requests[after:]:
                if rec.status is not None and predicate(rec):
                    return rec
            return None

        return await self.wait_for(check, timeout, "a matching request")

    async def wait_for_gateway(self, timeout: float = 5.0) -> None:
        """Until a client is identified (or resumed) on a live gateway connection."""
        await self.wait_for(
            lambda: any(s.conn is not None for s in self._sessions.values() if not s.invalid),
            timeout,
            "a gateway session",
        )

    # ----- fault injection --------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        method: str | None = None,
        path: str | None = None,
        when: Callable[[RecordedRequest], bool] | None = None,
        times: int = 1,
        body: Mapping[str, Any] | None = None,
        code: int | None = None,
        message: str | None = None,
        retry_after: float = 0.25,
        global_rate_limit: bool = False,
        headers: Mapping[str, str] | None = None,
        after_commit: bool = False,
    ) -> Fault:
        """Answer the next `times` requests matching method / path regex (searched in the path
        relative to /api/v10, e.g. r"^/webhooks/") / `when` with `status` and a Discord body.

        429 comes with `retry_after` in the body and the rate-limit headers (plus `Via`, which
        discord.py requires to treat it as Discord's and retry). discord.py retries 429 and
        500/502/504 by itself, so `times` counts every attempt.

        `after_commit=True`: the request is handled normally first (a message is stored),
        then answered with `status` — or, with status 0, the connection is dropped without
        an answer. Only requests the handler accepted count as hits.
        """
        defaults: dict[int, tuple[int, str]] = {
            400: (50035, "Invalid Form Body"),
            401: (0, "401: Unauthorized"),
            403: MISSING_PERMISSIONS[1:],
            404: (0, "404: Not Found"),
            413: (40005, "Request entity too large"),
            429: (0, "You are being rate limited."),
        }
        dcode, dmsg = defaults.get(status, (0, f"{status}: Server Error"))
        fault_body = dict(body) if body is not None else p.error(code or dcode, message or dmsg)
        fault_headers = dict(headers or {})
        if status == 429 and body is None:
            fault_body = {
                "message": message or dmsg,
                "retry_after": retry_after,
                "global": global_rate_limit,
                "code": code or 0,
            }
            fault_headers = {
                "Retry-After": str(max(1, round(retry_after))),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                "X-RateLimit-Bucket": secrets.token_hex(16),
                "X-RateLimit-Scope": "global" if global_rate_limit else "user",
                "Via": "1.1 google",
                **fault_headers,
            }
            if global_rate_limit:
                fault_headers["X-RateLimit-Global"] = "true"
        fault = Fault(
            status=status,
            method=method,
            path=re.compile(path) if path is not None else None,
            when=when,
            times=times,
            body=fault_body,
            headers=fault_headers,
            after_commit=after_commit,
        )
        self.faults.append(fault)
        return fault

    def expire_interaction(self, interaction: FakeInteraction | int | str) -> None:
        """Every later webhook call with this token → 401 Invalid Webhook Token (50027)."""
        if isinstance(interaction, FakeInteraction):
            target = interaction
        elif isinstance(interaction, str):
            target = self._by_token[interaction]
        else:
            target = self.interactions[interaction]
        target.expired = True

    def add_thread(
        self,
        parent_id: int,
        name: str,
        *,
        owner_id: int | None = None,
        type: int = p.ChannelType.PUBLIC_THREAD,
    ) -> int:
        """A thread under a text channel; THREAD_CREATE (`newly_created`) is dispatched."""
        guild = self._guild_of_channel(parent_id)
        if guild is None:
            raise KeyError(f"no channel {parent_id}")
        tid = p.snowflake()
        guild.channels[tid] = p.thread(
            tid,
            name,
            guild_id=guild.id,
            parent_id=parent_id,
            owner_id=owner_id or self.bot_user_id,
            type=type,
        )
        self._channel_messages.setdefault(tid, [])
        self._dispatch_guild_event(
            guild, "THREAD_CREATE", {**guild.channels[tid], "newly_created": True}
        )
        return tid

    def delete_thread(self, thread_id: int) -> None:
        """Delete a thread: THREAD_DELETE carries only id, guild_id, parent_id and type."""
        guild = self._guild_of_channel(thread_id)
        if guild is None or not p.is_thread(guild.channels[thread_id]["type"]):
            raise KeyError(f"no thread {thread_id}")
        data = guild.channels.pop(thread_id)
        self.deleted_channels[thread_id] = data
        payload = {k: data[k] for k in ("id", "guild_id", "parent_id", "type")}
        self._dispatch_guild_event(guild, "THREAD_DELETE", payload)
        self._changed()

    def remove_bot_from_guild(self, guild_id: int) -> None:
        """The bot is kicked (or the guild deleted): GUILD_DELETE without `unavailable`; the
        guild's channels answer 403 Missing Access from then on."""
        guild = self._guild(guild_id)
        self._dispatch_guild_event(guild, "GUILD_DELETE", {"id": str(guild_id)})
        self.left_guilds[guild_id] = self.guilds.pop(guild_id)
        self._changed()

    def guild_outage(self, guild_id: int) -> None:
        """A Discord outage: GUILD_DELETE with `unavailable: true` (the bot is still in it)."""
        guild = self._guild(guild_id)
        self._dispatch_guild_event(
            guild, "GUILD_DELETE", {"id": str(guild_id), "unavailable": True}
        )

    def delete_channel(self, channel_id: int) -> None:
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                data = guild.channels.pop(channel_id)
                self.deleted_channels[channel_id] = data
                self._dispatch_guild_event(guild, "CHANNEL_DELETE", data)
                self._changed()
                return
        raise KeyError(f"no channel {channel_id}")

    def delete_message(self, message_id: int) -> None:
        """Delete a message as a moderator would (MESSAGE_DELETE is dispatched)."""
        self._delete(self.message(message_id))

    def expire_attachment_urls(self) -> None:
        """Discord's signed CDN links expire: every attachment URL handed out so far → 404."""
        for att in self._attachments.values():
            att.expired = True

    async def disconnect_gateway(self, *, code: int = 4000, resumable: bool = True) -> None:
        """Close every gateway connection with `code`. With `resumable=False` the sessions are
        invalidated too, so the client's RESUME gets INVALID_SESSION and it identifies anew."""
        for session in self._sessions.values():
            if not resumable:
                session.invalid = True
            session.conn = None
        for conn in list(self._conns):
            await conn.aclose(code)
        self._changed()

    def send_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client should reconnect and resume."""
        for conn in self._live_conns():
            conn.put(_dumps({"op": 7, "d": None, "s": None, "t": None}))

    def dispatch(self, event: str, data: Any, *, intent: int | None = None) -> None:
        """Send a DISPATCH event to every live session (buffered for RESUME when disconnected)."""
        for session in list(self._sessions.values()):
            if session.invalid:
                continue
            if intent is not None and not session.intents & intent:
                continue
            self._send_event(session, event, data)

    # ----- interactions (the "user" side) -----------------------------------------------

    async def send_slash_command(
        self,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        attachments: Mapping[str, FakeFile] | None = None,
        app_permissions: int | None = None,
        locale: str = "en-US",
        gateway_timeout: float = 5.0,
    ) -> FakeInteraction:
        """A member runs `/name` ("group sub" for subcommands) with `options` {name: value}.

        Values: str/int/float/bool; user, channel, role ids (int) for those option types;
        `FakeFile` for attachment options (or pass those in `attachments`). Options are typed
        from the registered command (strict mode: it must be registered, options must exist,
        required ones present, choices and bounds respected — what Discord's UI enforces).
        """
        guild = self._guild(guild_id)
        if channel_id not in guild.channels:
            raise KeyError(f"channel {channel_id} is not in guild {guild_id}")
        if user_id not in guild.members:
            raise KeyError(f"user {user_id} is not a member of guild {guild_id}")
        path = name.split()
        command, command_guild = self._find_command(path[0], guild_id)
        values = dict(options or {})
        values.update(attachments or {})
        schema: list[dict[str, Any]] | None = None
        if command is not None:
            schema = command.get("options") or []
            for sub in path[1:]:
                found = next((o for o in schema if o["name"] == sub), None)
                if found is None or found["type"] not in (1, 2):
                    raise LookupError(f"/{path[0]} has no subcommand {sub!r}")
                schema = found.get("options") or []
        elif self.strict_commands:
            registered = sorted(c["name"] for c in self.global_commands) + sorted(
                c["name"] for c in self.guild_commands.get(guild_id, [])
            )
            raise LookupError(
                f"/{path[0]} is not registered (sync the command tree first); "
                f"registered: {registered or 'none'}"
            )
        resolved: dict[str, dict[str, Any]] = {}
        opts = self._build_options(guild, name, schema, values, resolved)
        for depth in range(len(path) - 1, 0, -1):
            kind = (
                OptionType.SUB_COMMAND if depth == len(path) - 1 else OptionType.SUB_COMMAND_GROUP
            )
            opts = [p.command_option(path[depth], kind, options=opts)]
        inter = self._new_interaction(
            guild, channel_id, user_id, p.InteractionType.APPLICATION_COMMAND, name
        )
        member = guild.members[user_id]
        perms_in_channel = guild.channel_permissions(channel_id, user_id)
        inter.payload = p.slash_command_interaction(
            interaction_id=inter.id,
            application_id=self.application_id,
            token=inter.token,
            command_id=int(command["id"]) if command else p.snowflake(),
            name=path[0],
            channel_payload=p.interaction_channel(
                guild.channels[channel_id], permissions=perms_in_channel
            ),
            guild_id=guild_id,
            member_payload=member.payload(permissions=perms_in_channel),
            options=opts,
            resolved=resolved,
            command_guild_id=command_guild,
            app_permissions=self._app_permissions(guild, channel_id, app_permissions),
            attachment_size_limit=guild.upload_limit,
            locale=locale,
            guild_locale=guild.locale,
            guild_features=guild.features,
        )
        await self._dispatch_interaction(inter, gateway_timeout)
        return inter

    async def send_component(
        self,
        message: FakeMessage | int,
        custom_id: str,
        user_id: int,
        *,
        values: Sequence[str] | None = None,
        app_permissions: int | None = None,
        locale: str = "en-US",
        gateway_timeout: float = 5.0,
    ) -> FakeInteraction:
        """A member presses the button (or picks `values` in the select) `custom_id`."""
        msg = message if isinstance(message, FakeMessage) else self.message(message)
        if msg.deleted:
            raise LookupError(f"message {msg.id} was deleted")
        component = next(
            (c for c in _iter_components(msg.components) if c.get("custom_id") == custom_id), None
        )
        if component is None:
            raise LookupError(
                f"message {msg.id} has no component {custom_id!r} (has: {msg.custom_ids()})"
            )
        if component.get("disabled"):
            raise LookupError(f"component {custom_id!r} is disabled")
        if msg.guild_id is None:
            raise NotImplementedError("component interactions in DMs are not modelled")
        guild = self._guild(msg.guild_id)
        if user_id not in guild.members:
            raise KeyError(f"user {user_id} is not a member of guild {guild.id}")
        inter = self._new_interaction(
            guild, msg.channel_id, user_id, p.InteractionType.MESSAGE_COMPONENT, custom_id
        )
        inter.message_id = msg.id
        perms_in_channel = guild.channel_permissions(msg.channel_id, user_id)
        inter.payload = p.component_interaction(
            interaction_id=inter.id,
            application_id=self.application_id,
            token=inter.token,
            custom_id=custom_id,
            message_payload=msg.payload(),
            channel_payload=p.interaction_channel(
                guild.channels[msg.channel_id], permissions=perms_in_channel
            ),
            component_type=int(component.get("type", 2)),
            values=values if values is not None else (None if component.get("type") == 2 else []),
            guild_id=guild.id,
            member_payload=guild.members[user_id].payload(permissions=perms_in_channel),
            app_permissions=self._app_permissions(guild, msg.channel_id, app_permissions),
            attachment_size_limit=guild.upload_limit,
            locale=locale,
            guild_locale=guild.locale,
            guild_features=guild.features,
        )
        await self._dispatch_interaction(inter, gateway_timeout)
        return inter

    async def post_user_message(
        self,
        channel_id: int,
        user_id: int,
        content: str,
        *,
        files: Sequence[FakeFile] = (),
        webhook_id: int | None = None,
    ) -> FakeMessage:
        """A member (or bot user) writes in a channel (MESSAGE_CREATE is dispatched), with
        `files` attached (served like Discord's CDN links). With `webhook_id` the message is
        a webhook's post: its author is the webhook under `user_id`'s name (a bot user, no
        member), as Discord shows it."""
        guild = self._guild_of_channel(channel_id)
        author = self.users[user_id]
        if webhook_id is not None:
            author = p.user(webhook_id, str(author["username"]), bot=True)
        msg = FakeMessage(
            id=p.snowflake(),
            channel_id=channel_id,
            guild_id=guild.id if guild else None,
            author=author,
            webhook_id=webhook_id,
        )
        if content:
            self._apply(msg, {"content": content}, [], upload_limit=self.default_upload_limit)
        msg.attachments = [self._store_attachment(f, ephemeral=False) for f in files]
        self._store(msg)
        return msg

    async def send_message_command(
        self,
        message: FakeMessage | int,
        name: str,
        user_id: int,
        *,
        app_permissions: int | None = None,
        locale: str = "en-US",
        gateway_timeout: float = 5.0,
    ) -> FakeInteraction:
        """A member picks Apps → `name` on `message` (a registered type 3 command): type 2
        interaction with `data.type` 3, `data.target_id` and `data.resolved.messages`."""
        msg = message if isinstance(message, FakeMessage) else self.message(message)
        if msg.deleted:
            raise LookupError(f"message {msg.id} was deleted")
        if msg.guild_id is None:
            raise NotImplementedError("message commands in DMs are not modelled")
        guild = self._guild(msg.guild_id)
        if user_id not in guild.members:
            raise KeyError(f"user {user_id} is not a member of guild {guild.id}")
        command, command_guild = self._find_command(name, guild.id, type_=3)
        if command is None and self.strict_commands:
            raise LookupError(f"message command {name!r} is not registered (sync the tree first)")
        inter = self._new_interaction(
            guild, msg.channel_id, user_id, p.InteractionType.APPLICATION_COMMAND, name
        )
        inter.command_type = 3
        perms_in_channel = guild.channel_permissions(msg.channel_id, user_id)
        inter.payload = p.slash_command_interaction(
            interaction_id=inter.id,
            application_id=self.application_id,
            token=inter.token,
            command_id=int(command["id"]) if command else p.snowflake(),
            name=name,
            channel_payload=p.interaction_channel(
                guild.channels[msg.channel_id], permissions=perms_in_channel
            ),
            guild_id=guild.id,
            member_payload=guild.members[user_id].payload(permissions=perms_in_channel),
            resolved={"messages": {str(msg.id): msg.payload()}},
            command_guild_id=command_guild,
            command_type=3,
            target_id=msg.id,
            app_permissions=self._app_permissions(guild, msg.channel_id, app_permissions),
            attachment_size_limit=guild.upload_limit,
            locale=locale,
            guild_locale=guild.locale,
            guild_features=guild.features,
        )
        await self._dispatch_interaction(inter, gateway_timeout)
        return inter

    async def send_modal_submit(
        self,
        opened_by: FakeInteraction,
        values: Mapping[str, str] | None = None,
        *,
        app_permissions: int | None = None,
        locale: str = "en-US",
        gateway_timeout: float = 5.0,
    ) -> FakeInteraction:
        """The member submits the modal the bot answered `opened_by` with. `values` by text
        input label or custom_id; an input left out keeps its prefilled value. Discord's
        client enforces `required`, `min_length` and `max_length`, so this does too."""
        modal = opened_by.modal
        if modal is None or modal.data is None:
            raise LookupError(f"{opened_by.name!r} was not answered with a modal")
        given = dict(values or {})
        components: list[dict[str, Any]] = []
        for row in modal.data.get("components") or []:
            if row.get("type") == 18:  # a label around one component
                inner = row.get("component") or {}
                value = self._modal_value(inner, str(row.get("label", "")), given)
                components.append(
                    {
                        "type": 18,
                        "component": {"type": 4, "custom_id": inner["custom_id"], "value": value},
                    }
                )
                continue
            inputs = []
            for comp in row.get("components") or []:
                value = self._modal_value(comp, str(comp.get("label", "")), given)
                inputs.append({"type": 4, "custom_id": comp["custom_id"], "value": value})
            components.append({"type": 1, "components": inputs})
        if given:
            raise LookupError(f"the modal has no text input(s) {sorted(given)}")
        guild = self._guild(opened_by.guild_id or 0)
        custom_id = str(modal.data["custom_id"])
        inter = self._new_interaction(
            guild,
            opened_by.channel_id,
            opened_by.user_id,
            p.InteractionType.MODAL_SUBMIT,
            custom_id,
        )
        inter.message_id = opened_by.message_id
        perms_in_channel = guild.channel_permissions(opened_by.channel_id, opened_by.user_id)
        source = self.message(opened_by.message_id) if opened_by.message_id else None
        inter.payload = p.modal_submit_interaction(
            interaction_id=inter.id,
            application_id=self.application_id,
            token=inter.token,
            custom_id=custom_id,
            components=components,
            channel_payload=p.interaction_channel(
                guild.channels[opened_by.channel_id], permissions=perms_in_channel
            ),
            guild_id=guild.id,
            member_payload=guild.members[opened_by.user_id].payload(permissions=perms_in_channel),
            message_payload=source.payload() if source else None,
            app_permissions=self._app_permissions(guild, opened_by.channel_id, app_permissions),
            attachment_size_limit=guild.upload_limit,
            locale=locale,
            guild_locale=guild.locale,
            guild_features=guild.features,
        )
        await self._dispatch_interaction(inter, gateway_timeout)
        return inter

    @staticmethod
    def _modal_value(component: Mapping[str, Any], label: str, given: dict[str, str]) -> str:
        custom_id = str(component.get("custom_id", ""))
        if custom_id in given:
            value = given.pop(custom_id)
        elif label in given:
            value = given.pop(label)
        else:
            value = str(component.get("value") or "")
        where = f"modal input {label or custom_id!r}"
        if component.get("required", True) and not value:
            raise ValueError(f"{where} is required")
        if value and len(value) < int(component.get("min_length") or 0):
            raise ValueError(f"{where}: at least {component['min_length']} characters")
        if len(value) > int(component.get("max_length") or 4000):
            raise ValueError(f"{where}: at most {component.get('max_length', 4000)} characters")
        return value

    def _new_interaction(
        self, guild: FakeGuild, channel_id: int, user_id: int, type_: int, name: str
    ) -> FakeInteraction:
        inter = FakeInteraction(
            id=p.snowflake(),
            token="aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48),
            type=type_,
            guild_id=guild.id,
            channel_id=channel_id,
            user_id=user_id,
            name=name,
            payload={},
            created_at=time.monotonic(),
            fake=self,
        )
        self.interactions[inter.id] = inter
        self._by_token[inter.token] = inter
        return inter

    async def _dispatch_interaction(self, inter: FakeInteraction, gateway_timeout: float) -> None:
        if not any(not s.invalid for s in self._sessions.values()):
            await self.wait_for_gateway(gateway_timeout)
        inter.created_at = time.monotonic()
        for session in list(self._sessions.values()):
            if not session.invalid and session.owns(inter.guild_id):
                self._send_event(session, "INTERACTION_CREATE", inter.payload, interaction=inter)
        self._changed()

    def _app_permissions(self, guild: FakeGuild, channel_id: int, override: int | None) -> int:
        if override is not None:
            return override
        return guild.channel_permissions(channel_id, self.bot_user_id)

    def _find_command(
        self, name: str, guild_id: int, type_: int = 1
    ) -> tuple[dict[str, Any] | None, int | None]:
        for cmd in self.guild_commands.get(guild_id, []):
            if cmd["name"] == name and cmd.get("type", 1) == type_:
                return cmd, guild_id
        for cmd in self.global_commands:
            if cmd["name"] == name and cmd.get("type", 1) == type_:
                return cmd, None
        return None, None

    def _build_options(
        self,
        guild: FakeGuild,
        command: str,
        schema: list[dict[str, Any]] | None,
        values: Mapping[str, Any],
        resolved: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in schema} if schema is not None else None
        if by_name is not None:
            missing = [
                o["name"] for o in by_name.values() if o.get("required") and o["name"] not in values
            ]
            if missing:
                raise ValueError(f"/{command}: required option(s) missing: {', '.join(missing)}")
        out: list[dict[str, Any]] = []
        for name, value in values.items():
            if by_name is not None:
                if name not in by_name:
                    raise ValueError(f"/{command} has no option {name!r} (has: {sorted(by_name)})")
                spec: Mapping[str, Any] = by_name[name]
                otype = int(spec["type"])
            else:
                spec = {}
                otype = self._infer_type(value)
            out.append(
                p.command_option(
                    name,
                    otype,
                    self._option_value(guild, command, name, otype, spec, value, resolved),
                )
            )
        return out

    @staticmethod
    def _infer_type(value: Any) -> int:
        if isinstance(value, FakeFile):
            return OptionType.ATTACHMENT
        if isinstance(value, bool):
            return OptionType.BOOLEAN
        if isinstance(value, int):
            return OptionType.INTEGER
        if isinstance(value, float):
            return OptionType.NUMBER
        return OptionType.STRING

    def _option_value(
        self,
        guild: FakeGuild,
        command: str,
        name: str,
        otype: int,
        spec: Mapping[str, Any],
        value: Any,
        resolved: dict[str, dict[str, Any]],
    ) -> Any:
        where = f"/{command} {name}"
        if otype == OptionType.ATTACHMENT:
            if not isinstance(value, FakeFile):
                raise TypeError(f"{where}: attachment options take a FakeFile")
            att = self._store_attachment(value, ephemeral=True)
            resolved.setdefault("attachments", {})[str(att.id)] = att.payload()
            return str(att.id)
        if otype in (OptionType.USER, OptionType.MENTIONABLE) and int(value) in self.users:
            uid = int(value)
            resolved.setdefault("users", {})[str(uid)] = self.users[uid]
            if uid in guild.members:
                resolved.setdefault("members", {})[str(uid)] = guild.members[uid].payload(
                    with_user=False, permissions=guild.base_permissions(uid)
                )
            return str(uid)
        if otype in (OptionType.ROLE, OptionType.MENTIONABLE):
            if int(value) not in guild.roles:
                raise KeyError(f"{where}: no role or user {value} in guild {guild.id}")
            resolved.setdefault("roles", {})[str(value)] = guild.roles[int(value)]
            return str(value)
        if otype == OptionType.USER:
            raise KeyError(f"{where}: no user {value}")
        if otype == OptionType.CHANNEL:
            channel = guild.channels.get(int(value))
            if channel is None:
                raise KeyError(f"{where}: no channel {value} in guild {guild.id}")
            types = spec.get("channel_types")
            if types and channel["type"] not in types:
                raise ValueError(f"{where}: channel type {channel['type']} not in {types}")
            partial = {
                k: channel[k]
                for k in ("id", "name", "type", "parent_id", "guild_id")
                if k in channel
            }
            partial["permissions"] = str(guild.channel_permissions(int(value), self.bot_user_id))
            resolved.setdefault("channels", {})[str(value)] = partial
            return str(value)
        checks: list[tuple[bool, str]] = []
        if otype == OptionType.STRING:
            checks.append((isinstance(value, str), "must be a string"))
            if isinstance(value, str):
                checks.append((len(value) <= int(spec.get("max_length", 6000)), "is too long"))
                checks.append((len(value) >= int(spec.get("min_length", 0)), "is too short"))
        elif otype in (OptionType.INTEGER, OptionType.NUMBER):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if otype == OptionType.INTEGER:
                ok = ok and isinstance(value, int)
            checks.append(
                (ok, "must be a number" if otype == OptionType.NUMBER else "must be an integer")
            )
            if ok:
                if "min_value" in spec:
                    checks.append((value >= spec["min_value"], f"must be ≥ {spec['min_value']}"))
                if "max_value" in spec:
                    checks.append((value <= spec["max_value"], f"must be ≤ {spec['max_value']}"))
        elif otype == OptionType.BOOLEAN:
            checks.append((isinstance(value, bool), "must be a boolean"))
        choices = spec.get("choices")
        if choices:
            checks.append(
                (
                    value in [c["value"] for c in choices],
                    f"must be one of {[c['value'] for c in choices]}",
                )
            )
        for ok, problem in checks:
            if not ok:
                raise ValueError(f"{where}={value!r} {problem}")
        return value

    def _store_attachment(
        self, file: FakeFile | RecordedPart, *, ephemeral: bool, description: str | None = None
    ) -> StoredAttachment:
        aid = p.snowflake()
        filename = file.filename or "file"
        now = int(time.time())
        query = f"ex={now + 86400:x}&is={now:x}&hm={secrets.token_hex(32)}"
        url = f"{self.base_url}/attachments/{aid}/{quote(filename)}?{query}"
        content_type = file.content_type
        if isinstance(file, FakeFile):
            description = description or file.description
        width, height = _image_size(file.data, content_type)
        att = StoredAttachment(
            id=aid,
            filename=filename,
            data=bytes(file.data),
            url=url,
            content_type=content_type,
            description=description,
            width=width,
            height=height,
            ephemeral=ephemeral,
        )
        self._attachments[aid] = att
        return att

    # ----- gateway ----------------------------------------------------------------------

    def _live_conns(self) -> list[_Conn]:
        return [s.conn for s in self._sessions.values() if s.conn is not None and not s.invalid]

    def _send_event(
        self,
        session: _Session,
        event: str,
        data: Any,
        *,
        interaction: FakeInteraction | None = None,
    ) -> None:
        session.seq += 1
        text = _dumps({"op": 0, "t": event, "s": session.seq, "d": data})
        session.buffer.append(_Event(session.seq, text, interaction))
        if session.conn is not None:
            session.conn.put(text, interaction)

    def _dispatch_guild_event(
        self, guild: FakeGuild, event: str, data: Any, *, intent: int = INTENT_GUILDS
    ) -> None:
        for session in list(self._sessions.values()):
            if session.invalid or not session.intents & intent or not session.owns(guild.id):
                continue
            if event == "GUILD_CREATE":
                self._send_event(session, event, self._guild_create(guild, session.intents))
            else:
                self._send_event(session, event, data)

    def _guild_create(self, guild: FakeGuild, intents: int) -> dict[str, Any]:
        include = None if intents & INTENT_GUILD_MEMBERS else [self.bot_user_id]
        return guild.payload(gateway=True, include_members=include)

    async def _handle_gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        record_index = len(self.gateway_connections)
        self.gateway_connections.append(
            GatewayConnection(request.path, dict(request.query), time.monotonic())
        )
        conn = _Conn(ws, request.query.get("compress"))
        self._conns.add(conn)
        try:
            if request.query.get("v") != "10":
                await conn.aclose(4012)  # Invalid API version
                return ws
            if request.query.get("encoding", "json") != "json":
                await conn.aclose(4002)  # Decode error
                return ws
            conn.put(
                _dumps(
                    {
                        "op": 10,
                        "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                        "s": None,
                        "t": None,
                    }
                )
            )
            while True:
                msg = await ws.receive()
                if msg.type == WSMsgType.CLOSE:
                    conn.client_close_code = msg.data
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    frame = json.loads(msg.data)
                    op = frame["op"]
                except (ValueError, KeyError, TypeError):
                    await conn.aclose(4002)
                    break
                if not await self._gateway_op(conn, op, frame.get("d"), record_index):
                    break
        finally:
            self._conns.discard(conn)
            if conn.session is not None:
                if not conn.closed_by_server and conn.client_close_code in (1000, 1001):
                    conn.session.invalid = True  # a clean close ends the session: no RESUME
                if conn.session.conn is conn:
                    conn.session.conn = None
            await conn.aclose(WSCloseCode.GOING_AWAY)
            self._changed()
        return ws

    async def _gateway_op(self, conn: _Conn, op: int, d: Any, record_index: int) -> bool:
        """Handle one client frame; False when the connection was closed."""
        if op == 1:  # HEARTBEAT
            self.heartbeats += 1
            conn.put(_dumps({"op": 11, "d": None, "s": None, "t": None}))
            return True
        if op == 2:  # IDENTIFY
            if conn.session is not None:
                await conn.aclose(4005)  # Already authenticated
                return False
            if not isinstance(d, dict) or d.get("token") != self.token:
                await conn.aclose(4004)  # Authentication failed
                return False
            intents = d.get("intents")
            if not isinstance(intents, int):
                await conn.aclose(4013)  # Invalid intent(s)
                return False
            if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
                await conn.aclose(4014)  # Disallowed intent(s)
                return False
            self._record_kind(record_index, "identify")
            session = _Session(secrets.token_hex(16), intents, d.get("shard"))
            self._sessions[session.session_id] = session
            conn.session = session
            session.conn = conn
            ready: dict[str, Any] = {
                "v": 10,
                "user": dict(self.bot_user),
                "guilds": [
                    {"id": str(gid), "unavailable": True}
                    for gid in self.guilds
                    if session.owns(gid)
                ],
                "session_id": session.session_id,
                "session_type": "normal",
                "resume_gateway_url": self.resume_gateway_url,
                "application": {"id": str(self.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "guild_join_requests": [],
                "geo_ordered_rtc_regions": ["rotterdam"],
                "user_settings": {},
                "auth": {},
                "_trace": ['["fake-discord-gateway",{"micros":1}]'],
            }
            if session.shard is not None:
                ready["shard"] = session.shard
            self._send_event(session, "READY", ready)
            for guild in self.guilds.values():
                if session.owns(guild.id):
                    self._send_event(session, "GUILD_CREATE", self._guild_create(guild, intents))
            self._changed()
            return True
        if op == 6:  # RESUME
            if conn.session is not None:
                await conn.aclose(4005)
                return False
            d = d if isinstance(d, dict) else {}
            session = self._sessions.get(str(d.get("session_id")))
            if session is None or session.invalid or d.get("token") != self.token:
                self._record_kind(record_index, "invalid-resume")
                conn.put(_dumps({"op": 9, "d": False, "s": None, "t": None}))
                return True
            self._record_kind(record_index, "resume")
            if session.conn is not None and session.conn is not conn:
                await session.conn.aclose(4000)
            last = int(d.get("seq") or 0)
            for event in session.buffer:
                if event.seq > last:
                    conn.put(event.text, event.interaction)
            conn.session = session
            session.conn = conn
            self._send_event(
                session, "RESUMED", {"_trace": ['["fake-discord-gateway",{"micros":1}]']}
            )
            self._changed()
            return True
        if conn.session is None:
            await conn.aclose(4003)  # Not authenticated
            return False
        if op == 3:  # PRESENCE_UPDATE
            self.presence = d
            return True
        if op == 4:  # VOICE_STATE_UPDATE: not modelled
            return True
        if op == 8:  # REQUEST_GUILD_MEMBERS
            self._members_chunk(conn.session, d if isinstance(d, dict) else {})
            return True
        await conn.aclose(4001)  # Unknown opcode
        return False

    def _record_kind(self, index: int, kind: str) -> None:
        old = self.gateway_connections[index]
        self.gateway_connections[index] = GatewayConnection(old.path, old.query, old.at, kind)

    def _members_chunk(self, session: _Session, d: Mapping[str, Any]) -> None:
        guild = self.guilds.get(int(d.get("guild_id") or 0))
        if guild is None:
            return
        query = str(d.get("query") or "")
        user_ids = {int(u) for u in (d.get("user_ids") or [])}
        limit = int(d.get("limit") or 0)
        members = [
            m.payload()
            for m in guild.members.values()
            if (not user_ids or m.id in user_ids) and str(m.user["username"]).startswith(query)
        ]
        if limit:
            members = members[:limit]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        self._send_event(session, "GUILD_MEMBERS_CHUNK", chunk)

    # ----- REST plumbing ----------------------------------------------------------------

    def _build_routes(self) -> None:
        r = self._route
        r("GET", "/gateway", self._get_gateway, auth=False)
        r("GET", "/gateway/bot", self._get_gateway_bot)
        r("GET", "/users/@me", self._get_me)
        r("GET", "/users/{user_id}", self._get_user)
        r("POST", "/users/@me/channels", self._create_dm)
        r("GET", "/oauth2/applications/@me", self._get_application)
        r("GET", "/applications/@me", self._get_application)
        r("GET", "/applications/{app_id}/commands", self._get_commands)
        r("PUT", "/applications/{app_id}/commands", self._put_commands)
        r("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self._get_commands)
        r("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self._put_commands)
        r("POST", "/interactions/{interaction_id}/{token}/callback", self._callback, auth=False)
        r("POST", "/webhooks/{app_id}/{token}", self._followup, auth=False)
        r("GET", "/webhooks/{app_id}/{token}/messages/{message_id}", self._webhook_get, auth=False)
        r(
            "PATCH",
            "/webhooks/{app_id}/{token}/messages/{message_id}",
            self._webhook_edit,
            auth=False,
        )
        r(
            "DELETE",
            "/webhooks/{app_id}/{token}/messages/{message_id}",
            self._webhook_delete,
            auth=False,
        )
        r("GET", "/channels/{channel_id}", self._get_channel)
        r("GET", "/channels/{channel_id}/messages", self._list_messages)
        r("POST", "/channels/{channel_id}/messages", self._create_message)
        r("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message)
        r("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message)
        r("POST", "/channels/{channel_id}/typing", self._typing)
        r("GET", "/guilds/{guild_id}", self._get_guild)
        r("GET", "/guilds/{guild_id}/channels", self._get_guild_channels)
        r("GET", "/guilds/{guild_id}/roles", self._get_guild_roles)
        r("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member)

    def _route(self, method: str, template: str, handler: Handler, *, auth: bool = True) -> None:
        pattern = re.sub(
            r"\{(\w+)\}",
            r"(?P<\1>[^/]+)",
            re.escape(template).replace(r"\{", "{").replace(r"\}", "}"),
        )
        self._routes.append(
            (method, re.compile(f"^{pattern}$"), f"{method} {template}", handler, auth)
        )

    def _match(self, method: str, path: str) -> tuple[str, Handler, bool, dict[str, str]] | None:
        for m, regex, name, handler, auth in self._routes:
            if m == method:
                found = regex.match(path)
                if found:
                    return name, handler, auth, found.groupdict()
        return None

    async def _record(self, request: web.Request, path: str) -> RecordedRequest:
        ctype = request.headers.get("Content-Type")
        body: Any = None
        parts: list[RecordedPart] = []
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not hasattr(part, "filename"):  # a nested multipart: not used by Discord
                    continue
                data = bytes(await part.read())
                parts.append(
                    RecordedPart(
                        name=part.name or "",
                        data=data,
                        filename=part.filename,
                        content_type=part.headers.get("Content-Type"),
                    )
                )
            payload_part = next((x for x in parts if x.name == "payload_json"), None)
            if payload_part is not None:
                body = payload_part.json()
        elif request.can_read_body:
            raw = await request.read()
            if raw and request.content_type == _JSON:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
        rec = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            parts=parts,
            at=time.monotonic(),
            authorized=request.headers.get("Authorization") == f"Bot {self.token}",
            content_type=ctype,
        )
        self.requests.append(rec)
        return rec

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        rec = await self._record(request, path)
        matched = self._match(request.method, path)
        if matched is not None:
            rec.route = matched[0]
        try:
            fault = next((f for f in self.faults if f.matches(rec)), None)
            if fault is not None and not fault.after_commit:
                fault.hits.append(rec)
                response: web.StreamResponse = _json_response(
                    fault.status, fault.body, fault.headers
                )
            elif matched is None:
                raise ApiError(404, 0, "404: Not Found")
            else:
                _, handler, auth, params = matched
                if auth and not rec.authorized:
                    raise _err(UNAUTHORIZED)
                response = await handler(rec, **params)
                if fault is not None:  # after_commit: done, but the answer is lost
                    fault.hits.append(rec)
                    if fault.status == 0:
                        rec.status = 0
                        self._changed()
                        if request.transport is not None:
                            request.transport.abort()
                        raise ConnectionResetError("fake: answer lost")
                    response = _json_response(fault.status, fault.body, fault.headers)
        except ApiError as exc:
            response = exc.response()
        rec.status = response.status
        if (
            isinstance(response, web.Response)
            and response.body is not None
            and response.content_type == _JSON
        ):
            rec.response = json.loads(bytes(response.body))
        self._changed()
        return response

    async def _handle_attachment(self, request: web.Request) -> web.StreamResponse:
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            json=None,
            parts=[],
            at=time.monotonic(),
            authorized=False,
            route="GET /attachments/{attachment_id}/{filename}",
        )
        self.requests.append(rec)
        raw_id = request.match_info["attachment_id"]
        att = self._attachments.get(int(raw_id)) if raw_id.isdigit() else None
        if att is None or att.expired or att.filename != request.match_info["filename"]:
            response = web.Response(status=404, text="This content is no longer available.")
        else:
            response = web.Response(
                body=att.data,
                headers={"Content-Type": att.content_type or "application/octet-stream"},
            )
        rec.status = response.status
        self._changed()
        return response

    # ----- REST: identity, gateway, application -----------------------------------------

    async def _get_gateway(self, rec: RecordedRequest) -> web.Response:
        return _json_response(200, {"url": self.gateway_url})

    async def _get_gateway_bot(self, rec: RecordedRequest) -> web.Response:
        return _json_response(
            200,
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            },
        )

    async def _get_me(self, rec: RecordedRequest) -> web.Response:
        return _json_response(200, self.bot_user)

    async def _get_user(self, rec: RecordedRequest, user_id: str) -> web.Response:
        user = self.users.get(int(user_id)) if user_id.isdigit() else None
        if user is None:
            raise _err(UNKNOWN_USER)
        return _json_response(200, user)

    async def _get_application(self, rec: RecordedRequest) -> web.Response:
        return _json_response(
            200,
            p.application(
                self.application_id, self.bot_user["username"], owner=self._owner, bot=self.bot_user
            ),
        )

    def _check_app(self, app_id: str) -> None:
        if app_id != str(self.application_id):
            raise _err(MISSING_ACCESS)

    def _command_scope(self, guild_id: str | None) -> tuple[str, list[dict[str, Any]]]:
        if guild_id is None:
            return "global", self.global_commands
        guild = self.guilds.get(int(guild_id)) if guild_id.isdigit() else None
        if guild is None:
            raise _err(MISSING_ACCESS)
        return guild_id, self.guild_commands.setdefault(guild.id, [])

    async def _get_commands(
        self, rec: RecordedRequest, app_id: str, guild_id: str | None = None
    ) -> web.Response:
        self._check_app(app_id)
        _, stored = self._command_scope(guild_id)
        return _json_response(200, stored)

    async def _put_commands(
        self, rec: RecordedRequest, app_id: str, guild_id: str | None = None
    ) -> web.Response:
        self._check_app(app_id)
        scope, stored = self._command_scope(guild_id)
        body = rec.json
        if not isinstance(body, list):
            raise _form_error(
                p.field_error(
                    ["_root"], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"
                )
            )
        errors = validate_commands(body)
        if errors:
            raise _form_error(errors)
        existing = {(c.get("type", 1), c["name"]): c for c in stored}
        result: list[dict[str, Any]] = []
        for cmd in body:
            ctype = int(cmd.get("type", 1))
            perms = cmd.get("default_member_permissions")
            old = existing.get((ctype, cmd["name"]))
            if old is None:
                self.command_creates[scope] = self.command_creates.get(scope, 0) + 1
            entry: dict[str, Any] = {
                "id": old["id"] if old else str(p.snowflake()),
                "application_id": str(self.application_id),
                "version": str(p.snowflake()),
                "type": ctype,
                "name": cmd["name"],
                "name_localizations": cmd.get("name_localizations"),
                "description": cmd.get("description", ""),
                "description_localizations": cmd.get("description_localizations"),
                "default_member_permissions": (
                    None if perms is None else str(perms)  # Discord answers with a string
                ),
                "nsfw": bool(cmd.get("nsfw", False)),
                "contexts": cmd.get("contexts"),
                "integration_types": cmd.get("integration_types") or [0],
                "options": cmd.get("options") or [],
            }
            if guild_id is not None:
                entry["guild_id"] = guild_id
            else:
                entry["dm_permission"] = cmd.get("dm_permission", True)
            result.append(entry)
        stored[:] = result
        return _json_response(200, result)

    # ----- REST: messages (shared by channels, interactions and webhooks) ---------------

    def _files(self, rec: RecordedRequest) -> dict[int, RecordedPart]:
        files: dict[int, RecordedPart] = {}
        counter = 0
        for part in rec.files:
            found = re.fullmatch(r"files\[(\d+)\]", part.name)
            index = int(found.group(1)) if found else counter
            files[index] = part
            counter = max(counter, index) + 1
        return files

    def _apply(
        self,
        msg: FakeMessage,
        payload: Mapping[str, Any],
        files: Sequence[tuple[int, RecordedPart]],
        *,
        upload_limit: int,
        creating: bool = True,
        allow_ephemeral: bool = False,
    ) -> None:
        """Validate `payload` (+ uploaded files) and apply it to `msg` (a new one or an edit)."""
        errors = validate_message_payload(payload, files=len(files))
        if errors:
            raise _form_error(errors)
        for _, part in files:
            if len(part.data) > upload_limit:
                raise ApiError(413, 40005, "Request entity too large")
        if creating and _is_empty(payload, len(files)):
            raise ApiError(400, 50006, "Cannot send an empty message")
        by_index = dict(files)
        entries = payload.get("attachments")
        if entries is not None or by_index:
            # v10: `attachments` lists all the message keeps (existing ids) and the new
            # uploads (`id` = the n of `files[n]`); without it, existing ones are kept.
            if entries is None:
                entries = [{"id": a.id} for a in msg.attachments] + [{"id": i} for i in by_index]
            current = {a.id: a for a in msg.attachments}
            keep: list[StoredAttachment] = []
            used: set[int] = set()
            for n, entry in enumerate(entries):
                aid = int(entry["id"])
                if aid in current:
                    keep.append(current[aid])
                elif aid in by_index:
                    used.add(aid)
                    part = by_index[aid]
                    if entry.get("filename"):
                        part = RecordedPart(
                            part.name, part.data, str(entry["filename"]), part.content_type
                        )
                    description = entry.get("description")
                    keep.append(
                        self._store_attachment(part, ephemeral=False, description=description)
                    )
                else:
                    raise _form_error(
                        p.field_error(
                            ["attachments", n, "id"], "ATTACHMENT_NOT_FOUND", "Unknown attachment"
                        )
                    )
            keep += [
                self._store_attachment(part, ephemeral=False)
                for index, part in by_index.items()
                if index not in used
            ]
            msg.attachments = keep
        if "content" in payload:
            msg.content = payload["content"] or ""
        if "embeds" in payload:
            msg.embeds = list(payload["embeds"] or [])
        if "components" in payload:
            msg.components = list(payload["components"] or [])
        if "flags" in payload and payload["flags"] is not None:
            requested = int(payload["flags"])
            keep_flags = msg.flags & (MessageFlags.EPHEMERAL | MessageFlags.LOADING)
            if creating and allow_ephemeral:
                keep_flags |= requested & MessageFlags.EPHEMERAL
            msg.flags = keep_flags | (requested & ~(MessageFlags.EPHEMERAL | MessageFlags.LOADING))
        if "allowed_mentions" in payload:
            msg.allowed_mentions = payload["allowed_mentions"]
        if creating:
            msg.tts = bool(payload.get("tts", False))
            if payload.get("message_reference"):
                msg.message_reference = dict(payload["message_reference"])
        else:
            msg.edited_at = datetime.now(UTC)
        msg.history.append(dict(payload))
        self._compute_mentions(msg)

    def _compute_mentions(self, msg: FakeMessage) -> None:
        allowed = msg.allowed_mentions
        if allowed is None:
            parse = {"users", "roles", "everyone"}
            allowed_users: set[int] = set()
            allowed_roles: set[int] = set()
            replied_user = True
        else:
            parse = set(allowed.get("parse") or [])
            allowed_users = {int(u) for u in allowed.get("users") or []}
            allowed_roles = {int(r) for r in allowed.get("roles") or []}
            replied_user = bool(allowed.get("replied_user", False))
        users = [int(u) for u in _MENTION_USER.findall(msg.content)]
        roles = [int(r) for r in _MENTION_ROLE.findall(msg.content)]
        pinged_users = {u for u in users if "users" in parse or u in allowed_users}
        pinged_roles = {r for r in roles if "roles" in parse or r in allowed_roles}
        everyone = ("@everyone" in msg.content or "@here" in msg.content) and "everyone" in parse
        ref = msg.message_reference
        if ref and replied_user and ref.get("message_id"):
            referenced = self._messages.get(int(ref["message_id"]))
            if referenced is not None:
                pinged_users.add(referenced.author_id)
        msg.mentions = [self.users[u] for u in users if u in self.users]
        msg.mention_roles = roles
        msg.mention_everyone = everyone
        msg.pinged_user_ids |= pinged_users
        msg.pinged_role_ids |= pinged_roles
        msg.pinged_everyone = msg.pinged_everyone or everyone

    def _store(self, msg: FakeMessage) -> None:
        self._messages[msg.id] = msg
        self._channel_messages.setdefault(msg.channel_id, []).append(msg)
        self._message_event("MESSAGE_CREATE", msg)
        self._changed()

    def _message_event(self, event: str, msg: FakeMessage) -> None:
        if msg.ephemeral:
            return  # ephemeral messages never reach the gateway
        intent = INTENT_GUILD_MESSAGES if msg.guild_id else INTENT_DIRECT_MESSAGES
        if event == "MESSAGE_DELETE":
            data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id:
                data["guild_id"] = str(msg.guild_id)
            self.dispatch(event, data, intent=intent)
            return
        for session in list(self._sessions.values()):
            if session.invalid or not session.intents & intent or not session.owns(msg.guild_id):
                continue
            data = msg.payload()
            if event == "MESSAGE_CREATE" and msg.nonce is not None:
                data["nonce"] = msg.nonce
            if (
                msg.author_id != self.bot_user_id
                and not session.intents & INTENT_MESSAGE_CONTENT
                and self.bot_user_id not in msg.pinged_user_ids
            ):
                data.update(content="", embeds=[], attachments=[], components=[])
            if msg.guild_id and msg.guild_id in self.guilds:
                member = self.guilds[msg.guild_id].members.get(msg.author_id)
                if member is not None:
                    data["member"] = member.payload(with_user=False)
            self._send_event(session, event, data)

    def _delete(self, msg: FakeMessage) -> None:
        if msg.deleted:
            raise _err(UNKNOWN_MESSAGE)
        msg.deleted = True
        self._message_event("MESSAGE_DELETE", msg)
        self._changed()

    def _guild(self, guild_id: int) -> FakeGuild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise KeyError(f"no guild {guild_id}") from None

    def _guild_of_channel(self, channel_id: int) -> FakeGuild | None:
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild
        return None

    def _channel(self, channel_id: str) -> tuple[dict[str, Any], FakeGuild | None]:
        cid = int(channel_id) if channel_id.isdigit() else -1
        guild = self._guild_of_channel(cid)
        if guild is not None:
            return guild.channels[cid], guild
        if cid in self.dm_channels:
            return self.dm_channels[cid], None
        if any(cid in g.channels for g in self.left_guilds.values()):
            raise _err(MISSING_ACCESS)
        raise _err(UNKNOWN_CHANNEL)

    def _require(self, guild: FakeGuild | None, channel_id: int, needed: int) -> None:
        if guild is None:
            return
        perms = guild.channel_permissions(channel_id, self.bot_user_id)
        if not perms & Permissions.VIEW_CHANNEL:
            raise _err(MISSING_ACCESS)
        if perms & needed != needed:
            raise _err(MISSING_PERMISSIONS)

    def _channel_message(
        self, channel_id: str, message_id: str
    ) -> tuple[FakeMessage, FakeGuild | None]:
        channel, guild = self._channel(channel_id)
        msg = self._messages.get(int(message_id)) if message_id.isdigit() else None
        if msg is None or msg.deleted or msg.ephemeral or msg.channel_id != int(channel["id"]):
            raise _err(UNKNOWN_MESSAGE)
        return msg, guild

    # ----- REST: channels, guilds, members ----------------------------------------------

    async def _get_channel(self, rec: RecordedRequest, channel_id: str) -> web.Response:
        channel, guild = self._channel(channel_id)
        self._require(guild, int(channel["id"]), 0)
        return _json_response(200, channel)

    async def _typing(self, rec: RecordedRequest, channel_id: str) -> web.Response:
        channel, guild = self._channel(channel_id)
        self._require(guild, int(channel["id"]), Permissions.SEND_MESSAGES)
        return web.Response(status=204)

    async def _list_messages(self, rec: RecordedRequest, channel_id: str) -> web.Response:
        channel, guild = self._channel(channel_id)
        self._require(guild, int(channel["id"]), Permissions.READ_MESSAGE_HISTORY)
        limit = max(1, min(100, int(rec.query.get("limit", "50"))))
        msgs = self.messages(int(channel["id"]), include_ephemeral=False)
        if "before" in rec.query:
            msgs = [m for m in msgs if m.id < int(rec.query["before"])]
        if "after" in rec.query:
            msgs = [m for m in msgs if m.id > int(rec.query["after"])]
            msgs = msgs[:limit]
        msgs = sorted(msgs, key=lambda m: m.id, reverse=True)[:limit]
        return _json_response(200, [m.payload() for m in msgs])

    async def _create_message(self, rec: RecordedRequest, channel_id: str) -> web.Response:
        channel, guild = self._channel(channel_id)
        cid = int(channel["id"])
        payload = rec.json if isinstance(rec.json, dict) else {}
        files = sorted(self._files(rec).items())
        needed = Permissions.SEND_MESSAGES | (Permissions.ATTACH_FILES if files else 0)
        self._require(guild, cid, needed)
        nonce = payload.get("nonce")
        if nonce is not None:
            if not isinstance(nonce, (str, int)) or len(str(nonce)) > 25:
                raise _form_error(
                    p.field_error(
                        ["nonce"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                    )
                )
            nonce = str(nonce)
            if payload.get("enforce_nonce"):
                earlier = self._nonce_message(cid, self.bot_user_id, nonce)
                if earlier is not None:  # Discord: returned, and no new message created
                    return _json_response(200, {**earlier.payload(), "nonce": nonce})
        msg = FakeMessage(
            id=p.snowflake(),
            channel_id=cid,
            guild_id=guild.id if guild else None,
            author=dict(self.bot_user),
            nonce=nonce,
        )
        ref = payload.get("message_reference")
        if ref:
            target = self._messages.get(int(ref.get("message_id", 0)))
            if (target is None or target.deleted) and ref.get("fail_if_not_exists", True):
                raise _form_error(
                    p.field_error(
                        ["message_reference"],
                        "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                        "Unknown message",
                    )
                )
            msg.type = 19
        self._apply(
            msg,
            payload,
            files,
            upload_limit=guild.upload_limit if guild else self.default_upload_limit,
        )
        self._store(msg)
        answer = msg.payload()
        if nonce is not None:
            answer["nonce"] = nonce
        return _json_response(200, answer)

    def _nonce_message(self, channel_id: int, author_id: int, nonce: str) -> FakeMessage | None:
        """The message created with `nonce` by `author_id` within `nonce_window` seconds."""
        now = time.monotonic()
        for msg in self._channel_messages.get(channel_id, []):
            if (
                msg.nonce == nonce
                and not msg.deleted
                and msg.author_id == author_id
                and now - msg.created_mono <= self.nonce_window
            ):
                return msg
        return None

    async def _get_message(
        self, rec: RecordedRequest, channel_id: str, message_id: str
    ) -> web.Response:
        msg, guild = self._channel_message(channel_id, message_id)
        self._require(guild, msg.channel_id, Permissions.READ_MESSAGE_HISTORY)
        return _json_response(200, msg.payload())

    async def _edit_message(
        self, rec: RecordedRequest, channel_id: str, message_id: str
    ) -> web.Response:
        msg, guild = self._channel_message(channel_id, message_id)
        self._require(guild, msg.channel_id, 0)
        if msg.author_id != self.bot_user_id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        payload = rec.json if isinstance(rec.json, dict) else {}
        self._apply(
            msg,
            payload,
            sorted(self._files(rec).items()),
            upload_limit=guild.upload_limit if guild else self.default_upload_limit,
            creating=False,
        )
        self._message_event("MESSAGE_UPDATE", msg)
        self._changed()
        return _json_response(200, msg.payload())

    async def _delete_message(
        self, rec: RecordedRequest, channel_id: str, message_id: str
    ) -> web.Response:
        msg, guild = self._channel_message(channel_id, message_id)
        self._require(
            guild,
            msg.channel_id,
            0 if msg.author_id == self.bot_user_id else Permissions.MANAGE_MESSAGES,
        )
        self._delete(msg)
        return web.Response(status=204)

    async def _get_guild(self, rec: RecordedRequest, guild_id: str) -> web.Response:
        guild = self.guilds.get(int(guild_id)) if guild_id.isdigit() else None
        if guild is None:
            raise _err(UNKNOWN_GUILD)
        data = guild.payload(gateway=False)
        data.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return _json_response(200, data)

    async def _get_guild_channels(self, rec: RecordedRequest, guild_id: str) -> web.Response:
        guild = self.guilds.get(int(guild_id)) if guild_id.isdigit() else None
        if guild is None:
            raise _err(UNKNOWN_GUILD)
        return _json_response(200, list(guild.channels.values()))

    async def _get_guild_roles(self, rec: RecordedRequest, guild_id: str) -> web.Response:
        guild = self.guilds.get(int(guild_id)) if guild_id.isdigit() else None
        if guild is None:
            raise _err(UNKNOWN_GUILD)
        return _json_response(200, list(guild.roles.values()))

    async def _get_member(self, rec: RecordedRequest, guild_id: str, user_id: str) -> web.Response:
        guild = self.guilds.get(int(guild_id)) if guild_id.isdigit() else None
        if guild is None:
            raise _err(UNKNOWN_GUILD)
        member = guild.members.get(int(user_id)) if user_id.isdigit() else None
        if member is None:
            raise _err(UNKNOWN_MEMBER)
        return _json_response(200, member.payload())

    async def _create_dm(self, rec: RecordedRequest) -> web.Response:
        body = rec.json if isinstance(rec.json, dict) else {}
        uid = int(body.get("recipient_id", 0))
        if uid not in self.users:
            raise _form_error(
                p.field_error(["recipient_id"], "NUMBER_TYPE_COERCE", "Value is not snowflake.")
            )
        for channel in self.dm_channels.values():
            if int(channel["recipients"][0]["id"]) == uid:
                return _json_response(200, channel)
        cid = p.snowflake()
        self.dm_channels[cid] = p.dm_channel(cid, self.users[uid])
        self._channel_messages.setdefault(cid, [])
        return _json_response(200, self.dm_channels[cid])

    # ----- REST: interactions -----------------------------------------------------------

    def _interaction_message(self, inter: FakeInteraction, *, flags: int = 0) -> FakeMessage:
        metadata: dict[str, Any] = {
            "id": str(inter.id),
            "type": inter.type,
            "user": self.users[inter.user_id],
            "authorizing_integration_owners": {"0": str(inter.guild_id)},
        }
        if inter.type == p.InteractionType.APPLICATION_COMMAND:
            metadata["name"] = inter.name
            metadata["command_type"] = inter.command_type
        elif inter.message_id is not None:
            metadata["interacted_message_id"] = str(inter.message_id)
        if inter.original_message_id is not None:
            metadata["original_response_message_id"] = str(inter.original_message_id)
        return FakeMessage(
            id=p.snowflake(),
            channel_id=inter.channel_id,
            guild_id=inter.guild_id,
            author=dict(self.bot_user),
            flags=flags,
            type=20 if inter.type == p.InteractionType.APPLICATION_COMMAND else 19,
            webhook_id=self.application_id,
            application_id=self.application_id,
            interaction_id=inter.id,
            interaction_metadata=metadata,
        )

    def _upload_limit_for(self, inter: FakeInteraction) -> int:
        guild = self.guilds.get(inter.guild_id or 0)
        return guild.upload_limit if guild else self.default_upload_limit

    async def _callback(
        self, rec: RecordedRequest, interaction_id: str, token: str
    ) -> web.Response:
        inter = self.interactions.get(int(interaction_id)) if interaction_id.isdigit() else None
        if inter is None or inter.token != token:
            raise _err(UNKNOWN_INTERACTION)
        if inter.callbacks:
            raise _err(ALREADY_ACKNOWLEDGED)
        if self.ack_deadline is not None and rec.at - inter.created_at > self.ack_deadline:
            raise _err(UNKNOWN_INTERACTION)
        body = rec.json if isinstance(rec.json, dict) else {}
        ctype = body.get("type")
        data = body.get("data") if isinstance(body.get("data"), dict) else None
        flags = int((data or {}).get("flags") or 0)
        ephemeral = bool(flags & MessageFlags.EPHEMERAL)
        files = sorted(self._files(rec).items())
        is_component = inter.type == p.InteractionType.MESSAGE_COMPONENT
        message: FakeMessage | None = None
        if ctype == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE:
            message = self._interaction_message(inter)
            self._apply(
                message,
                data or {},
                files,
                upload_limit=self._upload_limit_for(inter),
                allow_ephemeral=True,
            )
            self._store(message)
            inter.original_message_id = message.id
        elif ctype == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE:
            message = self._interaction_message(
                inter, flags=MessageFlags.LOADING | (flags & MessageFlags.EPHEMERAL)
            )
            message.history.append({"deferred": True})
            self._store(message)
            inter.original_message_id = message.id
        elif (
            ctype in (CallbackType.DEFERRED_UPDATE_MESSAGE, CallbackType.UPDATE_MESSAGE)
            and is_component
        ):
            assert inter.message_id is not None
            message = self.message(inter.message_id)
            if message.deleted:
                raise _err(UNKNOWN_MESSAGE)
            if ctype == CallbackType.UPDATE_MESSAGE:
                self._apply(
                    message,
                    data or {},
                    files,
                    upload_limit=self._upload_limit_for(inter),
                    creating=False,
                )
                self._message_event("MESSAGE_UPDATE", message)
            inter.original_message_id = message.id
        elif ctype == CallbackType.MODAL and inter.type != p.InteractionType.MODAL_SUBMIT:
            errors = validate_modal(data or {})
            if errors:
                raise _form_error(errors)
        elif not (
            ctype == CallbackType.APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
            and inter.type == p.InteractionType.AUTOCOMPLETE
        ):
            raise _form_error(
                p.field_error(
                    ["type"],
                    "INTERACTION_RESPONSE_TYPE_INVALID",
                    f"Invalid interaction response type {ctype!r} for this interaction",
                )
            )
        inter.callbacks.append(InteractionCallback(int(ctype), data, ephemeral, rec.at, rec))
        self._changed()
        if rec.query.get("with_response", "").lower() not in ("1", "true"):
            return web.Response(status=204)
        callback: dict[str, Any] = {"id": str(inter.id), "type": inter.type}
        if message is not None:
            callback.update(
                response_message_id=str(message.id),
                response_message_loading=message.loading,
                response_message_ephemeral=message.ephemeral,
            )
        result: dict[str, Any] = {"interaction": callback, "resource": {"type": ctype}}
        if message is not None and ctype != CallbackType.DEFERRED_UPDATE_MESSAGE:
            result["resource"]["message"] = message.payload()
        return _json_response(200, result)

    def _webhook_interaction(self, app_id: str, token: str) -> FakeInteraction:
        if app_id != str(self.application_id):
            raise _err(UNKNOWN_WEBHOOK)
        inter = self._by_token.get(token)
        if (
            inter is None
            or inter.expired
            or time.monotonic() - inter.created_at > self.token_lifetime
        ):
            raise _err(INVALID_WEBHOOK_TOKEN)
        if not inter.callbacks:
            raise _err(UNKNOWN_WEBHOOK)  # nothing exists for this token before the callback
        return inter

    def _webhook_message(self, inter: FakeInteraction, message_id: str) -> FakeMessage:
        if message_id == "@original":
            mid = inter.original_message_id
        elif message_id.isdigit() and (
            int(message_id) == inter.original_message_id or int(message_id) in inter.followup_ids
        ):
            mid = int(message_id)
        else:
            mid = None
        if mid is None or self._messages[mid].deleted:
            raise _err(UNKNOWN_MESSAGE)
        return self._messages[mid]

    async def _followup(self, rec: RecordedRequest, app_id: str, token: str) -> web.Response:
        inter = self._webhook_interaction(app_id, token)
        payload = rec.json if isinstance(rec.json, dict) else {}
        files = sorted(self._files(rec).items())
        original = inter.original
        if original is not None and original.loading and original.interaction_id == inter.id:
            # Discord: the first follow-up after a deferral replaces the "thinking" message
            # (keeping the deferral's ephemeral state).
            self._apply(
                original, payload, files, upload_limit=self._upload_limit_for(inter), creating=False
            )
            original.flags &= ~MessageFlags.LOADING
            original.edited_at = None
            self._message_event("MESSAGE_UPDATE", original)
            message = original
        else:
            message = self._interaction_message(inter)
            message.message_reference = None
            self._apply(
                message,
                payload,
                files,
                upload_limit=self._upload_limit_for(inter),
                allow_ephemeral=True,
            )
            self._store(message)
            inter.followup_ids.append(message.id)
        self._changed()
        if rec.query.get("wait", "").lower() in ("1", "true"):
            return _json_response(200, message.payload())
        return web.Response(status=204)

    async def _webhook_get(
        self, rec: RecordedRequest, app_id: str, token: str, message_id: str
    ) -> web.Response:
        inter = self._webhook_interaction(app_id, token)
        return _json_response(200, self._webhook_message(inter, message_id).payload())

    async def _webhook_edit(
        self, rec: RecordedRequest, app_id: str, token: str, message_id: str
    ) -> web.Response:
        inter = self._webhook_interaction(app_id, token)
        msg = self._webhook_message(inter, message_id)
        payload = rec.json if isinstance(rec.json, dict) else {}
        was_loading = msg.loading
        self._apply(
            msg,
            payload,
            sorted(self._files(rec).items()),
            upload_limit=self._upload_limit_for(inter),
            creating=False,
        )
        if was_loading:
            msg.flags &= ~MessageFlags.LOADING
            msg.edited_at = None  # filling in a deferred response is not shown as an edit
        self._message_event("MESSAGE_UPDATE", msg)
        self._changed()
        return _json_response(200, msg.payload())

    async def _webhook_delete(
        self, rec: RecordedRequest, app_id: str, token: str, message_id: str
    ) -> web.Response:
        inter = self._webhook_interaction(app_id, token)
        self._delete(self._webhook_message(inter, message_id))
        return web.Response(status=204)


# ----- pytest helpers ---------------------------------------------------------------------


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord with the default world (`fake.world`); discord.py's API base is
    restored to Discord's afterwards."""
    from bot.discord_api import DISCORD_API_BASE, apply_api_base

    fake = FakeDiscord()
    fake.populate_default_world()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
        apply_api_base(DISCORD_API_BASE)


ClientT = TypeVar("ClientT", bound="discord.Client")


@contextlib.asynccontextmanager
async def running_bot(
    bot: ClientT, fake: FakeDiscord, *, wait_for_ready: bool = False, timeout: float = 10.0
) -> AsyncIterator[ClientT]:
    """Run `bot.start(fake.token)` in a task until the fake's guilds are in its cache (or until
    `on_ready` with `wait_for_ready=True`, which adds `guild_ready_timeout`, 2 s by default);
    on exit close the bot and wait for the task."""
    task = asyncio.create_task(bot.start(fake.token), name="fake-discord-bot")

    def check() -> bool:
        if task.done():
            return True
        if wait_for_ready:
            return bot.is_ready()
        return bool(fake.guilds) and all(bot.get_guild(gid) is not None for gid in fake.guilds)

    try:
        await fake.wait_for(check, timeout, "the bot to connect")
        if task.done():
            task.result()  # re-raise the start-up error
            raise RuntimeError("the bot stopped before it was ready")
        yield bot
    finally:
        await bot.close()
        try:
            await asyncio.wait_for(task, timeout)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
