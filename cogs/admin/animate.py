"""`/videoadmin animate [others]`: may members animate messages they did not write?

Attached under `/videoadmin` by the admin cog (Manage Server, checked again at run time).
The change is audited (`bot.jobs.animate.set_others_allowed`); the policy itself is
described in `bot/jobs/animate.py` and the README's admin guide.
"""

from __future__ import annotations

import discord
from discord import app_commands

from bot.db import utcnow
from bot.jobs import animate as policy
from cogs.ui.checks import require_manage_guild

NONE = discord.AllowedMentions.none()

OWN_ONLY = (
    "Members can use **Animate** only on their own messages (the default): another member's, "
    "a bot's or a webhook's images need `/videoadmin animate others:True`."
)
OTHERS_TOO = (
    "Members can use **Animate** on any message in a channel they can use `/video` in, "
    "including other members', bots' and webhooks' images. Each clip's log entry names the "
    "source message and its author."
)


@app_commands.command(name="animate", description="Who may use Animate on whose images")
@app_commands.describe(
    others="True: members may animate other members' (and bots') images; leave out to see it"
)
async def animate_setting(interaction: discord.Interaction, others: bool | None = None) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    if not await require_manage_guild(interaction):
        return
    assert interaction.guild_id is not None
    bot = interaction.client
    db = bot.db  # type: ignore[attr-defined]
    if others is None:
        allowed = await policy.others_allowed(db, interaction.guild_id)
        text = OTHERS_TOO if allowed else OWN_ONLY
    else:
        change = await policy.set_others_allowed(
            db, interaction.guild_id, others, actor_id=interaction.user.id, now=utcnow()
        )
        text = f"Done — {change.summary}. " + (OTHERS_TOO if others else OWN_ONLY)
    await interaction.followup.send(text, ephemeral=True, allowed_mentions=NONE)
