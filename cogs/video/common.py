"""Small helpers shared by the /video command, its status message and clip delivery."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from bot import quota
from bot.db import utcnow
from bot.jobs import JobRecord
from bot.jobs.service import Requester
from cogs.ui import text as render

if TYPE_CHECKING:
    from bot.client import VideoBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


def requester_only(user_id: int) -> discord.AllowedMentions:
    """Mentions that can ping the requester and nobody else."""
    return discord.AllowedMentions(
        everyone=False, roles=False, users=[discord.Object(user_id)], replied_user=False
    )


def requester(interaction: discord.Interaction) -> Requester:
    assert interaction.guild_id is not None and interaction.channel_id is not None
    return Requester(
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        role_ids=[r.id for r in getattr(interaction.user, "roles", ())],
    )


async def send_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer whether or not the interaction was acknowledged already."""
    text = render.shorten_block(text)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
    except discord.HTTPException:
        log.warning("could not send an ephemeral message for interaction %s", interaction.id)


def header_of(job: JobRecord) -> str:
    """The public status header of a job as it stands (provider-reported changes included)."""
    return render.public_header(
        job.request,
        job_id=job.id,
        user_id=job.user_id,
        adjustments=job.adjustments or job.request.adjustments,
        cost_usd=job.cost_usd,
    )


async def allowance_left(bot: VideoBot, who: Requester) -> float | None:
    """Seconds of allowance the member has left now (None: unlimited, or unreadable)."""
    assert who.guild_id is not None
    try:
        usage = await quota.usage(
            bot.db,
            guild_id=who.guild_id,
            user_id=who.user_id,
            role_ids=list(who.role_ids),
            now=utcnow(),
            default_seconds=bot.settings.quota_seconds_per_day,
        )
    except Exception:
        log.exception("reading the allowance failed")
        return None
    return usage.left
