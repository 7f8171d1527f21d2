"""`/video`: the command, its buttons, the live status message and clip delivery (`cog.py`);
the Animate message context menu (`animate.py`), which feeds the same pipeline."""

from __future__ import annotations

from discord.ext import commands

from cogs.video.animate import AnimateCog
from cogs.video.cog import VideoCog
from cogs.video.lifecycle import VideoLifecycle


async def setup(bot: commands.Bot) -> None:
    video = VideoCog(bot)  # type: ignore[arg-type]
    await bot.add_cog(video)
    await bot.add_cog(AnimateCog(bot, video))  # type: ignore[arg-type]
    await bot.add_cog(VideoLifecycle(bot))  # type: ignore[arg-type]
