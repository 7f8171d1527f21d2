"""The output safety check on the Discord side: the channel's age restriction, the held clip
in the mod-log channel and its Release / Discard buttons.

The decision logic is `bot.safety`; here: is the job's channel age-restricted
(`is_nsfw()`: a thread answers for its parent), can the mod-log channel take a held clip
(View Channel, Send Messages, Attach Files), post the held clip there behind a spoiler with
persistent buttons (their custom_id carries the job id, so they work after a restart), and
answer a moderator's press. The hold post carries the job's delivery key as its nonce, so a
retried post after a lost answer does not show the clip twice.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from bot import media, safety
from bot.db import utcnow
from bot.errors import ClipHeldError, PermanentPostError
from bot.jobs import JobRecord
from bot.safety import ClipCheck
from cogs.ui.checks import is_moderator
from cogs.ui.modlog import inert
from cogs.video.common import NO_MENTIONS

if TYPE_CHECKING:
    from bot.client import VideoBot
    from cogs.video.delivery import ClipDelivery

log = logging.getLogger(__name__)

HOLD_BUTTONS = {
    "release": ("Release", discord.ButtonStyle.success),
    "discard": ("Discard", discord.ButtonStyle.danger),
}
MODERATORS_ONLY = "Only moderators (Manage Messages) can release or discard a held clip."


def spoiler_name(filename: str) -> str:
    """Discord covers an attachment whose file name starts with `SPOILER_`."""
    return filename if filename.startswith("SPOILER_") else f"SPOILER_{filename}"


def hold_text(job: JobRecord, check: ClipCheck) -> str:
    labels = ", ".join(check.labels[:4]) or "no label"
    until = int(check.hold_until.timestamp()) if check.hold_until else None
    lines = [
        f"🛡️ **Held for review** — job {job.id} by <@{job.user_id}> in <#{job.channel_id}>",
        f"Score {check.score:.2f} ({labels}); threshold {check.threshold:g}.",
        f"Prompt: {inert(job.prompt, 1200)}",
    ]
    if until is not None:
        lines.append(f"Discarded <t:{until}:R> unless a moderator releases it.")
    return "\n".join(lines)[:2000]


class HoldButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"ltx:safety:(?P<action>release|discard):(?P<job>\d+)",
):
    """Release / Discard of one held clip (moderators only)."""

    def __init__(self, action: str, job_id: int) -> None:
        label, style = HOLD_BUTTONS[action]
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"ltx:safety:{action}:{job_id}")
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> HoldButton:
        return cls(match["action"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await press_hold(interaction, self.action, self.job_id)


def hold_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(HoldButton("release", job_id))
    view.add_item(HoldButton("discard", job_id))
    return view


async def press_hold(interaction: discord.Interaction, action: str, job_id: int) -> None:

    await interaction.response.defer(ephemeral=True, thinking=True)
    if not is_moderator(interaction):
        await interaction.followup.send(
            MODERATORS_ONLY, ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        return
    bot: Any = interaction.client
    act = safety.release if action == "release" else safety.discard
    outcome = await act(bot.db, bot.tracker, job_id, by=interaction.user.id)
    check = outcome.check
    if not outcome.done:
        if check is None or check.action != "hold":
            text = f"Job {job_id} has no held clip."
        else:
            text = f"Job {job_id}'s clip was already {check.decision} (no change)."
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        return
    done = "released: it is being posted now" if action == "release" else "discarded"
    await interaction.followup.send(
        f"Job {job_id}'s clip {done}.", ephemeral=True, allowed_mentions=NO_MENTIONS
    )
    if interaction.message is not None:
        mark = "✅ Released" if action == "release" else "🗑️ Discarded"
        content = f"{interaction.message.content}\n{mark} by {interaction.user.mention}"
        try:
            await interaction.message.edit(
                content=content[:2000], view=None, allowed_mentions=NO_MENTIONS
            )
        except discord.HTTPException as exc:
            log.info("job %s: hold message not updated: %s", job_id, exc)


class SafetyGate:
    """Runs the check before a clip is posted and holds it when the policy says so."""

    def __init__(self, bot: VideoBot, delivery: ClipDelivery) -> None:
        self.bot = bot
        self.delivery = delivery

    async def check(self, job: JobRecord, clip: Path) -> ClipCheck | None:
        """The clip's check (None: not checked). Raises ClipHeldError while a moderator has
        to decide, PermanentPostError when nobody did in time (the job fails, refunded)."""
        if job.guild_id is None:
            return None
        channel = await self.delivery.status.channel(job)
        age_restricted = bool(channel is not None and _is_nsfw(channel))
        policy = await safety.guild_policy(self.bot.db, job.guild_id)
        log_channel = self._log_channel(job.guild_id, policy.log_channel_id)
        hours = self.bot.settings.safety_hold_hours
        check = await safety.review_clip(
            self.bot.db,
            job,
            clip,
            age_restricted=age_restricted,
            can_hold=log_channel is not None,
            hold_hours=hours,
        )
        if check is None or not check.pending_review:
            return check
        assert check.hold_until is not None
        if utcnow() >= check.hold_until:
            if await safety.expire(self.bot.db, job.id):
                raise PermanentPostError(safety.expired_message(hours))
            return await safety.get_check(self.bot.db, job.id)  # decided meanwhile
        if check.hold_message_id is None:
            await self._post_hold(job, check, clip, log_channel)
        raise ClipHeldError(check.hold_until)

    def _log_channel(self, guild_id: int, channel_id: int | None) -> discord.TextChannel | None:
        guild = self.bot.get_guild(guild_id)
        if guild is None or channel_id is None:
            return None
        channel = guild.get_channel_or_thread(channel_id)
        if not isinstance(channel, discord.TextChannel | discord.Thread):
            return None
        perms = channel.permissions_for(guild.me)
        if not (perms.view_channel and perms.send_messages and perms.attach_files):
            return None
        return channel  # type: ignore[return-value]

    async def _post_hold(self, job: JobRecord, check: ClipCheck, clip: Path, channel: Any) -> None:
        if channel is None:  # the mod-log channel went away since the check
            policy = await safety.guild_policy(self.bot.db, job.guild_id or 0)
            channel = self._log_channel(job.guild_id or 0, policy.log_channel_id)
            if channel is None:
                log.warning("job %s: held, but the mod-log channel is unusable", job.id)
                return  # stays held; moderators can fix the channel before it expires
        from cogs.video.delivery import result_filename  # it imports this module

        fitted = clip.with_name(f"{clip.stem}.hold.mp4")
        limit = int(channel.guild.filesize_limit)
        try:
            await asyncio.to_thread(media.fit_to_size, clip, fitted, limit)
            message = await channel.send(
                hold_text(job, check),
                file=discord.File(fitted, filename=spoiler_name(result_filename(job))),
                view=hold_view(job.id),
                allowed_mentions=NO_MENTIONS,
                nonce=f"hold{job.delivery_key}",  # a retried post is not shown twice
            )
        finally:
            await asyncio.to_thread(fitted.unlink, missing_ok=True)
        await safety.hold_posted(
            self.bot.db, job.id, channel_id=message.channel.id, message_id=message.id
        )
        await self.delivery.job_notice(job, safety.MSG_HELD + ".")


def _is_nsfw(channel: Any) -> bool:
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False
