"""bot/store/timing.py: measured provider times (only bracketed ones come back as samples),
first-poll times per job class and progress modes, on a real migrated SQLite database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.store import jobs as store
from bot.store import timing
from bot.store.jobs import Status
from tests.unit.test_store_jobs import T0, new_job
from tests.unit.test_tracker_support import make_request

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)


async def _finish(db, job_id: int, seconds: float, *, measured: bool) -> None:
    async with db.transaction() as conn:
        await store.transition(conn, job_id, Status.SUBMITTED, reason="", now=T0)
        await store.transition(
            conn,
            job_id,
            Status.DOWNLOADING,
            reason="",
            now=T0 + timedelta(seconds=seconds + 30),
            provider_done_at=T0 + timedelta(seconds=seconds),
        )
        if measured:
            await timing.record_measured(conn, job_id, seconds)


async def test_recent_durations_reads_only_measured_times(db) -> None:
    request = make_request(duration=8, width=1920, height=1080, fps=50)
    measured = await new_job(db, request=request)
    censored = await new_job(db, request=request)  # a first poll found it long done
    await new_job(db)  # never submitted: no sample
    await _finish(db, measured, 42.5, measured=True)
    await _finish(db, censored, 7200.0, measured=False)
    samples = await timing.recent_durations(db, "fake")
    assert len(samples) == 1
    sample = samples[0]
    assert (sample.model, sample.duration, sample.width, sample.height, sample.fps) == (
        "m",
        8,
        1920,
        1080,
        50,
    )
    assert sample.seconds == pytest.approx(42.5)
    assert await timing.recent_durations(db, "elsewhere") == []


async def test_measured_time_goes_with_its_job(db) -> None:
    job_id = await new_job(db)
    await _finish(db, job_id, 3.0, measured=True)
    async with db.transaction() as conn:
        await timing.record_measured(conn, job_id, 4.0)  # measured again: replaced
    assert [s.seconds for s in await timing.recent_durations(db, "fake")] == [4.0]
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM job_events WHERE job_id = ?", (job_id,))
        await conn.execute("DELETE FROM quota_ledger WHERE job_id = ?", (job_id,))
        await conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    assert await timing.recent_durations(db, "fake") == []


async def test_first_polls_and_progress_modes_round_trip(db) -> None:
    key = ("fake", None, 5, 1280, 720, 25)
    other = ("fake", "m", 5, 1920, 1080, 25)
    async with db.transaction() as conn:
        await timing.save_first_poll(conn, key, "plain", 12.0, now=T0)
        await timing.save_first_poll(conn, key, "plain", 6.0, now=T0 + timedelta(seconds=1))
        await timing.save_first_poll(conn, other, "probe", 2.5, now=T0)
        await timing.save_progress_mode(conn, "fake", "no", now=T0)
        await timing.save_progress_mode(conn, "fake", "yes", now=T0)
        await timing.save_progress_mode(conn, "slow", "no", now=T0)
    assert sorted(await timing.first_polls(db, "fake"), key=repr) == sorted(
        [(key, "plain", 6.0), (other, "probe", 2.5)], key=repr
    )
    assert await timing.first_polls(db, "elsewhere") == []
    assert await timing.progress_modes(db) == {"fake": "yes", "slow": "no"}
