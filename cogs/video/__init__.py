"""`/video`: the command, its buttons, the live status message and clip delivery (`cog.py`)."""

from __future__ import annotations

from discord.ext import commands

from cogs.video.cog import VideoCog
from cogs.video.lifecycle import VideoLifecycle


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(VideoCog(bot))  # type: ignore[arg-type]
    await bot.add_cog(VideoLifecycle(bot))  # type: ignore[arg-type]
