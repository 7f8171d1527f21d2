"""Issue 13 item 6: the bot removed from a server, or a channel or thread deleted, stops
that place's unfinished jobs (with the provider's cancel) instead of rendering on at the
provider's cost; work the provider already accepted (and billed) stays in the server's
monthly spend while the member gets their seconds back."""

from __future__ import annotations

import dataclasses

import pytest

from bot.db import utcnow
from bot.providers.simulator import SIMULATOR_LIMITS, SimulatorProvider
from bot.store import quotas as ledger

SMALL = {"duration": 4, "resolution": "512x512"}  # $0.08 on the simulator


@pytest.fixture
def one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = dataclasses.replace(SIMULATOR_LIMITS, max_concurrency=1)
    monkeypatch.setattr(SimulatorProvider, "limits", limits)


async def member_seconds(v, job_id: int) -> float:
    return sum(s for jid, _kind, s, _user in await v.ledger() if jid == job_id)


async def month_spend(v) -> float:
    async with v.bot.db.transaction() as conn:
        spent = await ledger.guild_spend(conn, v.world.guild_id, month=ledger.month_key(utcnow()))
        again = await ledger.guild_spend_from_ledger(
            conn, v.world.guild_id, month=ledger.month_key(utcnow())
        )
    assert spent == pytest.approx(again)
    return spent


async def test_a_deleted_channel_stops_its_jobs_and_keeps_the_billed_spend(
    video_bot, fake_discord, one_at_a_time
) -> None:
    w = fake_discord.world
    async with video_bot(simulator_delay_seconds=30) as v:
        await v.status(await v.command({"prompt": "running in general", **SMALL}))
        await v.wait_job(1, "submitted", "running")
        await v.status(await v.command({"prompt": "queued in general", **SMALL}))
        bob = fake_discord.add_member(w.guild_id, username="bob")
        elsewhere = await v.command(
            {"prompt": "elsewhere", **SMALL}, channel_id=w.other_channel_id, user_id=bob.id
        )
        await v.status(elsewhere)
        await v.wait_job(2, "pending")
        assert await month_spend(v) == pytest.approx(0.24)

        fake_discord.delete_channel(w.channel_id)
        await v.wait_job(1, "cancelled", timeout=10)
        await v.wait_job(2, "cancelled", timeout=10)
        await fake_discord.wait_for(lambda: v.bot.tracker.stats["cancel"] >= 1, 5, "remote cancel")
        assert (await v.job(3)).status.value in ("pending", "submitted", "running")
        # Members are not charged for clips they never get...
        assert await member_seconds(v, 1) == 0 and await member_seconds(v, 2) == 0
        # ...but what the provider accepted (job 1) stays in the month's spend; the queued
        # one never reached it. Job 3 still holds its reservation.
        assert await month_spend(v) == pytest.approx(0.08 + 0.08)
        assert "channel was deleted" in (await v.job(1)).failure_reason


async def test_removed_from_the_server_stops_its_jobs_but_an_outage_does_not(
    video_bot, fake_discord
) -> None:
    w = fake_discord.world
    async with video_bot(simulator_delay_seconds=30) as v:
        await v.status(await v.command({"prompt": "a long render", **SMALL}))
        await v.wait_job(1, "submitted", "running")

        fake_discord.guild_outage(w.guild_id)  # GUILD_DELETE unavailable: still a member
        await fake_discord.wait_for(
            lambda: v.bot.get_guild(w.guild_id) is None or v.bot.get_guild(w.guild_id).unavailable,
            5,
            "the outage seen",
        )
        assert (await v.job(1)).status.value in ("submitted", "running")

        fake_discord.remove_bot_from_guild(w.guild_id)
        job = await v.wait_job(1, "cancelled", timeout=10)
        assert "removed from this server" in job.failure_reason
        await fake_discord.wait_for(lambda: v.bot.tracker.stats["cancel"] >= 1, 5, "remote cancel")
        assert await member_seconds(v, 1) == 0
        assert await month_spend(v) == pytest.approx(0.08)


async def test_a_deleted_thread_stops_its_jobs(video_bot, fake_discord) -> None:
    w = fake_discord.world
    thread_id = fake_discord.add_thread(w.channel_id, "renders")
    async with video_bot(simulator_delay_seconds=30) as v:
        in_thread = await v.command({"prompt": "in a thread", **SMALL}, channel_id=thread_id)
        await v.status(in_thread)
        await v.wait_job(1, "submitted", "running")
        await v.status(await v.command({"prompt": "in the channel", **SMALL}))
        await v.wait_job(2, "pending", "submitted", "running")
        fake_discord.delete_thread(thread_id)
        await v.wait_job(1, "cancelled", timeout=10)
        assert (await v.job(2)).status.value in ("pending", "submitted", "running")


async def test_removed_while_the_bot_was_down_stops_its_jobs_at_start(
    video_bot, fake_discord
) -> None:
    """No GUILD_DELETE reaches a stopped bot: at READY, jobs of servers it is no longer in
    are stopped too."""
    w = fake_discord.world
    fake_discord.add_guild("Another server")  # the bot is still somewhere
    async with video_bot(simulator_delay_seconds=30) as v:
        await v.status(await v.command({"prompt": "a long render", **SMALL}))
        await v.wait_job(1, "submitted", "running")
    fake_discord.remove_bot_from_guild(w.guild_id)
    async with video_bot(simulator_delay_seconds=30) as v:
        job = await v.wait_job(1, "cancelled", timeout=10)
        assert "removed from this server" in job.failure_reason
        assert await member_seconds(v, 1) == 0
        assert await month_spend(v) == pytest.approx(0.08)
