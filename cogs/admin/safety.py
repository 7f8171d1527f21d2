"""`/videoadmin safety mode:off|spoiler|hold threshold:<0–1>`: the output safety check.

`safety_command` is attached under `/videoadmin` by the admin cog (like `allowance_group`);
`/videoadmin` carries `default_member_permissions=manage_guild` and the callback checks
Manage Server again at run time. The change is audited (bot.safety.set_safety); with no
option the answer shows the current settings, whether the classifier is installed, and how
many clips wait for a moderator.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import discord
from discord import app_commands

from bot import limits, safety
from bot.db import utcnow
from bot.moderation import ModerationError
from cogs.ui.checks import require_manage_guild

NONE = discord.AllowedMentions.none()
Threshold = app_commands.Range[float, limits.SAFETY_THRESHOLD.low, limits.SAFETY_THRESHOLD.high]

MODE_WORDS = {
    "off": "no check: every clip is posted as it is",
    "spoiler": "a clip at or over the threshold is posted behind a spoiler",
    "hold": "a clip at or over the threshold waits in the mod-log channel for Release/Discard",
}


def settings_text(policy: safety.SafetyPolicy, classifier: tuple[bool, str], held: int) -> str:
    """The answer (pure): settings, what they mean, the classifier's state."""
    available, detail = classifier
    lines = [
        f"**Output safety check**: {policy.describe()} — {MODE_WORDS[policy.mode]}.",
        "Age-restricted channels are never held or spoilered.",
    ]
    if policy.mode == "hold" and policy.log_channel_id is None:
        lines.append(
            "⚠️ No mod-log channel is set, so flagged clips are posted as spoilers instead "
            "of held: set one with `/videoadmin logchannel`."
        )
    if available:
        lines.append(f"Classifier: {detail}.")
    else:
        lines.append(
            f"⚠️ Classifier not available ({detail}); only the video service's own flag counts."
        )
    if held:
        lines.append(f"{held} clip(s) wait for a moderator in the mod-log channel.")
    return "\n".join(lines)[:2000]


@app_commands.command(name="safety", description="What happens to clips the safety check flags")
@app_commands.describe(
    mode="off: no check; spoiler: post flagged clips as spoilers; hold: moderators decide",
    threshold="Classifier score (0 to 1) at or over which a clip is flagged (default 0.6)",
)
@app_commands.guild_only()
async def safety_command(
    interaction: discord.Interaction,
    mode: Literal["off", "spoiler", "hold"] | None = None,
    threshold: Threshold | None = None,
) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    if not await require_manage_guild(interaction):
        return
    bot: Any = interaction.client
    guild_id = interaction.guild_id
    assert guild_id is not None  # guild_only
    prefix = ""
    if mode is not None or threshold is not None:
        try:
            change = await safety.set_safety(
                bot.db,
                guild_id,
                mode=mode,
                threshold=threshold,
                actor_id=interaction.user.id,
                now=utcnow(),
            )
        except ModerationError as exc:
            await interaction.followup.send(exc.message, ephemeral=True, allowed_mentions=NONE)
            return
        prefix = f"Changed: {change.summary}\n"
    policy = await safety.guild_policy(bot.db, guild_id)
    classifier = await asyncio.to_thread(safety.classifier_status)
    held = len(await safety.held_clips(bot.db, guild_id))
    await interaction.followup.send(
        (prefix + settings_text(policy, classifier, held))[:2000],
        ephemeral=True,
        allowed_mentions=NONE,
    )
