"""The job store: rows, the transition table, events, counting helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.providers.base import Adjustment, InputImage, Mode
from bot.store import jobs as store
from bot.store.jobs import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    InvalidTransitionError,
    Status,
    UnknownJobError,
)
from tests.unit.test_tracker_support import make_request

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

# Shortest path from pending to each status (through valid moves only).
PATHS: dict[Status, list[Status]] = {
    Status.PENDING: [],
    Status.SUBMITTED: [Status.SUBMITTED],
    Status.RUNNING: [Status.SUBMITTED, Status.RUNNING],
    Status.DOWNLOADING: [Status.SUBMITTED, Status.DOWNLOADING],
    Status.DELIVERING: [Status.SUBMITTED, Status.DOWNLOADING, Status.DELIVERING],
    Status.DELIVERED: [Status.SUBMITTED, Status.DOWNLOADING, Status.DELIVERING, Status.DELIVERED],
    Status.FAILED: [Status.FAILED],
    Status.CANCELLED: [Status.CANCELLED],
    Status.EXPIRED: [Status.EXPIRED],
}


async def new_job(db, *, user_id: int = 7, guild_id: int | None = 1, request=None, **kw) -> int:
    async with db.transaction() as conn:
        return await store.insert_job(
            conn,
            guild_id=guild_id,
            channel_id=2 if guild_id else None,
            user_id=user_id,
            request=request or make_request(),
            input_dir=kw.get("input_dir"),
            origin=kw.get("origin", "discord"),
            now=kw.get("now", T0),
        )


async def move(db, job_id: int, *path: Status, now: datetime = T0) -> None:
    for status in path:
        async with db.transaction() as conn:
            await store.transition(conn, job_id, status, reason=f"to {status}", now=now)


def test_transition_table_is_complete_and_terminal_states_are_final() -> None:
    assert set(TRANSITIONS) == set(Status)
    assert set(Status) == ACTIVE_STATUSES | TERMINAL_STATUSES
    assert not ACTIVE_STATUSES & TERMINAL_STATUSES
    for status in TERMINAL_STATUSES:
        assert TRANSITIONS[status] == frozenset()
    for status in ACTIVE_STATUSES:
        assert TRANSITIONS[status], status
        assert status not in TRANSITIONS[status]  # no self-loops: every event is a change


async def test_insert_job_writes_pending_row_and_event(db, tmp_path: Path) -> None:
    image = InputImage(
        path=tmp_path / "in" / "image.png", mime="image/png", width=8, height=8, sha256="ab"
    )
    request = make_request("  keep exactly  ").model_copy(
        update={
            "mode": Mode.IMAGE,
            "image": image,
            "adjustments": [Adjustment(field="fps", requested=50, actual=25, reason="limit")],
        }
    )
    job_id = await new_job(db, request=request, input_dir=tmp_path / "in")
    job = await store.get_job(db, job_id)
    assert job is not None
    assert job.status is Status.PENDING
    assert job.prompt == "  keep exactly  "
    assert job.mode is Mode.IMAGE
    assert job.request == request  # the full negotiated request survives the round trip
    assert job.request.image is not None and job.request.image.path == image.path
    assert job.adjustments == request.adjustments
    assert job.seconds == 5.0 and job.cost_usd == pytest.approx(0.1)
    assert job.input_dir == tmp_path / "in"
    assert job.provider_job is None
    assert job.created_at == T0 and job.updated_at == T0
    assert job.created_at.tzinfo is not None
    events = await store.list_events(db, job_id)
    assert [(e.from_status, e.to_status) for e in events] == [(None, Status.PENDING)]


@pytest.mark.parametrize(
    ("source", "target"),
    [(a, b) for a in Status for b in Status],
    ids=lambda s: str(s),
)
async def test_every_transition_pair(db, source: Status, target: Status) -> None:
    job_id = await new_job(db)
    await move(db, job_id, *PATHS[source])
    before = await store.list_events(db, job_id)
    later = T0 + timedelta(minutes=1)
    if target in TRANSITIONS[source]:
        async with db.transaction() as conn:
            await store.transition(conn, job_id, target, reason="why", now=later)
        job = await store.get_job(db, job_id)
        assert job is not None and job.status is target
        events = await store.list_events(db, job_id)
        assert len(events) == len(before) + 1
        assert (events[-1].from_status, events[-1].to_status) == (source, target)
        assert events[-1].reason == "why" and events[-1].at == later
        assert job.updated_at == later
        if target in TERMINAL_STATUSES:
            assert job.finished_at == later
    else:
        with pytest.raises(InvalidTransitionError):
            async with db.transaction() as conn:
                await store.transition(conn, job_id, target, reason="nope", now=later)
        job = await store.get_job(db, job_id)
        assert job is not None and job.status is source  # rolled back
        assert len(await store.list_events(db, job_id)) == len(before)


pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)


async def test_transition_fills_timestamps_and_fields(db) -> None:
    job_id = await new_job(db)
    t1, t2, t3 = (T0 + timedelta(seconds=s) for s in (10, 70, 80))
    async with db.transaction() as conn:
        await store.transition(
            conn,
            job_id,
            Status.SUBMITTED,
            reason="ok",
            now=t1,
            provider_job_id="p-1",
            provider_data={"endpoint": "text-to-video"},
            attempts=1,
            input_dir=None,
        )
        await store.transition(conn, job_id, Status.DOWNLOADING, reason="done", now=t2)
        await store.transition(conn, job_id, Status.DELIVERING, reason="dl", now=t2)
        # back to downloading (clip vanished): provider_done_at is kept
        await store.transition(conn, job_id, Status.DOWNLOADING, reason="again", now=t3)
    job = await store.get_job(db, job_id)
    assert job is not None
    assert job.submitted_at == t1 and job.provider_done_at == t2
    assert job.finished_at is None
    assert job.provider_job is not None
    assert job.provider_job.job_id == "p-1"
    assert job.provider_job.data == {"endpoint": "text-to-video"}
    assert job.attempts == 1


async def test_transition_unknown_job_and_bad_field(db) -> None:
    with pytest.raises(UnknownJobError):
        async with db.transaction() as conn:
            await store.transition(conn, 999, Status.FAILED, reason="x", now=T0)
    job_id = await new_job(db)
    with pytest.raises(ValueError, match="cannot be set"):
        async with db.transaction() as conn:
            await store.update_job(conn, job_id, now=T0, status="delivered")
    assert await store.get_job(db, 999) is None


async def test_update_note_delivery_and_interaction(db) -> None:
    job_id = await new_job(db)
    async with db.transaction() as conn:
        await store.update_job(conn, job_id, now=T0, progress=0.5, attempts=2)
        await store.add_note(conn, job_id, reason="retrying", now=T0)
        await store.record_delivery(conn, job_id, channel_id=5, message_id=6, now=T0)
    await store.set_interaction_message(db, job_id, 42)
    job = await store.get_job(db, job_id)
    assert job is not None
    assert (job.progress, job.attempts) == (0.5, 2)
    assert (job.result_channel_id, job.result_message_id) == (5, 6)
    assert job.interaction_message_id == 42
    events = await store.list_events(db, job_id)
    assert (events[-1].from_status, events[-1].to_status, events[-1].reason) == (
        Status.PENDING,
        Status.PENDING,
        "retrying",
    )


async def test_listing_and_counting(db) -> None:
    a1 = await new_job(db, user_id=1)
    a2 = await new_job(db, user_id=1)
    b1 = await new_job(db, user_id=2)
    other_guild = await new_job(db, user_id=1, guild_id=99)
    cli = await new_job(db, user_id=1, guild_id=None, origin="cli")
    await move(db, a2, Status.SUBMITTED)
    await move(db, b1, Status.FAILED)

    assert [j.id for j in await store.list_active(db)] == [a1, a2, other_guild, cli]
    assert [j.id for j in await store.list_for_user(db, 1, 1, 10)] == [a2, a1]
    assert [j.id for j in await store.list_for_user(db, None, 1, 10)] == [cli]
    assert [j.id for j in await store.list_for_user(db, 1, 1, 1)] == [a2]
    assert await store.count_active(db) == {"pending": 3, "submitted": 1}
    assert await store.count_active(db, "other") == {}
