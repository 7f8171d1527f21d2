"""When the tracker polls, and what it learns from the answers (issue 12, item 3).

The real JobTracker on a migrated SQLite database, against the in-memory provider of
`test_tracker_support` (jobs: queued for the first 20 % of their time, then running, with or
without a progress figure). Detection delay = first status call at or after the provider's
finish, minus that finish.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from bot.jobs.tracker.entry import Entry
from bot.jobs.tracker.timing import DurationModel, Estimate, finish_sample, job_key
from bot.store.jobs import Status
from tests.unit.test_tracker_support import (
    FakeProvider,
    RecordingSink,
    admit,
    fast_settings,
    make_request,
    make_tracker,
    wait_status,
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


# No `delay_seconds` hint: the tracker falls back to its prior (30 s + 6 s per video
# second: 60 s for these 5 s clips), however long the jobs really take.


def unhinted(seconds: float, *, progress: bool = True) -> FakeProvider:
    return FakeProvider(job_seconds=lambda _request: seconds, progress=progress)


def real_intervals(**overrides: Any):
    """Fast error/sweep timings, but the default poll-interval bounds (1 s .. 60 s) unless
    overridden: the tests' usual 0.5 s maximum would hide a far-off first poll."""
    values: dict[str, Any] = {"min_poll_interval_seconds": 1.0, "max_poll_interval_seconds": 60.0}
    values.update(overrides)
    return fast_settings(**values)


def pjob_of(provider: FakeProvider, index: int = 0) -> str:
    return list(provider.jobs)[index]


def detection_delay(provider: FakeProvider, pjob: str) -> float:
    done = provider.jobs[pjob].done_at
    seen = [t for kind, job, t in provider.calls if kind == "status" and job == pjob and t >= done]
    return min(seen) - done


def status_calls(provider: FakeProvider, pjob: str) -> list[float]:
    return [t for kind, job, t in provider.calls if kind == "status" and job == pjob]


# ----- early polls on idle budget -------------------------------------------------------


@pytest.mark.parametrize("progress", [True, False], ids=["progress", "no-progress"])
async def test_idle_budget_finds_a_fast_job_soon_however_wrong_the_prior(
    db, data_dir: Path, progress: bool
) -> None:
    provider = unhinted(1.5, progress=progress)  # 1.5 s jobs, 60 s prior
    sink = RecordingSink()
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink, real_intervals())
    await tracker.start()
    try:
        job_id = await admit(db, make_request())
        await tracker.enqueue(job_id)
        assert await sink.wait(job_id, within=5) == "delivered"
        early = tracker._states["fake"].early_polls
    finally:
        await tracker.stop()
    pjob = pjob_of(provider)
    assert detection_delay(provider, pjob) <= 1.0
    assert early >= 1
    assert len(status_calls(provider, pjob)) <= 3  # early polls a second apart, no flood


async def test_without_an_idle_share_the_plan_alone_decides(db, data_dir: Path) -> None:
    provider = unhinted(1.5)
    sink = RecordingSink()
    settings = real_intervals(idle_poll_share=0.0)
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink, settings)
    await tracker.start()
    try:
        job_id = await admit(db, make_request())
        await tracker.enqueue(job_id)
        await asyncio.sleep(3.0)  # the job is done after 1.5 s; the plan polls at 15 s
        assert status_calls(provider, pjob_of(provider)) == []
        assert tracker._states["fake"].early_polls == 0
    finally:
        await tracker.stop()


async def test_no_early_polls_while_submissions_wait_for_budget(db, data_dir: Path) -> None:
    provider = unhinted(1.0)
    # 20 calls/s and 4 calls per job: 5 submissions/s after a bank of 10, so 40 jobs keep
    # the queue waiting for budget for about 6 s: what the budget leaves is theirs.
    settings = real_intervals(requests_per_second={"fake": 20}, burst_seconds=0.05)
    sink = RecordingSink()
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink, settings)
    await tracker.start()
    try:
        for i in range(40):
            await tracker.enqueue(await admit(db, make_request(f"b{i}"), user_id=i))
        state = tracker._states["fake"]
        seen_backlog = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            if len(state.queue) > 0:
                seen_backlog += 1
                assert state.early_polls == 0
            await asyncio.sleep(0.02)
        assert seen_backlog > 50
    finally:
        await tracker.stop()


# ----- first polls ----------------------------------------------------------------------


async def test_first_poll_is_capped_at_the_max_poll_interval(db, data_dir: Path) -> None:
    provider = unhinted(0.3, progress=False)  # 60 s prior: the first poll would be at 60 s
    sink = RecordingSink()
    settings = real_intervals(
        idle_poll_share=0.0, min_poll_interval_seconds=0.05, max_poll_interval_seconds=0.5
    )
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink, settings)
    await tracker.start()
    try:
        job_id = await admit(db, make_request())
        await tracker.enqueue(job_id)
        assert await sink.wait(job_id, within=5) == "delivered"
    finally:
        await tracker.stop()
    pjob = pjob_of(provider)
    submitted = provider.jobs[pjob].created
    assert status_calls(provider, pjob)[0] - submitted <= 0.5 + 0.25


def test_learned_first_poll_never_passes_the_max_poll_interval() -> None:
    settings = fast_settings(min_poll_interval_seconds=0.5, max_poll_interval_seconds=20.0)
    model = DurationModel(settings)
    key = job_key("fake", make_request())
    value = 10.0
    for _ in range(100):  # "not done yet" again and again: the time grows, up to the cap
        value = model.observe_first(key, "plain", value, "waiting")
    assert value == pytest.approx(20.0)
    assert model.first_poll(key, "plain", 1.0) == pytest.approx(20.0)


def test_a_late_done_answer_far_past_the_eta_is_not_a_measured_time() -> None:
    settings = fast_settings(min_poll_interval_seconds=1.0)
    entry = Entry(job=None, key=("fake", "m", 5, 1280, 720, 25), est=Estimate(30, 5, 0, 10))  # type: ignore[arg-type]
    entry.submitted_mono = 100.0
    entry.last_poll_elapsed = 5.0  # "running, 10 %": ETA at 50 s
    entry.eta_at = 150.0
    assert finish_sample(entry, 50.4, settings) == pytest.approx(50.0)  # polled at the ETA
    # A backlog (or a pause) held the poll until 400 s: the job finished somewhere between
    # 5 s and 400 s; the ETA is a guess there, not a measurement.
    assert finish_sample(entry, 400.0, settings) is None


# ----- what is learnt, and kept across restarts -------------------------------------------


async def test_a_first_poll_that_finds_the_job_long_done_is_no_sample(db, data_dir: Path) -> None:
    provider = unhinted(0.3)
    sink = RecordingSink()
    # no early polls; the first poll is planned at the 3 s cap
    settings = real_intervals(idle_poll_share=0.0, max_poll_interval_seconds=3.0)
    key = job_key("fake", make_request())
    first = make_tracker(db, data_dir, {"fake": provider}, sink, settings)
    await first.start()
    job_id = await admit(db, make_request("downtime"))
    await first.enqueue(job_id)
    await wait_status(db, job_id, Status.SUBMITTED)
    await first.stop()  # the bot is down while the job finishes at the provider
    await asyncio.sleep(1.5)

    second = make_tracker(db, data_dir, {"fake": provider}, sink, settings)
    await second.start()
    try:
        assert await sink.wait(job_id, within=20) == "delivered"
    finally:
        await second.stop()
    assert not second.model.has_samples(key)  # a bound (done within 1.5 s+), not a time
    assert await db.fetchval("SELECT COUNT(*) FROM timing_measured_jobs") == 0

    third = make_tracker(db, data_dir, {"fake": provider}, sink, settings)
    await third.start()
    try:
        assert not third.model.has_samples(key)  # not reloaded as an exact time either
    finally:
        await third.stop()


async def test_a_bracketed_time_is_kept_and_reloaded(db, data_dir: Path) -> None:
    provider = unhinted(1.2)  # progress: the early poll reads an ETA, the next one is done
    sink = RecordingSink()
    key = job_key("fake", make_request())
    first = make_tracker(db, data_dir, {"fake": provider}, sink, real_intervals())
    await first.start()
    try:
        job_id = await admit(db, make_request())
        await first.enqueue(job_id)
        assert await sink.wait(job_id, within=5) == "delivered"
    finally:
        await first.stop()
    measured = await db.fetchval(
        "SELECT seconds FROM timing_measured_jobs WHERE job_id = ?", (job_id,)
    )
    assert measured == pytest.approx(1.2, abs=0.1)

    second = make_tracker(db, data_dir, {"fake": provider}, sink, real_intervals())
    await second.start()
    try:
        assert second.model.has_samples(key)
        assert second.model.estimate(key, 60.0).expected == pytest.approx(measured)
    finally:
        await second.stop()


async def test_first_poll_times_and_progress_mode_survive_a_restart(db, data_dir: Path) -> None:
    provider = FakeProvider(job_seconds=0.6, progress=False)  # "running", no figure
    sink = RecordingSink()
    settings = fast_settings(idle_poll_share=0.0, max_poll_interval_seconds=0.5)
    key = job_key("fake", make_request())
    first = make_tracker(db, data_dir, {"fake": provider}, sink, settings)
    await first.start()
    try:
        for i in range(3):
            job_id = await admit(db, make_request(f"r{i}"), user_id=i)
            await first.enqueue(job_id)
            assert await sink.wait(job_id, within=5) == "delivered"
    finally:
        await first.stop()
    learned = {kind: first.model.first_poll(key, kind, -1.0) for kind in ("probe", "plain")}
    assert any(value > 0 for value in learned.values())
    assert first._states == {}  # (cleared at stop; the mode is read back from the DB)

    second = make_tracker(db, data_dir, {"fake": provider}, sink, settings)
    await second.start()
    try:
        assert second._states["fake"].progress_mode == "no"
        for kind, value in learned.items():
            assert second.model.first_poll(key, kind, -1.0) == pytest.approx(value)
    finally:
        await second.stop()


async def test_early_polls_keep_to_their_share_of_the_idle_budget(db, data_dir: Path) -> None:
    provider = unhinted(6.0, progress=False)  # no ETA: every job stays a candidate
    settings = real_intervals(
        requests_per_second={"fake": 20},
        expected_calls_per_job=1.0,  # submissions not paced: all 30 are in within ~1.5 s
        idle_poll_share=0.25,
    )
    sink = RecordingSink()
    tracker = make_tracker(db, data_dir, {"fake": provider}, sink, settings)
    await tracker.start()
    try:
        for i in range(30):
            await tracker.enqueue(await admit(db, make_request(f"s{i}"), user_id=i))
        await asyncio.sleep(4.5)
        state = tracker._states["fake"]
        early, remembered = state.early_polls, len(state.recent_calls) + len(state.recent_early)
    finally:
        await tracker.stop()
    submitted = max(t for kind, _, t in provider.calls if kind == "submit")
    polls = sorted(t for kind, _, t in provider.calls if kind == "status" and t > submitted)
    # 30 jobs want an early poll every second; a quarter of the ~20 idle calls/s is 5/s
    windows = [sum(1 for u in polls if t <= u < t + 1.0) for t in polls]
    assert early >= 8 and max(windows) <= 7
    assert remembered <= 30  # the usage window forgets old calls
