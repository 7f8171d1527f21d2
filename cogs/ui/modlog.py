"""Mod-log rendering: an audit entry as a compact embed, and the poster `ModLog` uses.

Everything echoed from members or admins (prompts, reasons, patterns) is made inert:
markdown escaped, mentions broken, and the message goes out with `AllowedMentions.none()`
(a member "mention" in an embed never pings anyway). Embed limits are respected: title 256,
description 4096, field name 256 / value 1024, 25 fields, footer 2048, 6000 in total.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.errors import PermanentPostError
from bot.moderation import AuditEntry, Poster

log = logging.getLogger(__name__)

NONE = discord.AllowedMentions.none()
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
TOTAL_LIMIT = 6000
MAX_FIELDS = 25
PROMPT_LIMIT = 1500  # compact: the full prompt is in the audit log / export
POSTER_FILENAME = "poster.jpg"  # a delivered clip's frame, attached and shown as the image

STYLE: dict[str, tuple[str, str, discord.Colour]] = {
    "generation": ("🎬", "Generation", discord.Colour.blurple()),
    "refusal": ("⛔", "Refused", discord.Colour.orange()),
    "admin": ("🛠️", "Admin change", discord.Colour.dark_teal()),
    "delete": ("🗑️", "Deleted", discord.Colour.dark_grey()),
    "cancel": ("✖️", "Cancelled", discord.Colour.dark_grey()),
    "prune": ("🧹", "Retention", discord.Colour.light_grey()),
    "submission_unknown": ("❓", "Submission unanswered", discord.Colour.gold()),
    "provider_account": ("💳", "Provider account", discord.Colour.red()),
    "safety": ("🛡️", "Output safety", discord.Colour.dark_gold()),
}
OUTCOME_COLOURS = {
    "delivered": discord.Colour.green(),
    "failed": discord.Colour.red(),
    "cancelled": discord.Colour.dark_grey(),
    "expired": discord.Colour.dark_grey(),
}
REFUSAL_WORDS = {
    "blocked_member": "blocked member",
    "blocked_word": "blocked term",
    "allowance": "allowance used up",
    "invalid_input": "invalid input",
    "provider_filter": "video service's safety filter",
}


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if cut.endswith("\\") and not cut.endswith("\\\\"):
        cut = cut[:-1]  # never leave half of an escape
    return cut + "…"


def inert(text: Any, limit: int) -> str:
    """Member/admin text made safe to show: markdown escaped, mentions broken, clipped."""
    raw = str(text)
    safe = discord.utils.escape_mentions(discord.utils.escape_markdown(raw))
    return clip(safe, limit)


def _user(user_id: Any) -> str | None:
    return f"<@{int(user_id)}>" if isinstance(user_id, int) else None


def _http_url(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) < 1500:
        return value
    return None


def _settings_text(settings: Any, data: dict[str, Any]) -> str | None:
    if not isinstance(settings, dict):
        return None
    parts: list[str] = []
    mode = data.get("mode") or settings.get("mode")
    if mode:
        parts.append(str(mode))
    if settings.get("duration") is not None:
        parts.append(f"{settings['duration']} s")
    if settings.get("width") and settings.get("height"):
        parts.append(f"{settings['width']}×{settings['height']}")
    elif settings.get("resolution"):
        parts.append(str(settings["resolution"]))
    if settings.get("fps"):
        parts.append(f"{settings['fps']} fps")
    if settings.get("aspect_ratio"):
        parts.append(str(settings["aspect_ratio"]))
    if "audio" in settings:
        parts.append("audio" if settings["audio"] else "no audio")
    if settings.get("seed") is not None:
        parts.append(f"seed {settings['seed']}")
    return inert(" · ".join(parts), FIELD_VALUE_LIMIT) if parts else None


def _inputs_text(inputs: Any) -> tuple[str | None, str | None]:
    """(field text, first thumbnail URL)."""
    if not isinstance(inputs, list) or not inputs:
        return None, None
    lines: list[str] = []
    thumbnail: str | None = None
    for item in inputs[:3]:
        if not isinstance(item, dict):
            continue
        name = inert(item.get("name", "image"), 40)
        digest = str(item.get("sha256", ""))[:16]
        url = _http_url(item.get("url"))
        line = f"{name}: `{digest}`" if digest else name
        if url is not None:
            line += f" · [view]({url})"
            thumbnail = thumbnail or url
        lines.append(line)
    text = "\n".join(lines)
    return (clip(text, FIELD_VALUE_LIMIT) if text else None), thumbnail


def _source_text(source: Any) -> str | None:
    """Animate: the source message (jump link) and its author."""
    if not isinstance(source, dict):
        return None
    parts = []
    url = _http_url(source.get("url"))
    if url is not None:
        parts.append(f"[message]({url})")
    author = _user(source.get("author_id"))
    if author:
        kind = source.get("author_kind")
        parts.append(f"by {author}" + (f" ({inert(kind, 20)})" if kind != "member" else ""))
    return " ".join(parts) or None


def _change_text(data: dict[str, Any]) -> str | None:
    if "setting" not in data:
        return None
    old, new = data.get("old"), data.get("new")
    return inert(
        f"{data['setting']}: {'—' if old is None else old} → {'—' if new is None else new}",
        FIELD_VALUE_LIMIT,
    )


def render_entry(entry: AuditEntry, *, poster: bool = False) -> discord.Embed:
    """A compact embed for one audit entry, within Discord's embed limits. `poster`: the
    message carries the clip's poster frame as `poster.jpg`, shown as the embed image."""
    data = entry.data
    icon, words, colour = STYLE.get(
        entry.kind, ("📝", entry.kind.title(), discord.Colour.default())
    )
    outcome = data.get("outcome")
    if entry.kind == "generation" and isinstance(outcome, str):
        words = f"{words} · {outcome}"
        colour = OUTCOME_COLOURS.get(outcome, colour)
    elif entry.kind == "refusal" and data.get("reason"):
        words = f"{words} · {REFUSAL_WORDS.get(str(data['reason']), str(data['reason']))}"
    embed = discord.Embed(
        title=clip(f"{icon} {words}", TITLE_LIMIT), colour=colour, timestamp=entry.at
    )

    description = inert(entry.summary, 600)
    prompt = data.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        description += "\n**Prompt**\n>>> " + inert(prompt, PROMPT_LIMIT)
    embed.description = clip(description, DESCRIPTION_LIMIT)

    fields: list[tuple[str, str, bool]] = []
    member = _user(entry.target_id)
    actor = _user(entry.actor_id)
    if member:
        fields.append(("Member", member, True))
    if actor and entry.actor_id != entry.target_id:
        fields.append(("By", actor, True))
    if entry.channel_id is not None:
        fields.append(("Channel", f"<#{entry.channel_id}>", True))
    if entry.job_id is not None:
        fields.append(("Job", f"#{entry.job_id}", True))
    settings = _settings_text(data.get("settings"), data)
    if settings:
        fields.append(("Settings", settings, False))
    provider = data.get("provider")
    if provider:
        text = inert(provider, 100)
        if data.get("model"):
            text += f" ({inert(data['model'], 100)})"
        if data.get("provider_job_id"):
            job = str(data["provider_job_id"]).replace("`", "")[:100]
            text += f" · job `{job}`"
        fields.append(("Provider", text, True))
    cost = data.get("cost_usd")
    if isinstance(cost, int | float):
        fields.append(("Cost", f"${cost:.2f}", True))
    if data.get("failure_reason"):
        fields.append(("Reason", inert(data["failure_reason"], FIELD_VALUE_LIMIT), False))
    if entry.kind == "admin":
        change = _change_text(data)
        if change:
            fields.append(("Change", change, False))
        if data.get("reason"):
            fields.append(("Reason", inert(data["reason"], FIELD_VALUE_LIMIT), False))
    inputs, thumbnail = _inputs_text(data.get("inputs"))
    if inputs:
        fields.append(("Inputs", inputs, False))
    source = _source_text(data.get("source"))
    if source:
        fields.append(("Animated from", source, True))
    result = _http_url(data.get("result_url"))
    if result:
        fields.append(("Result", f"[Jump to the message]({result})", True))
    for name, value, inline in fields[:MAX_FIELDS]:
        embed.add_field(
            name=clip(name, FIELD_NAME_LIMIT), value=clip(value, FIELD_VALUE_LIMIT), inline=inline
        )
    if thumbnail:
        embed.set_thumbnail(url=thumbnail)
    if poster:
        embed.set_image(url=f"attachment://{POSTER_FILENAME}")
    guild_part = f" · guild {entry.guild_id}" if entry.guild_id is not None else ""
    embed.set_footer(text=clip(f"audit #{entry.id}{guild_part}", FOOTER_LIMIT))
    _fit_total(embed)
    return embed


def _fit_total(embed: discord.Embed) -> None:
    excess = len(embed) - TOTAL_LIMIT
    if excess > 0 and embed.description:
        embed.description = clip(embed.description, max(1, len(embed.description) - excess))
    while len(embed) > TOTAL_LIMIT and embed.fields:
        embed.remove_field(len(embed.fields) - 1)


Attachment = Callable[[AuditEntry], Awaitable[bytes | None]]


async def _send(channel: Any, channel_id: int, embed: discord.Embed, image: bytes | None) -> None:
    """Post one entry; PermanentPostError when retrying cannot help."""
    extra: dict[str, Any] = {}
    if image is not None:
        extra["file"] = discord.File(io.BytesIO(image), filename=POSTER_FILENAME)
    try:
        await channel.send(embed=embed, allowed_mentions=NONE, **extra)
    except discord.NotFound:
        raise PermanentPostError(f"log channel {channel_id} no longer exists") from None
    except discord.HTTPException as exc:
        if exc.status == 400:
            raise PermanentPostError(f"Discord rejected the embed: {exc.text[:200]}") from None
        raise


def make_poster(bot: discord.Client, attachment: Attachment | None = None) -> Poster:
    """The callable `ModLog` uses to post an entry; raises on failure (the outbox retries),
    PermanentPostError when retrying cannot help (channel gone, entry rejected).
    `attachment`: the entry's poster frame, if any (`ModLog.attachment`)."""

    async def post(entry: AuditEntry, channel_id: int) -> None:
        channel: Any = bot.get_channel(channel_id)
        if channel is None:
            try:
                channel = await bot.fetch_channel(channel_id)
            except discord.NotFound:
                raise PermanentPostError(f"log channel {channel_id} no longer exists") from None
        if not isinstance(channel, discord.abc.Messageable):
            raise PermanentPostError(f"log channel {channel_id} is not a text channel")
        image = await attachment(entry) if attachment is not None else None
        if image is not None:
            try:
                await _send(channel, channel_id, render_entry(entry, poster=True), image)
                return
            except discord.Forbidden:
                # No Attach Files in the log channel: the entry still goes, without its frame.
                log.info(
                    "mod-log channel %s: no Attach Files; posting without the frame", channel_id
                )
        await _send(channel, channel_id, render_entry(entry), None)

    return post
