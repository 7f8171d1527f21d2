"""Animate: the message context menu (Apps → Animate) that turns a posted image into a clip.

Thin, like `/video`: the menu's first answer is the modal (or an ephemeral refusal from
checks that need no I/O beyond one settings read), the modal's submit is deferred at once
and then handed to `VideoCog.start_job`, the same pipeline as `/video` (checks, quote,
allowance, moderation, status message, delivery, audit). What the message's attachments
become and whose messages may be animated is decided in `bot.jobs.animate`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.jobs import SourceMessage
from bot.jobs import animate as policy
from bot.jobs.service import RequestRefused
from bot.limits import CLIP_SECONDS
from cogs.video.cog import PROMPT_MAX, VideoCog
from cogs.video.common import send_ephemeral

if TYPE_CHECKING:
    from bot.client import VideoBot

log = logging.getLogger(__name__)

MENU_NAME = "Animate"
MODAL_TITLE = "Animate this message"
MODAL_TIMEOUT_S = 15 * 60  # a modal left open longer is dropped (its images' links age too)
SETTING_READ_TIMEOUT_S = 1.0  # before the modal; the submit checks again without a limit


class AnimateModal(discord.ui.Modal):
    """Prompt (prefilled with the message's text) and duration; submit starts the job."""

    def __init__(
        self,
        cog: AnimateCog,
        *,
        text: str,
        inputs: dict[str, discord.Attachment],
        source: SourceMessage,
    ) -> None:
        super().__init__(title=MODAL_TITLE, timeout=MODAL_TIMEOUT_S)
        self.cog = cog
        self.inputs = inputs
        self.source = source
        self.prompt: discord.ui.TextInput[AnimateModal] = discord.ui.TextInput(
            label="Prompt: what should happen in the clip",
            style=discord.TextStyle.paragraph,
            default=policy.prefill(text, PROMPT_MAX),
            placeholder="e.g. the waves roll in slowly, gulls call",
            min_length=1,
            max_length=PROMPT_MAX,
        )
        self.duration: discord.ui.TextInput[AnimateModal] = discord.ui.TextInput(
            label="Duration in seconds (optional)",
            placeholder=(
                f"{int(CLIP_SECONDS.low)}–{int(CLIP_SECONDS.high)}; empty: the provider's default"
            ),
            required=False,
            max_length=12,
        )
        self.add_item(self.prompt)
        self.add_item(self.duration)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.cog.submit(interaction, self)

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction, error: Exception
    ) -> None:
        log.exception("the Animate modal failed", exc_info=error)
        await send_ephemeral(
            interaction, "Something went wrong on my side; nothing was charged. Try again."
        )


class AnimateCog(commands.Cog):
    def __init__(self, bot: VideoBot, video: VideoCog) -> None:
        self.bot = bot
        self.video = video
        self.menu = app_commands.ContextMenu(name=MENU_NAME, callback=self.animate)
        app_commands.guild_only()(self.menu)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def animate(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The menu: answer with the modal, or say at once why this message can't be used."""
        images = [a for a in message.attachments if policy.is_image(a.content_type, a.filename)]
        slots = policy.input_slots(len(images))
        inputs = {name: images[index] for name, index in slots.items()}
        problem = self.video.precheck(interaction, inputs, None)
        if problem is None and not inputs:
            problem = policy.MSG_NO_IMAGE
        source = self._source(interaction, message)
        if problem is None and source is not None:
            problem = await self._author_problem(interaction, source, wait=SETTING_READ_TIMEOUT_S)
        if problem is not None or source is None:
            await send_ephemeral(interaction, problem or "Animate works in servers only.")
            return
        modal = AnimateModal(self, text=message.clean_content, inputs=inputs, source=source)
        await interaction.response.send_modal(modal)

    async def submit(self, interaction: discord.Interaction, modal: AnimateModal) -> None:
        """The modal's submit: local checks, defer, then the `/video` pipeline."""
        try:
            duration = policy.parse_duration(modal.duration.value)
        except RequestRefused as exc:
            await send_ephemeral(interaction, exc.message)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        problem = await self._author_problem(interaction, modal.source, wait=None)
        if problem is not None:
            await self.video.refuse(interaction, problem)
            return
        await self.video.start_job(
            interaction,
            modal.prompt.value,
            None,
            {"duration": duration},
            modal.inputs,
            source=modal.source,
        )

    @staticmethod
    def _source(interaction: discord.Interaction, message: discord.Message) -> SourceMessage | None:
        if interaction.guild_id is None:
            return None
        return SourceMessage(
            guild_id=interaction.guild_id,
            channel_id=message.channel.id,
            message_id=message.id,
            author_id=message.author.id,
            author_kind=policy.author_kind(
                is_bot=message.author.bot, webhook_id=message.webhook_id
            ),
        )

    async def _author_problem(
        self, interaction: discord.Interaction, source: SourceMessage, *, wait: float | None
    ) -> str | None:
        """Why this member may not animate this message's author's images (None: they may,
        or the setting could not be read within `wait` seconds: the submit checks again)."""
        if policy.is_own(interaction.user.id, source.author_id, source.author_kind):
            return None
        try:
            async with asyncio.timeout(wait):
                allowed = await policy.others_allowed(self.bot.db, source.guild_id)
        except TimeoutError:
            log.warning("reading the Animate setting took over %s s; checking at submit", wait)
            return None
        return None if allowed else policy.MSG_OTHERS_OFF
