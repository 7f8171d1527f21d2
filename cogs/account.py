"""`/quota [member]` and `/jobs`: a member's allowance and recent jobs (ephemeral)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import quota
from bot.db import utcnow
from bot.moderation import jump_url
from cogs.ui import timefmt
from cogs.ui.checks import has_manage_guild

if TYPE_CHECKING:
    from bot.client import VideoBot

JOBS_SHOWN = 10
PROMPT_PREVIEW = 90
STATUS_ICONS = {
    "pending": "⏳",
    "submitted": "⏳",
    "running": "⚙️",
    "downloading": "⚙️",
    "delivering": "📤",
    "delivered": "✅",
    "failed": "❌",
    "cancelled": "🚫",
    "expired": "⌛",
}
NONE = discord.AllowedMentions.none()


def role_ids_of(user: discord.abc.User | discord.Member) -> list[int]:
    return [role.id for role in getattr(user, "roles", ())]


def _preview(text: str, limit: int = PROMPT_PREVIEW) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def quota_embed(usage: quota.Usage, *, name: str) -> discord.Embed:
    """The /quota answer (pure: no Discord calls)."""
    allowance = usage.allowance
    embed = discord.Embed(title=f"Video allowance — {discord.utils.escape_markdown(name)}"[:256])
    embed.add_field(
        name="Allowance",
        value=f"{quota.fmt_allowance(allowance.seconds, usage.window_seconds)} "
        f"({allowance.describe()})",
        inline=False,
    )
    embed.add_field(name="Used", value=quota.fmt_seconds(usage.used))
    embed.add_field(name="Reserved", value=quota.fmt_seconds(usage.reserved))
    embed.add_field(
        name="Left", value="unlimited" if usage.left is None else quota.fmt_seconds(usage.left)
    )
    if usage.next_refill_at is not None:
        refill = (
            f"{quota.fmt_seconds(usage.next_refill_seconds)} at "
            f"{timefmt.when(usage.next_refill_at)}"
        )
    else:
        refill = "nothing to refill"
    embed.add_field(name="Next refill", value=refill, inline=False)
    cap = "" if usage.max_concurrent is None else f" of {usage.max_concurrent}"
    embed.add_field(name="Active jobs", value=f"{usage.active_jobs}{cap}")
    if usage.cooldown_until is not None:
        embed.add_field(
            name="Cooldown", value=f"next clip {timefmt.discord_time(usage.cooldown_until, 'R')}"
        )
    embed.set_footer(
        text=f"Rolling {quota.fmt_window(usage.window_seconds)} window. HD clips (more than "
        f"1280×720) count {usage.hd_weight:g}×."
    )
    return embed


def jobs_embed(records: Sequence[Any], *, name: str) -> discord.Embed:
    """The /jobs answer: newest first, one short block per job, a delivered one with a jump
    link to the message that carries its clip (pure)."""
    embed = discord.Embed(title=f"Your recent jobs — {discord.utils.escape_markdown(name)}"[:256])
    if not records:
        embed.description = "No jobs yet. Make one with `/video`."
        return embed
    blocks = []
    for job in records:
        icon = STATUS_ICONS.get(str(job.status), "•")
        line = (
            f"{icon} **#{job.id}** {job.status} · {quota.fmt_seconds(job.seconds)} · "
            f"${job.cost_usd:.2f} · {timefmt.discord_time(job.created_at, 'R')}"
        )
        link = jump_url(job.guild_id, job.result_channel_id, job.result_message_id)
        if link is not None and str(job.status) == "delivered":
            line += f" · [open the clip]({link})"
        block = f"{line}\n> {_preview(job.prompt)}"
        if job.failure_reason and str(job.status) in ("failed", "expired", "cancelled"):
            block += f"\n-# {_preview(job.failure_reason, 150)}"
        blocks.append(block)
    text = ""
    for block in blocks:
        if len(text) + len(block) + 2 > 4000:
            break
        text += ("\n\n" if text else "") + block
    embed.description = text
    return embed


class AccountCog(commands.Cog):
    def __init__(self, bot: VideoBot | commands.Bot) -> None:
        self.bot: Any = bot

    @app_commands.command(name="quota", description="Your video allowance: used, left, refills")
    @app_commands.describe(member="Whose allowance to show (others need Manage Server)")
    @app_commands.guild_only()
    async def quota_command(
        self, interaction: discord.Interaction, member: discord.Member | None = None
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        target: discord.abc.User | discord.Member = member or interaction.user
        if target.id != interaction.user.id and not has_manage_guild(interaction):
            await interaction.followup.send(
                "Viewing someone else's allowance needs the **Manage Server** permission; "
                "run `/quota` without a member to see your own.",
                ephemeral=True,
                allowed_mentions=NONE,
            )
            return
        usage = await quota.usage(
            self.bot.db,
            guild_id=interaction.guild_id,
            user_id=target.id,
            role_ids=role_ids_of(target),
            now=utcnow(),
            default_seconds=self.bot.settings.quota_seconds_per_day,
            default_max_concurrent=self.bot.settings.max_active_jobs_per_member,
        )
        await interaction.followup.send(
            embed=quota_embed(usage, name=target.display_name),
            ephemeral=True,
            allowed_mentions=NONE,
        )

    @app_commands.command(name="jobs", description="Your recent video jobs and their status")
    @app_commands.guild_only()
    async def jobs_command(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        records = await self.bot.service.recent_jobs(
            interaction.guild_id, interaction.user.id, JOBS_SHOWN
        )
        await interaction.followup.send(
            embed=jobs_embed(records, name=interaction.user.display_name),
            ephemeral=True,
            allowed_mentions=NONE,
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(AccountCog(bot))
