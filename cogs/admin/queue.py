"""`/videoadmin queue`: every unfinished job in the server, with a Cancel button per job.

`queue_command` is attached under `/videoadmin` by the admin cog (like the allowance
group); it and its Refresh button check Manage Server at run time. The Cancel buttons are
the jobs' own persistent Cancel buttons (`cogs.video.buttons.JobButton`), so a press goes
through the one cancel path (owner-or-moderator check, `VideoService.cancel` with its
refund, the audited moderator cancel) and works after a restart too. Refresh re-reads
the queue into the same (ephemeral) message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import discord
from discord import app_commands

from bot import reports
from bot.db import utcnow
from bot.jobs import JobRecord
from cogs.ui import timefmt
from cogs.ui.checks import require_manage_guild
from cogs.video.buttons import JobButton

NONE = discord.AllowedMentions.none()
# Discord: 5 rows of 5 buttons. Four rows of Cancel buttons, the last row for Refresh.
JOBS_WITH_BUTTONS = 20
DESCRIPTION_LIMIT = 4000
CANCELLABLE = frozenset({"pending", "submitted", "running", "downloading"})
STATE_WORDS = {
    "pending": "waiting",
    "submitted": "queued at the provider",
    "running": "rendering",
    "downloading": "downloading the clip",
    "delivering": "posting the clip",
}


def _age(created_at: datetime, now: datetime) -> str:
    seconds = max(0, int((now - created_at).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def queue_line(job: JobRecord, position: int | None, now: datetime) -> str:
    """One job: number, member, state, provider, place in line or progress, age (pure)."""
    status = str(job.status)
    state = STATE_WORDS.get(status, status)
    if position is not None:
        state += f", #{position} in line"
    elif status == "running" and job.progress is not None and 0 < job.progress < 1:
        state += f", {job.progress * 100:.0f}%"
    return (
        f"**#{job.id}** <@{job.user_id}> · {state} · {job.provider} · "
        f"{job.seconds:g} s clip · {_age(job.created_at, now)} old "
        f"({timefmt.discord_time(job.created_at, 'R')})"
    )


def queue_embed(items: Sequence[tuple[JobRecord, int | None]], now: datetime) -> discord.Embed:
    """The queue message (pure)."""
    embed = discord.Embed(title="Video queue", colour=discord.Colour.blurple(), timestamp=now)
    if not items:
        embed.description = "No unfinished jobs in this server."
        return embed
    text = ""
    for shown, (job, position) in enumerate(items):
        line = queue_line(job, position, now)
        more = f"\n… and {len(items) - shown} more (cancel some, then Refresh)"
        if len(text) + len(line) + 1 + len(more) > DESCRIPTION_LIMIT:
            text += more
            break
        text += ("\n" if text else "") + line
    embed.description = text
    embed.set_footer(text=f"{len(items)} unfinished job(s) · Cancel refunds the member · as of")
    return embed


def queue_view(items: Sequence[tuple[JobRecord, int | None]]) -> discord.ui.View:
    """A Cancel button per cancellable job (the first JOBS_WITH_BUTTONS), and Refresh."""
    view = discord.ui.View(timeout=None)
    buttons = [job for job, _ in items if str(job.status) in CANCELLABLE][:JOBS_WITH_BUTTONS]
    for n, job in enumerate(buttons):
        button = JobButton("cancel", job.id)
        button.item.label = f"Cancel #{job.id}"
        button.item.row = n // 5
        view.add_item(button)
    view.add_item(QueueRefresh())
    return view


async def _render(client: Any, guild_id: int) -> tuple[discord.Embed, discord.ui.View]:
    items = await reports.guild_queue(client.db, guild_id, client.service.queue_position)
    return queue_embed(items, utcnow()), queue_view(items)


class QueueRefresh(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"ltx:queue:refresh"):
    """Re-read the queue into the same message (works after a restart too)."""

    def __init__(self) -> None:
        super().__init__(
            discord.ui.Button(
                label="Refresh",
                style=discord.ButtonStyle.primary,
                custom_id="ltx:queue:refresh",
                row=4,
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> QueueRefresh:
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        if not await require_manage_guild(interaction) or interaction.guild_id is None:
            return
        # Reading the queue is one local query: answered well within Discord's 3 s.
        embed, view = await _render(interaction.client, interaction.guild_id)
        await interaction.response.edit_message(embed=embed, view=view, allowed_mentions=NONE)


@app_commands.command(name="queue", description="Every unfinished video job here, with Cancel")
@app_commands.guild_only()
async def queue_command(interaction: discord.Interaction) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    if not await require_manage_guild(interaction) or interaction.guild_id is None:
        return
    embed, view = await _render(interaction.client, interaction.guild_id)
    await interaction.followup.send(
        embed=embed, view=view, ephemeral=True, allowed_mentions=NONE, wait=True
    )
