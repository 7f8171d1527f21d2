"""`/videoadmin usage show|export [days] [member]`: the usage chart and its daily CSV.

`usage_group` is attached under `/videoadmin` by the admin cog (Discord cannot run a group
itself, hence `show`); every callback checks Manage Server again at run time. The numbers
come from `bot.reports` (jobs and quota ledger); the chart is drawn in a worker thread.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from typing import Any

import discord
from discord import app_commands

from bot import limits, reports
from bot.db import utcnow
from bot.reports import MemberUsage, UsageReport
from cogs.ui.checks import require_manage_guild
from cogs.ui.modlog import clip

log = logging.getLogger(__name__)

NONE = discord.AllowedMentions.none()
CHART_FILENAME = "usage.png"
Days = app_commands.Range[int, limits.USAGE_DAYS.low, limits.USAGE_DAYS.high]
DEFAULT_DAYS = 30

usage_group = app_commands.Group(
    name="usage", description="Who uses the video budget, and on what", guild_only=True
)


def _top_lines(members: Sequence[MemberUsage], *, by: str) -> str:
    if not members:
        return "nobody yet"
    lines = []
    for rank, m in enumerate(members, start=1):
        if by == "seconds":
            lines.append(f"{rank}. <@{m.user_id}> — {m.seconds:,.0f} s ({m.clips} clip(s))")
        else:
            lines.append(f"{rank}. <@{m.user_id}> — ${m.spend_usd:,.2f}")
    return clip("\n".join(lines), 1024)


def usage_embed(report: UsageReport, *, title: str) -> discord.Embed:
    """The `show` answer around the chart (pure)."""
    safe = discord.utils.escape_markdown(title)
    embed = discord.Embed(title=clip(safe, 256), colour=discord.Colour.blurple())
    embed.description = report.summary()
    if report.member_id is None:
        embed.add_field(
            name="Top members by seconds", value=_top_lines(report.top_by_seconds, by="seconds")
        )
        embed.add_field(
            name="Top members by spend", value=_top_lines(report.top_by_spend, by="spend")
        )
    if report.budget_usd is not None:
        this_month = report.days[-1].month_to_date_usd
        budget = f"${this_month:,.2f} of ${report.budget_usd:,.2f} this month"
        if report.member_id is not None:
            budget += " (this member's share)"
        embed.add_field(name="Monthly budget", value=budget, inline=False)
    embed.set_image(url=f"attachment://{CHART_FILENAME}")
    embed.set_footer(
        text=f"{report.first_day.isoformat()} → {report.last_day.isoformat()} (UTC days) · "
        "a job counts on the day it was asked for · spend net of refunds · "
        f"chart {reports.WIDTH_PX}×{reports.HEIGHT_PX}"
    )
    return embed


def _label(guild: discord.Guild, member: discord.abc.User | None, days: int) -> str:
    who = f"{member.display_name} in {guild.name}" if member else guild.name
    return f"Video usage · {who} · last {days} day(s)"


async def _report(
    interaction: discord.Interaction, days: int, member: discord.abc.User | None
) -> tuple[discord.Guild, UsageReport] | None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    if not await require_manage_guild(interaction):
        return None
    guild = interaction.guild
    if guild is None:
        await interaction.followup.send(
            "Use this command inside the server.", ephemeral=True, allowed_mentions=NONE
        )
        return None
    client: Any = interaction.client
    report = await reports.usage_report(
        client.db, guild.id, days=days, now=utcnow(), member_id=member.id if member else None
    )
    return guild, report


@usage_group.command(name="show", description="A chart of video seconds, spend and failures")
@app_commands.describe(
    days="How many days back, today included (default 30)", member="Only this member"
)
async def show(
    interaction: discord.Interaction,
    days: Days = DEFAULT_DAYS,
    member: discord.Member | discord.User | None = None,
) -> None:
    found = await _report(interaction, days, member)
    if found is None:
        return
    guild, report = found
    title = _label(guild, member, days)
    try:
        png = await asyncio.to_thread(reports.render_usage_png, report, title)
    except Exception:
        log.exception("drawing the usage chart of guild %s failed", guild.id)
        await interaction.followup.send(
            f"The chart could not be drawn ({report.summary()}). "
            "`/videoadmin usage export` gives the same numbers as CSV.",
            ephemeral=True,
            allowed_mentions=NONE,
        )
        return
    await interaction.followup.send(
        embed=usage_embed(report, title=title),
        file=discord.File(io.BytesIO(png), filename=CHART_FILENAME),
        ephemeral=True,
        allowed_mentions=NONE,
    )


@usage_group.command(name="export", description="The daily usage table as CSV")
@app_commands.describe(
    days="How many days back, today included (default 30)", member="Only this member"
)
async def export(
    interaction: discord.Interaction,
    days: Days = DEFAULT_DAYS,
    member: discord.Member | discord.User | None = None,
) -> None:
    found = await _report(interaction, days, member)
    if found is None:
        return
    guild, report = found
    first, last = report.first_day.isoformat(), report.last_day.isoformat()
    scope = f"-{member.id}" if member else ""
    name = f"usage-{guild.id}{scope}-{first}-{last}.csv"
    who = f" for {member.mention}" if member else ""
    await interaction.followup.send(
        f"Daily usage{who} from {first} to {last} (UTC), one row per day: {report.summary()}",
        file=discord.File(io.BytesIO(reports.daily_csv(report)), filename=name),
        ephemeral=True,
        allowed_mentions=NONE,
    )
