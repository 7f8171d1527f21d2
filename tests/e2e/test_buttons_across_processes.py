"""Buttons across processes (issue 14): a click reaches the process of the guild's shard,
which need not be the one driving the job. Two bots (shards 0 and 1 of 2, each its own
INSTANCE_NAME and connection pool) on one PostgreSQL database and one fake ByteCompute: a
job admitted by the guild's process A is taken over by B while A is down; A, back, gets the
member's Cancel and Again clicks: Cancel ends B's job (refunded, B stops driving it at
once), Again makes a new job that is delivered once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.client import make_bot
from bot.store import leases as lease_store
from bot.store.jobs import Status
from tests.e2e.conftest import VideoHarness, bot_settings
from tests.fakes.bytecompute_server import FakeByteCompute
from tests.fakes.discord_server import FakeDiscord, running_bot


@asynccontextmanager
async def process(
    fake: FakeDiscord, tmp_path: Path, shard: int, name: str, **settings: Any
) -> AsyncIterator[Any]:
    bot = make_bot(
        bot_settings(
            fake, tmp_path, shard_count=2, shard_ids=str(shard), instance_name=name, **settings
        )
    )
    has_guild = fake.world is not None and (fake.world.guild_id >> 22) % 2 == shard
    async with running_bot(bot, fake, wait_for_ready=not has_guild) as running:
        yield running


def settings_for(provider: FakeByteCompute, pg_url: str) -> dict[str, Any]:
    return {
        "database_url": pg_url,
        "lease_seconds": 6.0,
        "bytecompute_api_key": provider.api_key,
        "bytecompute_base_url": provider.base_url,
    }


async def hand_over(
    fake: FakeDiscord,
    tmp_path: Path,
    shard: int,
    b: Any,
    job_id: int,
    settings: dict[str, Any],
    options: dict[str, Any],
) -> Any:
    """A admits a job, stops (gracefully) while the provider works on it, and B takes the
    job over; returns the job's public status message."""  # fmt: skip
    async with process(fake, tmp_path, shard, "a", **settings) as a:
        v = VideoHarness(fake, a, tmp_path)
        inter = await v.command(options)
        status = await v.status(inter)
        await v.wait_job(job_id, "submitted", "running")
        owner, _ = await lease_store.lease_of(a.db, job_id)
        assert owner == "a"
    for _ in range(200):  # B's next beat claims it (within a third of LEASE_SECONDS)
        owner, _ = await lease_store.lease_of(b.db, job_id)
        if owner == "b":
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"B never took job {job_id} over (lease owner {owner!r})")


async def test_cancel_from_the_process_that_does_not_hold_the_job(
    fake_discord: FakeDiscord, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_discord
    monkeypatch.chdir(tmp_path)  # on PostgreSQL the job files are under ./data (one volume)
    assert fake.world is not None
    here = (fake.world.guild_id >> 22) % 2  # the shard of the member's guild
    async with FakeByteCompute(job_seconds=60.0) as provider:
        settings = settings_for(provider, pg_url)
        async with process(fake, tmp_path, 1 - here, "b", **settings) as b:
            options = {"prompt": "harbour at dawn", "provider": "bytecompute"}
            status = await hand_over(fake, tmp_path, here, b, 1, settings, options)
            owner, _ = await lease_store.lease_of(b.db, 1)
            assert owner == "b"
            async with process(fake, tmp_path, here, "a", **settings) as a:
                v = VideoHarness(fake, a, tmp_path)
                press = await v.press(status, "ltx:cancel:1")  # reaches A, not B
                assert "cancelled; nothing was charged" in await v.reply(press)
                cancelled = await v.wait_job(1, "cancelled")
                assert cancelled.status is Status.CANCELLED
                await fake.wait_for(lambda: 1 not in b.tracker._entries, 2, "B to stop job 1")
                kinds = [kind for job_id, kind, *_ in await v.ledger() if job_id == 1]
                assert kinds == ["reserve", "refund"]
                await fake.wait_for(lambda: "was cancelled" in status.content, 5, "the ending")


async def test_again_and_delete_on_a_clip_the_other_process_posted(
    fake_discord: FakeDiscord, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_discord
    monkeypatch.chdir(tmp_path)
    assert fake.world is not None
    here = (fake.world.guild_id >> 22) % 2
    async with FakeByteCompute(job_seconds=3.0) as provider:
        settings = settings_for(provider, pg_url)
        async with process(fake, tmp_path, 1 - here, "b", **settings) as b:
            options = {"prompt": "harbour at dawn", "provider": "bytecompute"}
            await hand_over(fake, tmp_path, here, b, 1, settings, options)
            async with process(fake, tmp_path, here, "a", **settings) as a:
                v = VideoHarness(fake, a, tmp_path)
                first = await v.result(lambda m: "(job 1)" in (m.content or ""), timeout=30)
                done = await v.wait_job(1, "delivered")
                assert done.result_message_id == first.id
                assert v.clip_info(first).frames > 0  # a real MP4, decoded
                press = await v.press(first, "ltx:again:1")  # reaches A; B posted the clip
                await v.reply(press)
                second = await v.result(lambda m: "(job 2)" in (m.content or ""), timeout=30)
                await v.wait_job(2, "delivered")
                press = await v.press(first, "ltx:delete:1")
                await v.reply(press)
                await fake.wait_for(lambda: first.deleted, 5, "the clip to be deleted")
                await asyncio.sleep(0.5)
                clips = [m for m in v.results() if m.attachments]
                assert sorted(m.id for m in clips) == sorted([first.id, second.id])  # once each
