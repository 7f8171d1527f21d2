"""`/videoadmin …`: the admin cog (`cog.py`), its allowance, provider and usage subgroups
(`allowance.py`, `providers.py`, `usage.py`) and the queue (`queue.py`)."""

from __future__ import annotations

from discord.ext import commands

from cogs.admin.cog import AdminCog


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(AdminCog(bot))
