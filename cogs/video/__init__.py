"""`/video`: the command, its buttons, the live status message and clip delivery (`cog.py`)."""

from __future__ import annotations

from discord.ext import commands

from cogs.video.cog import VideoCog


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(VideoCog(bot))  # type: ignore[arg-type]
