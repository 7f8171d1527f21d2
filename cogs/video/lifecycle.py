"""Gateway events that end a place's jobs: the bot removed from a server (also while it was
down, seen at READY), a channel or a thread deleted. Thin: the work is
`VideoService.stop_jobs_in`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

if TYPE_CHECKING:
    from bot.client import VideoBot

log = logging.getLogger(__name__)

REASON_GUILD = "the bot was removed from this server"
REASON_CHANNEL = "its channel was deleted"
REASON_THREAD = "its thread was deleted"


class VideoLifecycle(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        # Removed while the bot was down: no GUILD_DELETE came. READY lists every guild the
        # bot is in (unavailable ones too), so a guild missing here was really left — if it
        # is on this process's shards (another process's guilds are never in its READY).
        present = {g.id for g in self.bot.guilds}
        for guild_id in await self.bot.service.guilds_with_jobs() - present:
            if self.bot.settings.owns_guild(guild_id):
                await self.bot.service.stop_jobs_in(guild_id, reason=REASON_GUILD)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        # Only a real removal: an outage (GUILD_DELETE `unavailable`) is on_guild_unavailable.
        await self.bot.service.stop_jobs_in(guild.id, reason=REASON_GUILD)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        # Discord sends no THREAD_DELETE for the threads of a deleted channel.
        threads = getattr(channel, "threads", [])
        ids = {channel.id, *(t.id for t in threads)}
        await self.bot.service.stop_jobs_in(channel.guild.id, ids, reason=REASON_CHANNEL)

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        # The raw event: the thread need not be in the cache.
        await self.bot.service.stop_jobs_in(
            payload.guild_id, {payload.thread_id}, reason=REASON_THREAD
        )
