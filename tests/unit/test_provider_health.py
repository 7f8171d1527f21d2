"""Provider health rules (bot.jobs.health), the tracker's breaker feeding them, the 402
mapping, and the failover choice (bot.jobs.failover) with real provider negotiation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.db import Database
from bot.jobs import failover, health
from bot.jobs.failover import NoProviderFound, Plan, ProviderOrderError
from bot.jobs.health import (
    AUTH,
    BREAKER,
    CREDITS,
    NO_ANSWER,
    HealthBoard,
    HealthRecord,
    HealthRules,
    Verdict,
    assess,
)
from bot.jobs.tracker import TrackerSettings
from bot.jobs.tracker.budget import call_succeeded, failed_call, make_provider_state
from bot.pricing import LeonardoRates
from bot.providers.base import (
    AuthenticationError,
    InputImage,
    InsufficientCreditsError,
    InvalidRequestError,
    TransientError,
    VideoRequest,
)
from bot.providers.bytecompute import ByteComputeProvider
from bot.providers.http.errors import raise_for_status
from bot.providers.leonardo import LeonardoProvider
from bot.providers.simulator import SimulatorProvider
from bot.store import jobs as job_store
from bot.store.jobs import Status
from tests.unit.test_tracker_support import admit, make_request

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RULES = HealthRules(no_answer_seconds=120, error_memory_seconds=600)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def record() -> HealthRecord:
    return HealthRecord("bytecompute", clock=lambda: T0)


def test_a_new_provider_is_healthy() -> None:
    assert assess(record(), RULES, T0) == Verdict(failing=False)


def test_open_breaker_fails_until_a_good_answer_and_only_while_recent() -> None:
    r = record()
    r.failed(TransientError("server error (HTTP 502)"), opened=False, now=at(0))
    r.failed(TransientError("server error (HTTP 502)"), opened=False, now=at(1))
    assert not assess(r, RULES, at(2)).failing  # two failures: breaker still closed
    r.failed(TransientError("server error (HTTP 503)"), opened=True, now=at(2))
    verdict = assess(r, RULES, at(3))
    assert verdict.failing and verdict.kind == BREAKER and verdict.since == at(0)
    assert "3 failed calls in a row" in verdict.reason and "HTTP 503" in verdict.reason
    # Nothing new for longer than the memory: tried again (the next job is the probe).
    assert not assess(r, RULES, at(2 + 601)).failing
    r.answered(now=at(4))
    assert not assess(r, RULES, at(5)).failing


def test_rejected_key_fails_until_answered_or_forgotten() -> None:
    r = record()
    r.rejected(AuthenticationError("rejected the API key (HTTP 401)"), now=at(0))
    verdict = assess(r, RULES, at(10))
    assert verdict.failing and verdict.kind == AUTH and verdict.since == at(0)
    assert "HTTP 401" in verdict.reason
    r.rejected(AuthenticationError("rejected the API key (HTTP 401)"), now=at(500))
    assert assess(r, RULES, at(1000)).since == at(0)  # the first in the row
    assert not assess(r, RULES, at(1101)).failing
    r.rejected(AuthenticationError("again"), now=at(1200))
    r.answered(now=at(1201))  # any good answer proves the key works
    assert not assess(r, RULES, at(1202)).failing


def test_out_of_credit_needs_an_accepted_submission() -> None:
    r = record()
    r.rejected(InsufficientCreditsError("out of credit (HTTP 402)"), now=at(0))
    r.answered(now=at(1))  # a poll of an older job still works: not enough
    verdict = assess(r, RULES, at(2))
    assert verdict.failing and verdict.kind == CREDITS and "out of credit" in verdict.reason
    r.submitted(now=at(3))
    assert not assess(r, RULES, at(4)).failing


def test_other_final_errors_prove_the_provider_answers() -> None:
    r = record()
    r.failed(TransientError("timed out"), opened=False, now=at(0))
    r.rejected(InvalidRequestError("refused the request"), now=at(200))
    assert r.trouble_since is None and not assess(r, RULES, at(201)).failing


def test_a_call_without_answer_for_the_configured_time() -> None:
    r = record()
    token = r.call_started(now=at(0))
    r.call_started(now=at(50))
    assert not assess(r, RULES, at(119)).failing
    verdict = assess(r, RULES, at(120))
    assert verdict.failing and verdict.kind == NO_ANSWER and verdict.since == at(0)
    assert "no answer to a call for 120 s" in verdict.reason
    r.call_ended(token)
    assert not assess(r, RULES, at(120)).failing  # the other one is only 70 s old
    assert assess(r, RULES, at(170)).since == at(50)


def test_only_failed_calls_for_the_configured_time() -> None:
    r = record()
    r.failed(TransientError("connection failed"), opened=False, now=at(0))
    r.answered(now=at(60))
    r.failed(TransientError("connection failed"), opened=False, now=at(61))
    r.failed(TransientError("connection failed"), opened=False, now=at(150))
    assert not assess(r, RULES, at(180)).failing  # 119 s since the last good answer
    verdict = assess(r, RULES, at(181))
    assert verdict.failing and verdict.kind == NO_ANSWER and verdict.since == at(61)


def test_calls_in_the_last_minute() -> None:
    r = record()
    for s in (0, 10, 50, 65):
        r.call_ended(r.call_started(now=at(s)))
    assert r.calls_in_window(now=at(65)) == 3  # the call at 0 s is over a minute old


def test_tracker_breaker_feeds_the_board(tmp_path: Path) -> None:
    now = [T0]
    board = HealthBoard(RULES, clock=lambda: now[0])
    provider = SimulatorProvider(tmp_path)
    state = make_provider_state("simulator", provider, TrackerSettings(), 0.0)
    board.attach(state)
    assert board.state("simulator") is state
    for i in range(3):
        now[0] = at(i)
        failed_call(state, TransientError("HTTP 500"), TrackerSettings(), float(i))
    assert state.probing and board.verdict("simulator").kind == BREAKER
    call_succeeded(state)
    assert not board.verdict("simulator").failing
    token = state.begin_call()
    assert state.inflight == 1 and board.record("simulator").pending
    state.end_call(token)
    assert state.inflight == 0 and not board.record("simulator").pending


def test_402_is_insufficient_credits_and_still_an_authentication_error() -> None:
    with pytest.raises(InsufficientCreditsError) as caught:
        raise_for_status(402, httpx.Headers(), b'{"message": "no credit"}', label="X")
    assert isinstance(caught.value, AuthenticationError)
    with pytest.raises(AuthenticationError) as rejected:
        raise_for_status(401, httpx.Headers(), b"{}", label="X")
    assert not isinstance(rejected.value, InsufficientCreditsError)


# ----- failover choice ------------------------------------------------------------------------


def test_candidates_follow_the_order_after_the_asked_provider() -> None:
    configured = ["a", "b", "c", "d"]
    assert failover.candidates("b", configured, []) == (["a", "c", "d"], False)
    assert failover.candidates("b", configured, ["c", "b", "a", "x"]) == (["a", "c"], True)
    assert failover.candidates("d", configured, ["c", "a"]) == (["c", "a"], True)


def test_parse_order() -> None:
    configured = ["bytecompute", "leonardo"]
    assert failover.parse_order(" Leonardo ,bytecompute", configured) == ["leonardo", "bytecompute"]
    assert failover.parse_order("none", configured) == []
    for bad, words in (
        ("leonardo, sora", "`sora` is not"),
        ("leonardo leonardo", "more than once"),
    ):
        with pytest.raises(ProviderOrderError) as caught:
            failover.parse_order(bad, configured)
        assert words in caught.value.message


@pytest.fixture
async def providers(tmp_path: Path):
    async with httpx.AsyncClient() as client:
        yield {
            "bytecompute": ByteComputeProvider(client, api_key="k", base_url="http://127.0.0.1:9"),
            "leonardo": LeonardoProvider(
                client,
                api_key="k",
                base_url="http://127.0.0.1:9",
                rates=LeonardoRates(fast_1080=0.06, pro_1080=0.08),
            ),
            "simulator": SimulatorProvider(tmp_path / "sim"),
        }


FAILING = Verdict(True, BREAKER, "its circuit breaker is open", T0)


def verdicts(*failing: str):
    return lambda name: FAILING if name in failing else Verdict(False)


def test_choose_keeps_a_healthy_provider(providers) -> None:
    request = VideoRequest(prompt="p", provider="bytecompute", duration=5)
    plan = failover.choose(request, providers, verdicts(), [])
    assert isinstance(plan, Plan) and plan.switch is None and plan.request.provider == "bytecompute"


def test_choose_renegotiates_with_the_next_healthy_provider(providers) -> None:
    request = VideoRequest(prompt="p", provider="bytecompute", duration=7, fps=30)
    offered = failover.choose(request, providers, verdicts("bytecompute"), [])
    assert isinstance(offered, Plan) and offered.needs_consent
    assert offered.request.provider == "leonardo"
    assert offered.request == providers["leonardo"].negotiate(
        request.model_copy(update={"provider": "leonardo"})
    )  # the alternative's own quote and adjustments (7 s → 6 s at Leonardo)
    assert offered.request.duration == 6 and offered.request.cost_usd > 0
    ordered = failover.choose(request, providers, verdicts("bytecompute"), ["simulator"])
    assert isinstance(ordered, Plan) and not ordered.needs_consent
    assert ordered.request.provider == "simulator" and ordered.switch is not None
    assert ordered.switch.asked == "bytecompute" and ordered.switch.verdict is FAILING


def test_choose_skips_providers_that_cannot_do_the_request(providers, tmp_path: Path) -> None:
    image = tmp_path / "i.png"
    image.write_bytes(b"x")
    picture = InputImage(path=image, mime="image/png", width=640, height=512, sha256="0")
    request = VideoRequest(prompt="p", provider="bytecompute", image=picture)
    limits = providers["leonardo"].limits
    providers["leonardo"].limits = type(limits)(**{**limits.__dict__, "supports_image": False})
    found = failover.choose(request, providers, verdicts("bytecompute", "simulator"), [])
    assert isinstance(found, NoProviderFound)
    reasons = {s.provider: s.reason for s in found.skipped}
    assert "cannot start from an image" in reasons["leonardo"]
    assert reasons["simulator"].startswith("failing too")
    assert "nothing was charged" in found.message()


# ----- stored: the guild's order, the providers' latency -----------------------------------


async def test_the_order_is_stored_per_guild_replaced_cleared_and_audited(db: Database) -> None:
    assert await failover.order(db, 10) == []
    await failover.set_order(db, 10, ["leonardo", "bytecompute"], actor_id=5, now=T0)
    await failover.set_order(db, 11, ["ltx"], actor_id=5, now=T0)
    await failover.set_order(db, 10, ["bytecompute", "ltx", "leonardo"], actor_id=5, now=T0)
    assert await failover.order(db, 10) == ["bytecompute", "ltx", "leonardo"]
    await failover.set_order(db, 11, [], actor_id=6, now=T0)
    assert await failover.order(db, 11) == []
    assert await failover.order(db, 10) == ["bytecompute", "ltx", "leonardo"]
    rows = await db.fetchall(
        "SELECT guild_id, actor_id FROM audit_log WHERE kind = 'admin' ORDER BY id"
    )
    assert [(r[0], r[1]) for r in rows] == [(10, 5), (11, 5), (10, 5), (11, 6)]


async def test_latency_is_the_median_of_recent_finished_jobs(db: Database) -> None:
    for waited, finished_ago in ((30.0, 1), (90.0, 2), (60.5, 3), (5.0, 30)):  # hours ago
        job_id = await admit(db, make_request(provider="leonardo"), now=T0)
        done = T0 + timedelta(days=1) - timedelta(hours=finished_ago)
        async with db.transaction() as conn:
            await job_store.transition(
                conn, job_id, Status.SUBMITTED, reason="t", now=done - timedelta(seconds=waited)
            )
            await job_store.transition(conn, job_id, Status.DOWNLOADING, reason="t", now=done)
    await admit(db, make_request(provider="leonardo"), now=T0)  # never submitted
    now = T0 + timedelta(days=1)
    # The job finished 30 hours ago is outside the one-day window.
    assert await health.recent_latency(db, "leonardo", now) == (60.5, 3)
    assert await health.recent_latency(db, "bytecompute", now) == (None, 0)
