"""ModLog: posts outbox entries in order, retries with backoff, drops, never blocks."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from bot import moderation
from bot.db import Database, utcnow
from bot.errors import PermanentPostError
from bot.moderation import AuditEntry, ModLog
from bot.store import audit as audit_store

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)

GUILD = 111
CHANNEL = 999


async def log_entries(
    db: Database, n: int, *, guild_id: int = GUILD, prefix: str = "e"
) -> list[int]:
    ids = []
    for i in range(n):
        async with db.transaction() as conn:
            ids.append(
                await moderation.audit(
                    conn, guild_id=guild_id, kind="generation", summary=f"{prefix}{i}", now=utcnow()
                )
            )
    return ids


async def setup_channel(db: Database, guild_id: int = GUILD, channel: int = CHANNEL) -> int:
    change = await moderation.set_log_channel(db, guild_id, channel, actor_id=1, now=utcnow())
    return change.audit_id


class Recorder:
    def __init__(self, failures: int = 0, exc: Exception | None = None) -> None:
        self.failures = failures
        self.exc = exc or RuntimeError("discord is down")
        self.calls: list[int] = []
        self.posted: list[tuple[int, int]] = []
        self.event = asyncio.Event()

    async def __call__(self, entry: AuditEntry, channel_id: int) -> None:
        self.calls.append(entry.id)
        if self.failures > 0:
            self.failures -= 1
            raise self.exc
        self.posted.append((entry.id, channel_id))
        self.event.set()


async def wait_for(predicate, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def test_posts_due_entries_in_order(db: Database) -> None:
    first = await setup_channel(db)
    ids = [first, *await log_entries(db, 5)]
    poster = Recorder()
    modlog = ModLog(db, poster, prune_interval=None)
    assert await modlog.run_once() == 6
    assert poster.posted == [(i, CHANNEL) for i in ids]
    assert await audit_store.pending_posts(db) == 0
    assert await modlog.run_once() == 0  # nothing posted twice


async def test_guilds_without_a_channel_queue_nothing(db: Database) -> None:
    await log_entries(db, 3)
    poster = Recorder()
    assert await ModLog(db, poster, prune_interval=None).run_once() == 0
    assert poster.calls == []


async def test_failing_poster_is_retried_with_backoff_keeping_order(db: Database) -> None:
    ids = [await setup_channel(db), *await log_entries(db, 3)]
    poster = Recorder(failures=2)
    clock_now = [datetime(2025, 1, 1, tzinfo=UTC)]
    modlog = ModLog(db, poster, clock=lambda: clock_now[0], base_delay=10, prune_interval=None)
    # The entries were queued at the real "now"; start the fake clock after that.
    clock_now[0] = utcnow() + timedelta(seconds=1)

    assert await modlog.run_once() == 0
    assert poster.calls == [ids[0]]  # the guild's later entries wait behind the failed one
    rows = await db.fetchall("SELECT attempts, next_try_at, last_error FROM modlog_outbox")
    assert {r["attempts"] for r in rows} == {1}
    assert all("RuntimeError: discord is down" in r["last_error"] for r in rows)

    assert await modlog.run_once() == 0  # not due yet: nothing tried
    assert poster.calls == [ids[0]]

    clock_now[0] += timedelta(seconds=10)  # first backoff: base_delay
    assert await modlog.run_once() == 0
    assert poster.calls == [ids[0], ids[0]]
    clock_now[0] += timedelta(seconds=19)  # second backoff: 2 × base_delay
    assert await modlog.run_once() == 0
    clock_now[0] += timedelta(seconds=1)
    assert await modlog.run_once() == 4
    assert [p[0] for p in poster.posted] == ids
    assert await audit_store.pending_posts(db) == 0


def test_backoff_grows_and_is_capped() -> None:
    modlog = ModLog(None, Recorder(), base_delay=5, max_delay=60)  # type: ignore[arg-type]
    assert [modlog.backoff(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


async def test_entries_are_dropped_after_max_attempts(db: Database, caplog) -> None:
    audit_id = await setup_channel(db)
    poster = Recorder(failures=100)
    modlog = ModLog(db, poster, base_delay=0, max_attempts=3, prune_interval=None)
    with caplog.at_level(logging.WARNING, logger="bot.moderation"):
        for _ in range(3):
            await modlog.run_once()
    assert poster.calls == [audit_id] * 3
    assert await audit_store.pending_posts(db) == 0
    assert f"gave up posting audit entry {audit_id}" in caplog.text
    assert await audit_store.get_entry(db, audit_id) is not None  # still in the audit log


async def test_permanent_failure_drops_only_that_entry(db: Database, caplog) -> None:
    first = await setup_channel(db)
    later = await log_entries(db, 2)
    poster = Recorder(failures=1, exc=PermanentPostError("embed rejected"))
    with caplog.at_level(logging.WARNING, logger="bot.moderation"):
        assert await ModLog(db, poster, prune_interval=None).run_once() == 2
    assert [p[0] for p in poster.posted] == later
    assert f"dropping audit entry {first}" in caplog.text


async def test_one_guild_failing_does_not_hold_up_another(db: Database) -> None:
    await setup_channel(db, GUILD, 1)
    await setup_channel(db, GUILD + 1, 2)
    await log_entries(db, 2, guild_id=GUILD)
    other = await log_entries(db, 2, guild_id=GUILD + 1)

    async def poster(entry: AuditEntry, channel_id: int) -> None:
        if channel_id == 1:
            raise RuntimeError("no access")
        posted.append(entry.id)

    posted: list[int] = []
    await ModLog(db, poster, prune_interval=None).run_once()
    assert posted[-2:] == other
    assert await audit_store.pending_posts(db, GUILD) == 3
    assert await audit_store.pending_posts(db, GUILD + 1) == 0


async def test_turning_the_channel_off_discards_pending_posts(db: Database) -> None:
    await setup_channel(db)
    await log_entries(db, 2)
    await moderation.set_log_channel(db, GUILD, None, actor_id=1, now=utcnow())
    poster = Recorder()
    await ModLog(db, poster, prune_interval=None).run_once()
    assert poster.calls == []
    assert await audit_store.pending_posts(db) == 0


async def test_background_loop_retries_and_wakes(db: Database) -> None:
    await setup_channel(db)
    poster = Recorder(failures=2)
    modlog = ModLog(db, poster, base_delay=0.05, poll_interval=30, prune_interval=None)
    await modlog.start()
    try:
        await wait_for(lambda: len(poster.posted) == 1)
        assert len(poster.calls) == 3  # two failures, then success
        # A new entry is posted promptly on wake(), long before the 30 s poll.
        [new_id] = await log_entries(db, 1)
        modlog.wake()
        await wait_for(lambda: poster.posted[-1][0] == new_id, limit=2.0)
    finally:
        await modlog.stop()


async def test_a_hanging_poster_never_blocks_auditing(db: Database) -> None:
    await setup_channel(db)
    release = asyncio.Event()
    started = asyncio.Event()

    async def stuck(entry: AuditEntry, channel_id: int) -> None:
        started.set()
        await release.wait()

    modlog = ModLog(db, stuck, post_timeout=60, prune_interval=None)
    await modlog.start()
    try:
        await asyncio.wait_for(started.wait(), 5)
        t0 = time.monotonic()
        ids = await log_entries(db, 20)  # generation keeps auditing while posting hangs
        modlog.wake()
        assert time.monotonic() - t0 < 2.0
        assert len(ids) == 20
        assert await moderation.check_member(db, GUILD, 5, utcnow()) is None
    finally:
        t0 = time.monotonic()
        await modlog.stop(grace=0.2)
        assert time.monotonic() - t0 < 2.0
    assert await audit_store.pending_posts(db) == 21  # nothing lost: all still queued


async def test_post_timeout_counts_as_a_failure(db: Database) -> None:
    await setup_channel(db)

    async def slow(entry: AuditEntry, channel_id: int) -> None:
        await asyncio.sleep(10)

    modlog = ModLog(db, slow, post_timeout=0.05, prune_interval=None)
    assert await modlog.run_once() == 0
    row = await db.fetchone("SELECT attempts, last_error FROM modlog_outbox")
    assert row is not None and row["attempts"] == 1 and "TimeoutError" in row["last_error"]


async def test_loop_applies_retention(db: Database) -> None:
    old = utcnow() - timedelta(days=200)
    async with db.transaction() as conn:
        await moderation.audit(conn, guild_id=GUILD, kind="generation", summary="old", now=old)
    modlog = ModLog(db, Recorder(), prune_interval=timedelta(hours=6))
    await modlog.start()
    try:
        deadline = time.monotonic() + 5
        while [e.kind for e in await moderation.recent_entries(db, GUILD)] != ["prune"]:
            assert time.monotonic() < deadline, "retention never ran"
            await asyncio.sleep(0.01)
    finally:
        await modlog.stop()
    [entry] = await moderation.recent_entries(db, GUILD)
    assert entry.data["deleted"] == 1
