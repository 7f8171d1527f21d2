"""Run-time permission checks shared by the cogs.

`default_member_permissions` only hides a command; server admins can change who sees it
(Server Settings → Integrations), so every privileged callback checks again at run time.
"""

from __future__ import annotations

import discord

MANAGE_GUILD_REFUSAL = "You need the **Manage Server** permission for this."


def has_manage_guild(interaction: discord.Interaction) -> bool:
    """True when the invoking member has Manage Server (or Administrator) in this guild."""
    if interaction.guild_id is None:
        return False
    perms = getattr(interaction.user, "guild_permissions", None)
    if perms is None:  # a bare User: outside a guild, or the member is not cached
        return False
    return bool(perms.manage_guild or perms.administrator)


def is_moderator(interaction: discord.Interaction) -> bool:
    """Manage Messages / Manage Server / Administrator in this channel (Discord-computed)."""
    perms = interaction.permissions
    return bool(perms.manage_messages or perms.manage_guild or perms.administrator)


async def require_manage_guild(interaction: discord.Interaction) -> bool:
    """Check Manage Server; when missing, answer ephemerally and return False."""
    if has_manage_guild(interaction):
        return True
    if interaction.response.is_done():
        await interaction.followup.send(
            MANAGE_GUILD_REFUSAL, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )
    else:
        await interaction.response.send_message(
            MANAGE_GUILD_REFUSAL, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )
    return False
