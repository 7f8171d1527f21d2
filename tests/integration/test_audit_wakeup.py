"""Every audit entry wakes the mod-log worker once its transaction has committed.

Refusals (blocked term, blocked member, allowance) used to wait for the worker's 30 s poll;
here the worker polls every 30 s and each refusal must reach the channel within 2 s, driven
through the real `VideoService` path with a real SQLite database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot import moderation, quota
from bot.db import Database, Transaction, current_transaction, utcnow
from bot.jobs.service import Requester, RequestRefused, VideoService
from bot.moderation import AuditEntry, ModLog
from bot.moderation.audit import listen, unlisten
from bot.providers.simulator import SimulatorProvider

GUILD = 111
CHANNEL = 999
ADMIN = 7
MEMBER = 42
WHO = Requester(user_id=MEMBER, guild_id=GUILD, channel_id=5)


class Recorder:
    def __init__(self) -> None:
        self.posted: list[AuditEntry] = []

    async def __call__(self, entry: AuditEntry, channel_id: int) -> None:
        assert channel_id == CHANNEL
        self.posted.append(entry)


async def wait_for(predicate: Callable[[], bool], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"not posted within {limit} s"
        await asyncio.sleep(0.01)


@pytest.fixture
def service(db: Database, tmp_path: Path) -> VideoService:
    return VideoService(
        db,
        {"simulator": SimulatorProvider(tmp_path / "sim")},
        None,  # type: ignore[arg-type]  # refusals never reach the tracker
        data_dir=tmp_path / "data",
        default_provider="simulator",
        default_quota_seconds=60,
        max_active_per_member=2,
    )


@asynccontextmanager
async def idle_mod_log(db: Database) -> AsyncIterator[Recorder]:
    """A started mod-log polling every 30 s, idle once what is queued so far is posted."""
    poster = Recorder()
    queued = await db.fetchval("SELECT COUNT(*) FROM modlog_outbox")
    modlog = ModLog(db, poster, poll_interval=30, prune_interval=None)
    await modlog.start()
    try:
        await wait_for(lambda: len(poster.posted) == queued, limit=5)
        await asyncio.sleep(0.1)  # the loop is now waiting for its next 30 s poll
        yield poster
    finally:
        await modlog.stop()


async def test_a_blocked_term_refusal_is_posted_at_once(
    db: Database, service: VideoService
) -> None:
    await moderation.set_log_channel(db, GUILD, CHANNEL, actor_id=ADMIN, now=utcnow())
    await moderation.add_blocked_term(
        db, GUILD, "forbidden", is_regex=False, actor_id=ADMIN, now=utcnow()
    )
    async with idle_mod_log(db) as posted:
        request = service.build_request(prompt="a forbidden thing")
        with pytest.raises(RequestRefused) as refused:
            await service.prepare(WHO, request)
        assert refused.value.kind == "blocked_word"
        await wait_for(lambda: posted.posted[-1].kind == "refusal", limit=2)
        assert posted.posted[-1].data["reason"] == "blocked_word"


async def test_a_blocked_member_refusal_is_posted_at_once(
    db: Database, service: VideoService
) -> None:
    await moderation.set_log_channel(db, GUILD, CHANNEL, actor_id=ADMIN, now=utcnow())
    await moderation.block_member(
        db, GUILD, MEMBER, actor_id=ADMIN, reason=None, duration=None, now=utcnow()
    )
    async with idle_mod_log(db) as posted:
        with pytest.raises(RequestRefused):
            await service.prepare(WHO, service.build_request(prompt="a cat"))
        await wait_for(lambda: posted.posted[-1].kind == "refusal", limit=2)
        assert posted.posted[-1].data["reason"] == "blocked_member"


pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)


async def test_an_allowance_refusal_is_posted_at_once(db: Database, service: VideoService) -> None:
    await moderation.set_log_channel(db, GUILD, CHANNEL, actor_id=ADMIN, now=utcnow())
    await quota.set_default(
        db,
        guild_id=GUILD,
        actor_id=ADMIN,
        seconds=0,
        window_hours=None,
        now=utcnow(),
        default_seconds=60,
    )
    negotiated = await service.prepare(WHO, service.build_request(prompt="a cat"))
    async with idle_mod_log(db) as posted:
        with pytest.raises(RequestRefused) as refused:
            await service.admit(WHO, negotiated, input_dir=None)
        assert refused.value.kind == "allowance"
        await wait_for(lambda: posted.posted[-1].kind == "refusal", limit=2)
        assert posted.posted[-1].data["reason"] == "allowance"
    assert await db.fetchval("SELECT COUNT(*) FROM jobs") == 0  # the job row rolled back


async def test_after_commit_runs_after_the_commit_and_never_on_rollback(db: Database) -> None:
    seen: list[bool] = []
    opened: list[Transaction] = []

    def callback() -> None:
        seen.append(opened[-1].open)

    async with db.transaction() as conn:
        tx = current_transaction(conn)
        assert tx is not None and tx.db is db
        opened.append(tx)
        tx.after_commit(callback)
        assert seen == []
    assert seen == [False]  # ran once, after COMMIT

    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as conn:
            tx = current_transaction(conn)
            assert tx is not None
            opened.append(tx)
            tx.after_commit(callback)
            raise RuntimeError("boom")
    assert seen == [False]  # dropped with the rollback
    assert current_transaction(conn) is None


async def test_an_audit_entry_that_rolls_back_wakes_nobody(db: Database) -> None:
    await moderation.set_log_channel(db, GUILD, CHANNEL, actor_id=ADMIN, now=utcnow())
    wakes: list[int] = []

    def wake() -> None:
        wakes.append(1)

    listen(db, wake)
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await moderation.audit(
                    conn, guild_id=GUILD, kind="generation", summary="x", now=utcnow()
                )
                assert wakes == []  # not before the commit
                raise RuntimeError("roll back")
        assert wakes == []
        async with db.transaction() as conn:
            await moderation.audit(
                conn, guild_id=GUILD, kind="generation", summary="y", now=utcnow()
            )
            assert wakes == []
        assert wakes == [1]
    finally:
        unlisten(db, wake)


class CountingModLog(ModLog):
    wakes = 0

    def wake(self) -> None:
        self.wakes += 1
        super().wake()


async def test_only_a_started_mod_log_is_woken(db: Database) -> None:
    modlog = CountingModLog(db, Recorder(), poll_interval=30, prune_interval=None)

    async def log_one() -> None:
        async with db.transaction() as conn:
            await moderation.audit(
                conn, guild_id=GUILD, kind="generation", summary="z", now=utcnow()
            )

    await log_one()
    assert modlog.wakes == 0
    await modlog.start()
    try:
        await log_one()
        assert modlog.wakes == 1
    finally:
        await modlog.stop()
    await log_one()
    assert modlog.wakes == 1
