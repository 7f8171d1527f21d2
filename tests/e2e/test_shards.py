"""Shards across processes: each client connects only its shard and gets only its guilds'
interactions, routed by the fake Discord as Discord does ((guild_id >> 22) % shard_count)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import discord

from bot import discord_api
from bot.client import ShardedVideoBot, VideoBot, make_bot
from bot.config import Settings
from bot.store import jobs as job_store
from tests.e2e.conftest import bot_settings
from tests.fakes.discord_server import FakeDiscord, running_bot

SMALL = {"duration": 4, "resolution": "512x512"}


class ShardClient(discord.AutoShardedClient):
    def __init__(self, shard_id: int) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(intents=intents, shard_ids=[shard_id], shard_count=2)
        self.interactions: list[int | None] = []

    async def connect(self, *, reconnect: bool = True) -> None:
        await discord_api.prepare_gateway(self)
        await super().connect(reconnect=reconnect)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        self.interactions.append(interaction.guild_id)


async def test_each_shard_gets_only_its_guilds_interactions(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    # shards 0, 1, 0, 1 of 2
    guilds = [fake.add_guild(f"g{n}", guild_id=n << 22) for n in (10, 11, 12, 13)]
    fake.guilds.clear()  # only these four (the default world's guild has a random id)
    fake.guilds.update({g.id: g for g in guilds})
    fake.global_commands.append(
        {"id": "1", "name": "ping", "type": 1, "description": "ping", "options": []}
    )  # as if shard 0's process had synced it
    discord_api.apply_api_base(fake.api_base)  # what DISCORD_API_BASE_URL does
    clients = [ShardClient(0), ShardClient(1)]
    tasks = [asyncio.create_task(c.start(fake.token)) for c in clients]
    try:
        await fake.wait_for(
            lambda: all(len(c.guilds) == 2 for c in clients), 10, "both shards to connect"
        )
        assert sorted(s.shard for s in fake._sessions.values()) == [[0, 2], [1, 2]]  # IDENTIFY
        assert {g.id for g in clients[0].guilds} == {guilds[0].id, guilds[2].id}
        assert {g.id for g in clients[1].guilds} == {guilds[1].id, guilds[3].id}
        for guild in guilds:
            channel = next(iter(guild.channels))
            await fake.send_slash_command(guild.id, channel, guild.owner_id, "ping")
        await fake.wait_for(
            lambda: sum(len(c.interactions) for c in clients) == 4, 10, "the interactions"
        )
        await asyncio.sleep(0.1)
        assert sorted(clients[0].interactions) == [guilds[0].id, guilds[2].id]
        assert sorted(clients[1].interactions) == [guilds[1].id, guilds[3].id]
    finally:
        for client in clients:
            await client.close()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_sharded_settings_make_an_auto_sharded_bot(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    sharded = make_bot(bot_settings(fake_discord, tmp_path, shard_count=3, shard_ids="1-2"))
    assert isinstance(sharded, ShardedVideoBot)
    assert sharded.shard_ids == [1, 2] and sharded.shard_count == 3
    assert not sharded.settings.syncs_commands  # shard 0's process syncs the commands
    owns = sharded.settings.owns_guild
    assert [owns(n << 22) for n in (9, 10, 11, 12)] == [False, True, True, False]  # n % 3
    plain = make_bot(bot_settings(fake_discord, tmp_path))
    assert type(plain) is VideoBot and plain.settings.syncs_commands
    assert plain.settings.owns_guild(9 << 22)


async def test_a_process_does_not_stop_the_jobs_of_another_shards_guilds_at_ready(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """READY lists only this process's shards' guilds: a guild with jobs on another shard is
    not one the bot left (found by tests/faults/test_soak_processes.py: each process's start
    cancelled every other shard's unfinished jobs as "removed from this server")."""
    fake = fake_discord
    guilds = [fake.add_guild(f"g{n}", guild_id=n << 22) for n in (10, 11)]  # shards 0, 1 of 2
    fake.guilds.clear()
    fake.guilds.update({g.id: g for g in guilds})
    member = fake.add_member(guilds[0].id, username="m0").id
    channel = next(iter(guilds[0].channels))

    def settings(shard: int) -> Settings:
        return bot_settings(
            fake, tmp_path, shard_count=2, shard_ids=str(shard), simulator_delay_seconds=30
        )

    async with running_bot(make_bot(settings(0)), fake, wait_for_ready=True) as bot0:
        inter = await fake.send_slash_command(
            guilds[0].id, channel, member, "video", {"prompt": "a long render", **SMALL}
        )
        await inter.wait_for_callback()

        async def submitted() -> bool:
            job = await job_store.get_job(bot0.db, 1)
            return job is not None and job.status.value in ("submitted", "running")

        for _ in range(100):
            if await submitted():
                break
            await asyncio.sleep(0.1)
        assert await submitted()
    # shard 0's process stops (a restart, a deploy); shard 1's starts
    async with running_bot(make_bot(settings(1)), fake, wait_for_ready=True) as bot1:
        assert {g.id for g in bot1.guilds} == {guilds[1].id}
        await asyncio.sleep(1.0)  # on_ready's listeners have run
        job = await job_store.get_job(bot1.db, 1)
        assert job is not None
        assert job.status.value in ("pending", "submitted", "running"), job.failure_reason
