"""The tracker's building blocks: fair queue, token bucket, duration model, polling plan."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.jobs.tracker import TrackerSettings
from bot.jobs.tracker.budget import FairQueue, TokenBucket
from bot.jobs.tracker.steps import _merge_provider_report
from bot.jobs.tracker.timing import (
    DurationModel,
    Estimate,
    backoff_delay,
    first_poll_after,
    next_poll_delay,
)
from bot.providers.base import Adjustment
from bot.store.jobs import JobRecord
from tests.unit.test_tracker_support import make_request


def test_fair_queue_round_robin_across_members() -> None:
    q = FairQueue()
    for i in range(5):
        q.push((1, 100), i)  # a burst from one member
    q.push((1, 200), 10)
    q.push((1, 300), 20)
    q.push((1, 300), 21)
    assert q.positions()[10] == 2  # second, not sixth
    order = [q.pop() for _ in range(len(q))]
    assert order == [0, 10, 20, 1, 21, 2, 3, 4]
    assert len(q) == 0


def test_fair_queue_front_push_and_remove() -> None:
    q = FairQueue()
    q.push((1, 1), 1)
    q.push((1, 2), 2)
    q.push((1, 2), 3, front=True)  # a retry goes first
    assert q.position((1, 2), 3) == 1
    assert q.remove((1, 1), 1)
    assert not q.remove((1, 1), 1)
    assert 2 in q and 1 not in q
    assert [q.pop(), q.pop()] == [3, 2]


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=60))
def test_fair_queue_positions_match_pop_order(ops: list[tuple[int, bool]]) -> None:
    q = FairQueue()
    for job_id, (member, front) in enumerate(ops):
        q.push((None, member), job_id, front=front)
    positions = q.positions()
    for job_id, (member, _) in enumerate(ops):
        assert q.position((None, member), job_id) == positions[job_id]
    popped = [q.pop() for _ in range(len(q))]
    assert popped == sorted(positions, key=positions.__getitem__)
    assert sorted(popped) == list(range(len(ops)))


def test_token_bucket_rate_borrow_and_pause() -> None:
    bucket = TokenBucket(rate=10, capacity=2, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(0.1)
    assert bucket.take(0.1)
    assert bucket.borrow(0.1) == pytest.approx(0.1)  # in debt: wait one interval
    bucket.empty_until(5.0)
    assert not bucket.take(4.9)
    assert bucket.wait(4.9) == pytest.approx(0.1 + 0.2)  # pause + the debt of 1 token
    bucket.factor = 0.5
    assert bucket.wait(5.0) == pytest.approx(0.4)  # 2 tokens short at half the rate


def test_duration_model_learns_per_class_and_fits_unseen_sizes() -> None:
    model = DurationModel(TrackerSettings())
    small = ("p", "m", 5, 1280, 720, 25)
    big = ("p", "m", 10, 1920, 1080, 25)
    unseen = ("p", "m", 8, 1920, 1080, 25)
    prior = model.estimate(small, 60.0)
    assert (prior.expected, prior.samples) == (60.0, 0)
    assert prior.low < prior.expected
    for s in (20.0, 21.0, 19.0, 20.5, 20.2):
        model.add(small, s)
    for s in (80.0, 82.0, 78.0):
        model.add(big, s)
    est = model.estimate(small, 60.0)
    assert est.samples == 5 and est.expected == pytest.approx(20.2)
    assert 0.25 <= est.spread < 2
    assert est.low < est.expected
    fitted = model.estimate(unseen, 60.0)  # between the two classes, by amount of work
    assert fitted.samples == 0
    assert 20 < fitted.expected < 80
    model.add(("other", "m", 5, 1280, 720, 25), -1)  # ignored
    assert not model.has_samples(("other", "m", 5, 1280, 720, 25))


def test_polling_plan_tightens_then_backs_off() -> None:
    s = TrackerSettings(min_poll_interval_seconds=1, max_poll_interval_seconds=60)
    est = Estimate(expected=60, spread=3, samples=10, low=50)
    assert first_poll_after(est, s) == 60
    assert first_poll_after(est, s, probe=True) == 50
    # polled early (e.g. a probe that found it queued): wait for the window, or when
    # probing for progress, look again a bit later
    assert next_poll_delay(50, est, s) == pytest.approx(10)
    assert next_poll_delay(10, est, s, probe=True) == pytest.approx(5)
    assert next_poll_delay(50, est, s, probe=True) == pytest.approx(10)
    # around the expected time: every `spread` seconds
    assert next_poll_delay(60, est, s) == pytest.approx(3)
    assert next_poll_delay(66, est, s) == pytest.approx(3)
    # long overdue: gaps grow with the overdue time, capped
    gaps = [next_poll_delay(60 + over, est, s) for over in (20, 100, 1000)]
    assert gaps == sorted(gaps) and gaps[0] > 3 and gaps[-1] == 60
    tight = Estimate(expected=30, spread=0.25, samples=50, low=29)
    assert next_poll_delay(30, tight, s) == 1  # never below the minimum interval


def test_backoff_delay_grows_with_jitter_and_caps() -> None:
    s = TrackerSettings(error_backoff_base_seconds=1, error_backoff_max_seconds=8)
    for errors, cap in ((1, 1), (2, 2), (3, 4), (4, 8), (10, 8)):
        values = [backoff_delay(errors, s) for _ in range(50)]
        assert all(cap / 2 <= v <= cap for v in values)
        assert len(set(values)) > 1  # jittered


def test_merge_provider_report_adjusts_seconds_and_cost() -> None:
    job = JobRecord.model_validate(
        {
            "id": 1,
            "guild_id": 1,
            "channel_id": 1,
            "user_id": 1,
            "provider": "fake",
            "model": "m",
            "mode": "text-to-video",
            "prompt": "x",
            "status": "submitted",
            "params_json": make_request().model_dump_json(),
            "seconds": 10.0,
            "cost_usd": 0.2,
            "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": "2026-01-01T00:00:00+00:00",
        }
    )
    fields = _merge_provider_report(
        job, [Adjustment(field="duration", requested=10, actual=8, reason="GPU")], None
    )
    assert fields["seconds"] == 8.0
    assert fields["cost_usd"] == pytest.approx(0.16)
    assert fields["adjustments"][0].source == "provider"
    assert _merge_provider_report(job, [], 0.5) == {"cost_usd": 0.5}
    assert _merge_provider_report(job, [], None) == {}


def test_first_poll_quantile_tracker_moves_and_settles() -> None:
    s = TrackerSettings(min_poll_interval_seconds=1)
    model = DurationModel(s)
    key = ("p", "m", 5, 1280, 720, 25)
    assert model.first_poll(key, "probe", 20.0) == 20.0  # the prior until it learns
    # no measured sample yet: "already done" halves it; more answers about the same
    # (older) time count once
    assert model.observe_first(key, "probe", 20.0, "done") == 10.0
    assert model.observe_first(key, "probe", 20.0, "done") == 10.0
    # still queued: later, noticeably; running with progress: later, a little
    waiting = model.observe_first(key, "probe", 10.0, "waiting")
    assert waiting == pytest.approx(10 * math.exp(0.2 * 0.5))
    informed = model.observe_first(key, "probe", waiting, "informed")
    assert informed == pytest.approx(waiting * math.exp(0.2 * 0.05))
    # "not done" at an earlier time says nothing about the current value
    assert model.observe_first(key, "probe", 5.0, "informed") == informed
    # an unseen class starts from its siblings
    model.observe_first(("p", "m", 8, 1280, 720, 25), "probe", 30.0, "informed")
    unseen = model.first_poll(("p", "m", 6, 1280, 720, 25), "probe", 99.0)
    assert unseen == pytest.approx((informed + 30.0 * math.exp(0.2 * 0.05)) / 2)
    assert model.first_poll(("q", "m", 6, 1280, 720, 25), "probe", 99.0) == 99.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_probe_time_converges_to_the_target_quantile(seed: int) -> None:
    rng = random.Random(seed)
    model = DurationModel(TrackerSettings(probe_quantile=0.05))
    key = ("p", "m", 5, 1280, 720, 25)
    model.add(key, 50.0)
    x = 60.0  # a poor start
    for _ in range(3000):
        x = model.first_poll(key, "probe", x)
        finished = rng.uniform(20, 90)
        queued = x < 0.2 * finished
        outcome = "done" if finished <= x else "waiting" if queued else "informed"
        model.observe_first(key, "probe", x, outcome)
    # 5 % of U(20, 90) is 23.5 s; a stochastic estimate wanders around it
    assert 20.5 < model.first_poll(key, "probe", 0.0) < 28.5
