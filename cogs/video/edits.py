"""Extend and Retake on a delivered clip: the buttons open a modal, the modal starts a job.

Thin like the rest of the cog: the clip is re-fetched from the bot's own message (its
attachment on Discord's CDN), the fields are read into an edit, and everything else goes
through `VideoCog.start_job` and so the one pipeline of `bot.jobs.service` (moderation of
the prompt, negotiation with its quote, quota, audit). Only the member who asked for the
clip or a moderator may edit it; the new clip is posted as a reply to the original.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord

from bot.jobs import JobRecord
from bot.providers.base import Operation
from cogs.ui.checks import is_moderator
from cogs.video.common import send_ephemeral

if TYPE_CHECKING:
    from bot.client import VideoBot
    from cogs.video.cog import VideoCog

log = logging.getLogger(__name__)

WHERE = {"end": "end", "start": "start", "e": "end", "s": "start"}
REDO = {"video": "video", "audio": "audio", "both": "both", "sound": "audio", "all": "both"}


def _number(text: str, name: str) -> float:
    try:
        value = float(text.strip().removesuffix("s").strip().replace(",", "."))
    except ValueError:
        raise ValueError(f"`{name}` must be a number of seconds, like 3 or 2.5") from None
    if not 0 <= value <= 60:
        raise ValueError(f"`{name}` must be between 0 and 60 seconds")
    return value


def extend_fields(seconds: str, where: str) -> dict[str, Any]:
    """The edit of an Extend modal; ValueError says what to change."""
    added = _number(seconds, "seconds")
    if added != int(added) or not 2 <= added <= 20:
        raise ValueError("`seconds` must be a whole number from 2 to 20")
    side = WHERE.get(where.strip().lower() or "end")
    if side is None:
        raise ValueError("`where` must be `end` or `start`")
    return {"kind": "extend", "seconds": added, "where": side}


def retake_fields(start: str, end: str, redo: str) -> dict[str, Any]:
    """The edit of a Retake modal; ValueError says what to change."""
    first, last = _number(start, "start"), _number(end, "end")
    if last <= first:
        raise ValueError("`end` must be after `start`")
    what = REDO.get(redo.strip().lower() or "both")
    if what is None:
        raise ValueError("`redo` must be `video`, `audio` or `both`")
    return {"kind": "retake", "start": first, "seconds": round(last - first, 3), "redo": what}


class ExtendModal(discord.ui.Modal, title="Extend this clip"):
    seconds: discord.ui.TextInput[Any] = discord.ui.TextInput(
        custom_id="seconds", label="Seconds to add (2–20)", default="5", max_length=5
    )
    where: discord.ui.TextInput[Any] = discord.ui.TextInput(
        custom_id="where", label="Where: end or start", default="end", max_length=5
    )
    prompt: discord.ui.TextInput[Any] = discord.ui.TextInput(
        custom_id="prompt",
        label="What happens in the new part (optional)",
        style=discord.TextStyle.paragraph,
        required=False,
        max_length=2000,
    )

    def __init__(self, flow: EditFlow, job: JobRecord) -> None:
        super().__init__(timeout=900, custom_id=f"ltx:extend-modal:{job.id}")
        self.flow, self.job = flow, job

    async def on_submit(self, interaction: discord.Interaction) -> None:
        try:
            edit = extend_fields(self.seconds.value, self.where.value)
        except ValueError as exc:
            await send_ephemeral(interaction, f"⚠️ {exc}. Press **Extend** again.")
            return
        # No prompt: the new part continues the clip as its own prompt described it.
        prompt = self.prompt.value.strip() or self.job.prompt
        await self.flow.start(interaction, self.job, edit, prompt)


class RetakeModal(discord.ui.Modal, title="Retake part of this clip"):
    start: discord.ui.TextInput[Any] = discord.ui.TextInput(
        custom_id="start", label="From (seconds into the clip)", default="0", max_length=6
    )
    end: discord.ui.TextInput[Any] = discord.ui.TextInput(
        custom_id="end", label="To (seconds, at least 2 s after From)", max_length=6
    )
    redo: discord.ui.TextInput[Any] = discord.ui.TextInput(
        custom_id="redo", label="Redo: video, audio or both", default="both", max_length=5
    )
    prompt: discord.ui.TextInput[Any] = discord.ui.TextInput(
        custom_id="prompt",
        label="What should happen in that part",
        style=discord.TextStyle.paragraph,
        max_length=2000,
    )

    def __init__(self, flow: EditFlow, job: JobRecord) -> None:
        super().__init__(timeout=900, custom_id=f"ltx:retake-modal:{job.id}")
        self.flow, self.job = flow, job
        self.end.default = f"{min(job.request.duration, 4)}"

    async def on_submit(self, interaction: discord.Interaction) -> None:
        try:
            edit = retake_fields(self.start.value, self.end.value, self.redo.value)
        except ValueError as exc:
            await send_ephemeral(interaction, f"⚠️ {exc}. Press **Retake** again.")
            return
        await self.flow.start(interaction, self.job, edit, self.prompt.value)


class EditFlow:
    """The Extend / Retake buttons of the video cog."""

    def __init__(self, cog: VideoCog) -> None:
        self.cog = cog

    @property
    def bot(self) -> VideoBot:
        return self.cog.bot

    def _may_edit(self, interaction: discord.Interaction, job: JobRecord) -> bool:

        return interaction.user.id == job.user_id or is_moderator(interaction)

    async def _checked(
        self, interaction: discord.Interaction, job_id: int, action: str
    ) -> tuple[JobRecord, str] | None:
        """(job, provider) when the presser may `action` the clip, else None after saying
        why (ephemeral)."""
        job = await self.bot.service.job(job_id)
        if job is None:
            await send_ephemeral(interaction, "That job no longer exists.")
            return None
        if not self._may_edit(interaction, job):
            await send_ephemeral(
                interaction,
                f"Only the member who asked for this video (or a moderator) can {action} it.",
            )
            return None
        provider = self.bot.service.edit_provider(job, Operation(action))
        if provider is None:
            await send_ephemeral(
                interaction, f"No video service configured here can {action} a clip any more."
            )
            return None
        return job, provider

    async def press_edit(self, interaction: discord.Interaction, job_id: int, action: str) -> None:
        """Answer with the modal (the first response, so no defer before it)."""
        checked = await self._checked(interaction, job_id, action)
        if checked is None:
            return
        job, _ = checked
        modal = ExtendModal(self, job) if action == "extend" else RetakeModal(self, job)
        await interaction.response.send_modal(modal)

    async def start(
        self, interaction: discord.Interaction, job: JobRecord, edit: dict[str, Any], prompt: str
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        problem = self.cog.precheck(interaction, {}, None)
        if problem is not None:
            await send_ephemeral(interaction, problem)
            return
        checked = await self._checked(interaction, job.id, edit["kind"])
        if checked is None:
            return
        job, provider = checked
        message = interaction.message
        clip = next(
            (a for a in (message.attachments if message else []) if a.filename.endswith(".mp4")),
            None,
        )
        if message is None or clip is None:
            await send_ephemeral(
                interaction, "That message no longer holds the clip, so it can't be edited."
            )
            return
        edit = {**edit, "source_job_id": job.id, "source_message_id": message.id}
        await self.cog.start_job(interaction, prompt, provider, {}, {"source": clip}, edit=edit)
