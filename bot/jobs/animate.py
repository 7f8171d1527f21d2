"""Animate (the message context menu): which images of a message become which inputs, whose
messages a member may animate, the modal's values, and the guild's `animate others` switch.

Everything after the modal is the `/video` pipeline (`bot.jobs.service`); this module only
decides what goes into it. Policy, documented in the README's admin guide:

- a member may always animate their own messages;
- another member's, a bot's or a webhook's message only when the server has turned on
  `/videoadmin animate others:True` (off by default: the pictures are the poster's; bots'
  and webhooks' posts have nobody who could have agreed, so they follow the same switch);
- one image → `image` (image-to-video); two or more → the first and the last become
  `first_frame` / `last_frame` (frame-to-video); other attachments are ignored.
"""

from __future__ import annotations

from datetime import datetime

from bot.db import Database
from bot.jobs.service import RequestRefused
from bot.limits import CLIP_SECONDS
from bot.moderation.audit import Change, admin_change
from bot.store.guilds import get_guild_settings, update_guild_settings

AUTHOR_MEMBER = "member"
AUTHOR_BOT = "bot"
AUTHOR_WEBHOOK = "webhook"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic")

MSG_NO_IMAGE = (
    "That message has no image attached, so there is nothing to animate. Use **Animate** on a "
    "message with a PNG, JPEG or WebP attachment, or run `/video` with `image`."
)
MSG_OTHERS_OFF = (
    "You can animate only your own messages here: this server has not allowed animating "
    "other members' images. Post the image yourself and use **Animate** on your message, or "
    "ask an admin about `/videoadmin animate others:True`."
)
MSG_DURATION = (
    f"`duration` must be a whole number of seconds from {int(CLIP_SECONDS.low)} to "
    f"{int(CLIP_SECONDS.high)} (or leave it empty for the provider's default)."
)


def is_image(content_type: str | None, filename: str) -> bool:
    """An attachment Discord labels as an image (by its name when it has no type). The bytes
    are checked later, like `/video`'s (`bot.media.save_input_image`)."""
    if content_type:
        return content_type.split(";")[0].strip().lower().startswith("image/")
    return filename.lower().endswith(IMAGE_EXTENSIONS)


def input_slots(image_count: int) -> dict[str, int]:
    """Option name → index among the message's images: one image animates it; two or more
    go from the first to the last. Empty when there is no image."""
    if image_count <= 0:
        return {}
    if image_count == 1:
        return {"image": 0}
    return {"first_frame": 0, "last_frame": image_count - 1}


def author_kind(*, is_bot: bool, webhook_id: int | None) -> str:
    if webhook_id is not None:
        return AUTHOR_WEBHOOK
    return AUTHOR_BOT if is_bot else AUTHOR_MEMBER


def is_own(requester_id: int, author_id: int, kind: str) -> bool:
    """The member's own message: always theirs to animate (others' need the guild switch,
    `others_allowed`; a webhook's post is never "own", even under the member's name)."""
    return kind == AUTHOR_MEMBER and author_id == requester_id


def prefill(text: str, limit: int) -> str | None:
    """The message text as the modal's prompt (surrounding whitespace trimmed, cut to `limit`
    characters, on a word boundary where one is near); None when there is no text."""
    text = text.strip()
    if not text:
        return None
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space >= limit * 0.8 else cut).rstrip()


def parse_duration(text: str | None) -> int | None:
    """The modal's duration field: empty → None (the provider's default), else whole seconds
    within `CLIP_SECONDS`; anything else is refused with what to type."""
    value = (text or "").strip().lower().removesuffix("seconds").removesuffix("s").strip()
    if not value:
        return None
    if not value.isdecimal() or len(value) > 4 or not CLIP_SECONDS.contains(int(value)):
        raise RequestRefused(MSG_DURATION)
    return int(value)


async def others_allowed(db: Database, guild_id: int) -> bool:
    """Whether the guild lets members animate messages they did not write."""
    return (await get_guild_settings(db, guild_id)).animate_others


async def set_others_allowed(
    db: Database, guild_id: int, enabled: bool, *, actor_id: int, now: datetime
) -> Change:
    """The admin switch, audited in the same transaction as the change."""
    async with db.transaction() as conn:
        before = (await get_guild_settings(conn, guild_id)).animate_others
        await update_guild_settings(conn, guild_id, animate_others=enabled, now=now)
        word = "allowed" if enabled else "not allowed (own messages only)"
        return await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            setting="animate_others",
            summary=f"Animate on other members' messages: {word}",
            old=before,
            new=enabled,
            now=now,
        )
