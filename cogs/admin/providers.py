"""`/videoadmin provider …`: each provider's health, and the guild's fallback order.

`provider_group` is attached under `/videoadmin` by the admin cog (like the allowance
subgroup); `/videoadmin` carries `default_member_permissions=manage_guild` and every
callback here checks Manage Server again at run time. Answers are ephemeral; a new order
is audited (`bot.jobs.failover.set_order`).
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.jobs.failover import ProviderOrderError
from cogs.ui.checks import require_manage_guild
from cogs.ui.failover import status_text

NONE = discord.AllowedMentions.none()

provider_group = app_commands.Group(
    name="provider",
    description="Video providers: health, budget use, latency and the fallback order",
    guild_only=True,
)


async def _begin(interaction: discord.Interaction) -> Any | None:
    """Defer, check Manage Server: the bot, or None when refused (already answered)."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    if not await require_manage_guild(interaction):
        return None
    return interaction.client


@provider_group.command(
    name="status", description="Each provider's health, budget use and recent latency"
)
async def status(interaction: discord.Interaction) -> None:
    bot = await _begin(interaction)
    if bot is None:
        return
    assert interaction.guild_id is not None
    items = await bot.service.provider_health()
    order = await bot.service.provider_order(interaction.guild_id)
    text = status_text(items, order)
    await interaction.followup.send(text, ephemeral=True, allowed_mentions=NONE)


@provider_group.command(
    name="order", description="Providers to switch to, in turn, when the chosen one is failing"
)
@app_commands.describe(
    providers="Provider names separated by commas, e.g. leonardo, bytecompute; none clears it",
)
async def order(interaction: discord.Interaction, providers: str) -> None:
    bot = await _begin(interaction)
    if bot is None:
        return
    assert interaction.guild_id is not None
    try:
        change = await bot.service.set_provider_order(
            interaction.guild_id, providers, actor_id=interaction.user.id
        )
    except ProviderOrderError as exc:
        text = exc.message
    else:
        text = f"Done — {change.summary}."
        if change.new:
            text += (
                " When the provider a member asks for is failing, the next healthy one in "
                "this order that can make the clip is used automatically."
            )
        else:
            text += " Members are offered another provider (with its price) instead."
    await interaction.followup.send(text[:2000], ephemeral=True, allowed_mentions=NONE)


@order.autocomplete("providers")
async def _providers_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Complete the last name of a comma-separated list from the configured providers."""
    configured = list(getattr(interaction.client, "providers", {}))
    head, _, last = current.rpartition(",")
    taken = {p.strip().lower() for p in head.split(",") if p.strip()}
    prefix = f"{head}, " if head else ""
    choices = [
        prefix + name
        for name in configured
        if name not in taken and name.startswith(last.strip().lower())
    ]
    if not head and "none".startswith(last.strip().lower()):
        choices.append("none")
    return [app_commands.Choice(name=c[:100], value=c[:100]) for c in choices][:25]
