"""Builders for Discord API JSON payloads, shaped like the real v10 API sends them.

Plain functions returning plain dicts (snowflakes as strings, ISO-8601 timestamps), usable
on their own to build discord.py objects in unit tests, and used by the fake Discord server.
They deliberately do not import discord.py: the fake must not inherit the client's view of
the wire format.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000

# ----- permission bits (https://discord.com/developers/docs/topics/permissions) ----------


class Permissions:
    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40

    ALL = (1 << 51) - 1
    EVERYONE_DEFAULT = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | SEND_MESSAGES_IN_THREADS
    )
    BOT_DEFAULT = (
        VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_APPLICATION_COMMANDS
        | SEND_MESSAGES_IN_THREADS
    )


class MessageFlags:
    SUPPRESS_EMBEDS = 1 << 2
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    SUPPRESS_NOTIFICATIONS = 1 << 12
    IS_COMPONENTS_V2 = 1 << 15


class ChannelType:
    GUILD_TEXT = 0
    DM = 1
    GUILD_VOICE = 2
    GUILD_CATEGORY = 4
    GUILD_ANNOUNCEMENT = 5
    PUBLIC_THREAD = 11
    GUILD_FORUM = 15


class OptionType:
    SUB_COMMAND = 1
    SUB_COMMAND_GROUP = 2
    STRING = 3
    INTEGER = 4
    BOOLEAN = 5
    USER = 6
    CHANNEL = 7
    ROLE = 8
    MENTIONABLE = 9
    NUMBER = 10
    ATTACHMENT = 11


class InteractionType:
    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class CallbackType:
    PONG = 1
    CHANNEL_MESSAGE_WITH_SOURCE = 4
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    APPLICATION_COMMAND_AUTOCOMPLETE_RESULT = 8
    MODAL = 9


# ----- snowflakes and timestamps ---------------------------------------------------------

_increment = itertools.count()


def snowflake(at: datetime | None = None) -> int:
    """A fresh, unique snowflake whose timestamp is `at` (default: now)."""
    ms = int((at.timestamp() if at else time.time()) * 1000)
    return ((ms - DISCORD_EPOCH_MS) << 22) | (next(_increment) & 0xFFF)


def snowflake_time(value: int | str) -> datetime:
    return datetime.fromtimestamp(((int(value) >> 22) + DISCORD_EPOCH_MS) / 1000, tz=UTC)


def iso(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).isoformat(timespec="microseconds")


def _sid(value: int | str | None) -> str | None:
    return None if value is None else str(value)


# ----- users, roles, members, channels, guilds --------------------------------------------


def user(
    user_id: int,
    username: str,
    *,
    bot: bool = False,
    global_name: str | None = None,
    avatar: str | None = None,
    system: bool = False,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(user_id),
        "username": username,
        "discriminator": "0",
        "global_name": global_name,
        "avatar": avatar,
        "avatar_decoration_data": None,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
    }
    if bot:
        data["bot"] = True
    if system:
        data["system"] = True
    return data


def client_user(user_id: int, username: str) -> dict[str, Any]:
    """`GET /users/@me` for a bot account (and READY's `user`)."""
    data = user(user_id, username, bot=True)
    data.update(verified=True, mfa_enabled=False, email=None, locale="en-US", premium_type=0)
    return data


def role(
    role_id: int,
    name: str,
    *,
    permissions: int = 0,
    position: int = 0,
    color: int = 0,
    hoist: bool = False,
    managed: bool = False,
    mentionable: bool = False,
    bot_id: int | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(role_id),
        "name": name,
        "color": color,
        "colors": {"primary_color": color, "secondary_color": None, "tertiary_color": None},
        "hoist": hoist,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": managed,
        "mentionable": mentionable,
        "flags": 0,
    }
    if bot_id is not None:
        data["tags"] = {"bot_id": str(bot_id)}
    return data


def member(
    user_payload: Mapping[str, Any] | None,
    *,
    roles: Iterable[int] = (),
    nick: str | None = None,
    joined_at: datetime | None = None,
    permissions: int | None = None,
    pending: bool = False,
) -> dict[str, Any]:
    """A guild member. `permissions` is only present in interaction payloads.

    `user_payload=None` gives the form used inside `resolved.members` (no `user` key).
    """
    data: dict[str, Any] = {
        "roles": [str(r) for r in roles],
        "nick": nick,
        "avatar": None,
        "banner": None,
        "premium_since": None,
        "joined_at": iso(joined_at),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": pending,
        "communication_disabled_until": None,
    }
    if user_payload is not None:
        data["user"] = dict(user_payload)
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def overwrite(
    target_id: int, *, member: bool = False, allow: int = 0, deny: int = 0
) -> dict[str, Any]:
    """A channel permission overwrite; `member=False` targets a role (the guild id = @everyone)."""
    return {
        "id": str(target_id),
        "type": 1 if member else 0,
        "allow": str(allow),
        "deny": str(deny),
    }


def channel(
    channel_id: int,
    name: str,
    *,
    guild_id: int | None = None,
    type: int = ChannelType.GUILD_TEXT,
    position: int = 0,
    parent_id: int | None = None,
    topic: str | None = None,
    nsfw: bool = False,
    permission_overwrites: Sequence[Mapping[str, Any]] = (),
    rate_limit_per_user: int = 0,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(channel_id),
        "type": type,
        "name": name,
        "position": position,
        "permission_overwrites": [dict(o) for o in permission_overwrites],
        "parent_id": _sid(parent_id),
        "flags": 0,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    if type in (ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT):
        data.update(
            topic=topic,
            nsfw=nsfw,
            last_message_id=None,
            rate_limit_per_user=rate_limit_per_user,
            default_thread_rate_limit_per_user=0,
        )
    elif type == ChannelType.GUILD_VOICE:
        data.update(bitrate=64000, user_limit=0, rtc_region=None, nsfw=nsfw)
    return data


THREAD_TYPES = (10, 11, 12)  # announcement, public and private threads


def is_thread(channel_type: int) -> bool:
    return channel_type in THREAD_TYPES


def thread(
    thread_id: int,
    name: str,
    *,
    guild_id: int,
    parent_id: int,
    owner_id: int,
    type: int = 11,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """A thread channel object as in THREAD_CREATE and GUILD_CREATE `threads`."""
    created = created_at or datetime.now(UTC)
    return {
        "id": str(thread_id),
        "type": type,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(owner_id),
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": iso(created),
            "locked": False,
            "create_timestamp": iso(created),
        },
    }


def dm_channel(channel_id: int, recipient: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": ChannelType.DM,
        "last_message_id": None,
        "flags": 0,
        "recipients": [dict(recipient)],
    }


def guild(
    guild_id: int,
    name: str,
    *,
    owner_id: int,
    roles: Sequence[Mapping[str, Any]],
    channels: Sequence[Mapping[str, Any]] = (),
    threads: Sequence[Mapping[str, Any]] = (),
    members: Sequence[Mapping[str, Any]] = (),
    member_count: int | None = None,
    features: Sequence[str] = (),
    preferred_locale: str = "en-US",
    joined_at: datetime | None = None,
    premium_tier: int = 0,
    gateway: bool = True,
) -> dict[str, Any]:
    """A guild; `gateway=True` adds the GUILD_CREATE-only fields (members, channels, …)."""
    data: dict[str, Any] = {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 1,
        "default_message_notifications": 1,
        "explicit_content_filter": 2,
        "roles": [dict(r) for r in roles],
        "emojis": [],
        "stickers": [],
        "features": list(features),
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "max_members": 500000,
        "vanity_url_code": None,
        "premium_tier": premium_tier,
        "premium_subscription_count": 0,
        "preferred_locale": preferred_locale,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "widget_enabled": False,
        "widget_channel_id": None,
    }
    if gateway:
        data.update(
            joined_at=iso(joined_at),
            large=False,
            unavailable=False,
            member_count=member_count if member_count is not None else len(members),
            members=[dict(m) for m in members],
            channels=[dict(c) for c in channels],
            threads=[dict(t) for t in threads],
            voice_states=[],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
    return data


def application(
    app_id: int, name: str, *, owner: Mapping[str, Any], bot: Mapping[str, Any]
) -> dict[str, Any]:
    """`GET /oauth2/applications/@me`."""
    return {
        "id": str(app_id),
        "name": name,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "bot": dict(bot),
        "bot_public": False,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "owner": dict(owner),
        "team": None,
        "flags": 0,
        "guild_id": None,
        "interactions_endpoint_url": None,
        "redirect_uris": [],
        "approximate_guild_count": 1,
        "integration_types_config": {"0": {}},
    }


# ----- messages and attachments ----------------------------------------------------------


def attachment(
    attachment_id: int,
    filename: str,
    *,
    size: int,
    url: str,
    content_type: str | None = None,
    width: int | None = None,
    height: int | None = None,
    description: str | None = None,
    ephemeral: bool = False,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(attachment_id),
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url,
    }
    if content_type is not None:
        data["content_type"] = content_type
    if width is not None and height is not None:
        data.update(width=width, height=height)
    if description is not None:
        data["description"] = description
    if ephemeral:
        data["ephemeral"] = True
    return data


def message(
    message_id: int,
    channel_id: int,
    author: Mapping[str, Any],
    *,
    content: str = "",
    guild_id: int | None = None,
    embeds: Sequence[Mapping[str, Any]] = (),
    attachments: Sequence[Mapping[str, Any]] = (),
    components: Sequence[Mapping[str, Any]] = (),
    flags: int = 0,
    type: int = 0,
    mentions: Sequence[Mapping[str, Any]] = (),
    mention_roles: Sequence[int] = (),
    mention_everyone: bool = False,
    message_reference: Mapping[str, Any] | None = None,
    webhook_id: int | None = None,
    application_id: int | None = None,
    interaction_metadata: Mapping[str, Any] | None = None,
    edited_at: datetime | None = None,
    tts: bool = False,
    pinned: bool = False,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(message_id),
        "type": type,
        "channel_id": str(channel_id),
        "author": dict(author),
        "content": content,
        "timestamp": iso(snowflake_time(message_id)),
        "edited_timestamp": iso(edited_at) if edited_at else None,
        "tts": tts,
        "mention_everyone": mention_everyone,
        "mentions": [dict(m) for m in mentions],
        "mention_roles": [str(r) for r in mention_roles],
        "attachments": [dict(a) for a in attachments],
        "embeds": [dict(e) for e in embeds],
        "components": [dict(c) for c in components],
        "pinned": pinned,
        "flags": flags,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    if message_reference is not None:
        data["message_reference"] = dict(message_reference)
    if webhook_id is not None:
        data["webhook_id"] = str(webhook_id)
    if application_id is not None:
        data["application_id"] = str(application_id)
    if interaction_metadata is not None:
        data["interaction_metadata"] = dict(interaction_metadata)
    return data


def button(custom_id: str, label: str, *, style: int = 1, disabled: bool = False) -> dict[str, Any]:
    return {"type": 2, "style": style, "label": label, "custom_id": custom_id, "disabled": disabled}


def action_row(*components: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": [dict(c) for c in components]}


# ----- interactions ----------------------------------------------------------------------


def command_option(
    name: str,
    type: int,
    value: Any = None,
    *,
    options: Sequence[Mapping[str, Any]] | None = None,
    focused: bool | None = None,
) -> dict[str, Any]:
    """An option as it appears in `interaction.data.options` (a value or nested options)."""
    data: dict[str, Any] = {"name": name, "type": type}
    if options is not None:
        data["options"] = [dict(o) for o in options]
    else:
        data["value"] = value
    if focused is not None:
        data["focused"] = focused
    return data


def interaction_channel(channel_payload: Mapping[str, Any], *, permissions: int) -> dict[str, Any]:
    """The partial channel in an interaction: the channel plus the invoker's `permissions`."""
    data = dict(channel_payload)
    data["permissions"] = str(permissions)
    return data


def _interaction_base(
    *,
    interaction_id: int,
    interaction_type: int,
    application_id: int,
    token: str,
    guild_id: int | None,
    channel_payload: Mapping[str, Any],
    member_payload: Mapping[str, Any] | None,
    user_payload: Mapping[str, Any] | None,
    app_permissions: int,
    attachment_size_limit: int,
    locale: str,
    guild_locale: str | None,
    guild_features: Sequence[str],
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(application_id),
        "type": interaction_type,
        "token": token,
        "version": 1,
        "channel": dict(channel_payload),
        "channel_id": str(channel_payload["id"]),
        "app_permissions": str(app_permissions),
        "locale": locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": attachment_size_limit,
    }
    if guild_id is not None:
        data.update(
            guild_id=str(guild_id),
            guild={
                "id": str(guild_id),
                "locale": guild_locale or "en-US",
                "features": list(guild_features),
            },
            guild_locale=guild_locale or "en-US",
            member=dict(member_payload or {}),
            authorizing_integration_owners={"0": str(guild_id)},
            context=0,
        )
    else:
        data.update(
            user=dict(user_payload or {}),
            authorizing_integration_owners={"0": "0"},
            context=1,
        )
    return data


def slash_command_interaction(
    *,
    interaction_id: int,
    application_id: int,
    token: str,
    command_id: int,
    name: str,
    channel_payload: Mapping[str, Any],
    guild_id: int | None = None,
    member_payload: Mapping[str, Any] | None = None,
    user_payload: Mapping[str, Any] | None = None,
    options: Sequence[Mapping[str, Any]] = (),
    resolved: Mapping[str, Any] | None = None,
    command_guild_id: int | None = None,
    command_type: int = 1,
    target_id: int | None = None,
    app_permissions: int = Permissions.BOT_DEFAULT,
    attachment_size_limit: int = 10 * 1024 * 1024,
    locale: str = "en-US",
    guild_locale: str | None = "en-US",
    guild_features: Sequence[str] = (),
) -> dict[str, Any]:
    """INTERACTION_CREATE for an application command (type 2).

    `command_guild_id` is set when the command is registered for that guild only. A user or
    message command (`command_type` 2 / 3) names its `target_id`, resolved in `resolved`
    (`users`/`members` or `messages`).
    """
    data = _interaction_base(
        interaction_id=interaction_id,
        interaction_type=InteractionType.APPLICATION_COMMAND,
        application_id=application_id,
        token=token,
        guild_id=guild_id,
        channel_payload=channel_payload,
        member_payload=member_payload,
        user_payload=user_payload,
        app_permissions=app_permissions,
        attachment_size_limit=attachment_size_limit,
        locale=locale,
        guild_locale=guild_locale,
        guild_features=guild_features,
    )
    command: dict[str, Any] = {"id": str(command_id), "name": name, "type": command_type}
    if options:
        command["options"] = [dict(o) for o in options]
    if resolved:
        command["resolved"] = {k: dict(v) for k, v in resolved.items()}
    if command_guild_id is not None:
        command["guild_id"] = str(command_guild_id)
    if target_id is not None:
        command["target_id"] = str(target_id)
    data["data"] = command
    return data


def modal_submit_interaction(
    *,
    interaction_id: int,
    application_id: int,
    token: str,
    custom_id: str,
    components: Sequence[Mapping[str, Any]],
    channel_payload: Mapping[str, Any],
    guild_id: int | None = None,
    member_payload: Mapping[str, Any] | None = None,
    user_payload: Mapping[str, Any] | None = None,
    message_payload: Mapping[str, Any] | None = None,
    app_permissions: int = Permissions.BOT_DEFAULT,
    attachment_size_limit: int = 10 * 1024 * 1024,
    locale: str = "en-US",
    guild_locale: str | None = "en-US",
    guild_features: Sequence[str] = (),
) -> dict[str, Any]:
    """INTERACTION_CREATE for a modal's submit (type 5): `components` carry the values
    (action rows of text inputs `{type: 4, custom_id, value}`, or labels `{type: 18,
    component: {...}}`); `message` only when the modal was opened from a component."""
    data = _interaction_base(
        interaction_id=interaction_id,
        interaction_type=InteractionType.MODAL_SUBMIT,
        application_id=application_id,
        token=token,
        guild_id=guild_id,
        channel_payload=channel_payload,
        member_payload=member_payload,
        user_payload=user_payload,
        app_permissions=app_permissions,
        attachment_size_limit=attachment_size_limit,
        locale=locale,
        guild_locale=guild_locale,
        guild_features=guild_features,
    )
    data["data"] = {"custom_id": custom_id, "components": [dict(c) for c in components]}
    if message_payload is not None:
        data["message"] = dict(message_payload)
    return data


def component_interaction(
    *,
    interaction_id: int,
    application_id: int,
    token: str,
    custom_id: str,
    message_payload: Mapping[str, Any],
    channel_payload: Mapping[str, Any],
    component_type: int = 2,
    values: Sequence[str] | None = None,
    guild_id: int | None = None,
    member_payload: Mapping[str, Any] | None = None,
    user_payload: Mapping[str, Any] | None = None,
    app_permissions: int = Permissions.BOT_DEFAULT,
    attachment_size_limit: int = 10 * 1024 * 1024,
    locale: str = "en-US",
    guild_locale: str | None = "en-US",
    guild_features: Sequence[str] = (),
) -> dict[str, Any]:
    """INTERACTION_CREATE for a button press (component_type 2) or a select (3, with values)."""
    data = _interaction_base(
        interaction_id=interaction_id,
        interaction_type=InteractionType.MESSAGE_COMPONENT,
        application_id=application_id,
        token=token,
        guild_id=guild_id,
        channel_payload=channel_payload,
        member_payload=member_payload,
        user_payload=user_payload,
        app_permissions=app_permissions,
        attachment_size_limit=attachment_size_limit,
        locale=locale,
        guild_locale=guild_locale,
        guild_features=guild_features,
    )
    component: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
    if values is not None:
        component["values"] = list(values)
    data["data"] = component
    data["message"] = dict(message_payload)
    return data


def error(code: int, message: str, errors: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A Discord JSON error body."""
    body: dict[str, Any] = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = dict(errors)
    return body


def field_error(path: Sequence[str | int], code: str, message: str) -> dict[str, Any]:
    """The nested `errors` object of an Invalid Form Body (50035) error for one field."""
    node: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        node = {str(key): node}
    return node
