"""Several processes' mod-log workers on one database: a guild's outbox is drained by one of
them at a time (its lease), so each entry is posted once and in audit order.

Each `ModLog` stands for one process (its own owner name and, on PostgreSQL, its own
connection pool); the poster stands for Discord and takes a little time per post, so two
drainers' passes overlap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.db import Database, utcnow
from bot.moderation import AuditEntry, ModLog
from bot.store import audit as audit_store
from bot.store import modlog_leases
from tests.unit.test_moderation_modlog import log_entries, setup_channel, wait_for

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)

GUILDS = (111, 222 << 22, 333 << 22)  # on different shards, as with several processes


@pytest.fixture
async def db2(db: Database) -> AsyncIterator[Database]:
    """A second process's own connection(s) to the same database."""
    other = await Database.open(db.url if db.dialect == "postgresql" else str(db.path))
    try:
        yield other
    finally:
        await other.close()


class SlowPoster:
    """Discord: each post takes a few milliseconds; records who posted what, in call order."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, int, int]] = []  # (drainer, audit id, channel)

    def for_drainer(self, name: str):  # type: ignore[no-untyped-def]
        async def post(entry: AuditEntry, channel_id: int) -> None:
            self.posts.append((name, entry.id, channel_id))
            await asyncio.sleep(0.005)

        return post


async def queue(db: Database) -> dict[int, list[int]]:
    """A log channel and 8 entries per guild; the audit ids queued, per guild."""
    ids: dict[int, list[int]] = {}
    for n, guild_id in enumerate(GUILDS):
        first = await setup_channel(db, guild_id, channel=900 + n)
        ids[guild_id] = [first, *await log_entries(db, 8, guild_id=guild_id)]
    return ids


async def test_two_drainers_post_each_entry_once_in_audit_order(
    db: Database, db2: Database
) -> None:
    queued = await queue(db)
    poster = SlowPoster()
    a = ModLog(db, poster.for_drainer("a"), prune_interval=None, owner="a", batch=50)
    b = ModLog(db2, poster.for_drainer("b"), prune_interval=None, owner="b", batch=50)
    for _ in range(20):
        await asyncio.gather(a.run_once(), b.run_once())
        if await audit_store.pending_posts(db) == 0:
            break
    assert await audit_store.pending_posts(db) == 0
    posted_ids = [audit_id for _, audit_id, _ in poster.posts]
    assert sorted(posted_ids) == sorted(i for ids in queued.values() for i in ids)  # once each
    channel_of = {900 + n: guild_id for n, guild_id in enumerate(GUILDS)}
    for guild_id, ids in queued.items():
        in_order = [i for _, i, channel in poster.posts if channel_of[channel] == guild_id]
        assert in_order == ids
    for guild_id in GUILDS:
        assert await modlog_leases.holder(db, guild_id) is None  # handed back after the pass


async def test_a_live_lease_blocks_other_drainers_until_it_expires(
    db: Database, db2: Database
) -> None:
    queued = await queue(db)
    guild = GUILDS[0]
    now = utcnow()
    assert await modlog_leases.take(db, guild, "a", now=now, until=now + timedelta(seconds=60))
    poster = SlowPoster()
    b = ModLog(db2, poster.for_drainer("b"), prune_interval=None, owner="b")
    assert await b.run_once() == 2 * 9  # the other guilds only: a holds the first
    assert await audit_store.pending_posts(db, guild) == 9
    assert await modlog_leases.holder(db, guild) == "a"
    assert not await modlog_leases.take(db2, guild, "b", now=now, until=now)

    later = ModLog(
        db2, poster.for_drainer("b"), prune_interval=None, owner="b",
        clock=lambda: utcnow() + timedelta(seconds=61),
    )  # fmt: skip  # a stopped renewing: its lease has expired for b
    assert await later.run_once() == 9
    assert [i for _, i, channel in poster.posts if channel == 900] == queued[guild]
    assert await modlog_leases.holder(db, guild) is None


async def test_stop_hands_every_lease_back(db: Database) -> None:
    now = utcnow()
    modlog = ModLog(db, SlowPoster().for_drainer("a"), prune_interval=None, owner="a")
    await modlog_leases.take(db, GUILDS[1], "a", now=now, until=now + timedelta(seconds=60))
    await modlog.start()
    await modlog.stop()
    assert await modlog_leases.holder(db, GUILDS[1]) is None


async def test_a_guild_another_process_holds_is_waited_for_not_spun_on(
    db: Database, db2: Database
) -> None:
    """While another process holds a guild's lease (posting, or dead until its lease runs
    out), the loop does not retry that guild in a tight loop: it sleeps until the lease ends
    (or a wake-up / the poll), then posts the guild's entries."""
    queued = await queue(db)
    guild = GUILDS[0]
    now = utcnow()
    assert await modlog_leases.take(db, guild, "a", now=now, until=now + timedelta(seconds=1.5))
    poster = SlowPoster()
    b = ModLog(db2, poster.for_drainer("b"), prune_interval=None, owner="b", batch=50)
    passes = 0
    run_once = b.run_once

    async def counted() -> int:
        nonlocal passes
        passes += 1
        return await run_once()

    b.run_once = counted  # type: ignore[method-assign]
    await b.start()
    try:
        await asyncio.sleep(1.0)  # a's lease still live: the other guilds posted, not guild
        assert len(poster.posts) == 2 * 9
        assert passes <= 3, f"{passes} passes in 1 s while another process held the lease"
        await wait_for(lambda: sum(1 for *_, channel in poster.posts if channel == 900) == 9)
        assert [i for _, i, channel in poster.posts if channel == 900] == queued[guild]
    finally:
        await b.stop()


async def test_an_entry_queued_during_another_process_pass_is_posted_without_the_poll(
    db: Database, db2: Database
) -> None:
    """b's wake-up for a new entry comes while a holds the guild (mid-pass, after its read):
    b skips the guild, and a's pass must not end leaving the entry for the 30 s poll."""
    await queue(db)
    guild = GUILDS[0]
    poster = SlowPoster()
    a = ModLog(db, poster.for_drainer("a"), prune_interval=None, owner="a", batch=50)
    b = ModLog(db2, poster.for_drainer("b"), prune_interval=None, owner="b", batch=50)
    a_post = poster.for_drainer("a")
    late: list[int] = []

    async def post_and_queue(entry: AuditEntry, channel_id: int) -> None:
        await a_post(entry, channel_id)
        if not late and channel_id == 900:  # during a's pass over guild: b's member acts
            late.extend(await log_entries(db2, 1, guild_id=guild))
            assert await b.run_once() == 2 * 9  # b's wake-up: guild is a's, others b's
        await asyncio.sleep(0)

    a.poster = post_and_queue
    await a.start()
    try:
        await wait_for(lambda: bool(late) and late[0] in [i for _, i, _ in poster.posts], 3)
        assert [i for _, i, _ in poster.posts].count(late[0]) == 1
    finally:
        await a.stop()
