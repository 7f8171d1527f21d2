"""The output safety check's parts: frame sampling, the real NudeNet model on real clips, the
policy table, the admin setter, the once-only check row, and the provider's refusal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bot import media, safety
from bot.moderation import ModerationError, set_log_channel
from bot.providers.base import MSG_CONTENT_REFUSED, ContentRefusedError
from bot.safety.policy import NOTE_AGE_RESTRICTED, NOTE_NO_MODLOG, SafetyPolicy
from bot.store import jobs as job_store
from bot.store import safety as check_store
from bot.store.jobs import Status
from tests.unit.test_tracker_jobs import run_one
from tests.unit.test_tracker_support import FakeProvider, admit, ledger_kinds, make_request

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def clip_5s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 5 s MP4 as the simulator renders it (drawn frames, a tone)."""
    path = tmp_path_factory.mktemp("clips") / "five.mp4"
    media.render_clip(
        path, prompt="a calm lake", width=768, height=512, fps=24, duration=5, audio=True, seed=7
    )
    return path


def policy(mode: str, threshold: float = 0.6) -> SafetyPolicy:
    return SafetyPolicy(
        mode=mode,  # type: ignore[arg-type]
        threshold=threshold,
        mode_is_default=False,
        threshold_is_default=False,
        log_channel_id=None,
    )


def test_sample_frames_takes_one_frame_per_second(clip_5s: Path) -> None:
    frames = media.sample_frames(clip_5s)
    assert len(frames) == 5
    assert frames[0].shape == (426, 640, 3) and frames[0].dtype == np.uint8  # BGR, ≤ 640
    assert len(media.sample_frames(clip_5s, per_second=2.0)) == 10
    assert len(media.sample_frames(clip_5s, max_frames=3)) == 3


def test_real_model_scores_generated_frames_low(clip_5s: Path) -> None:
    scored = safety.scan_clip(clip_5s)
    assert scored.frames == 5 and scored.score < 0.2 and scored.labels == {}
    assert scored.cpu_seconds > 0
    available, detail = safety.classifier_status()
    assert available and detail.startswith("nudenet 3.4")


def test_frame_scores_keep_only_explicit_labels() -> None:
    """Faces, feet or covered parts never count: the score reads explicit labels only."""

    class Detections:
        name = "table"

        def __init__(self, rows: list[dict[str, float]]) -> None:
            self.rows = iter(rows)

        def score_frame(self, frame: object) -> dict[str, float]:
            return next(self.rows)

    # (score_frames is what aggregates a real classifier's per-frame answers)
    scored = safety.score_frames(
        Detections([{"BUTTOCKS_EXPOSED": 0.3}, {}, {"BUTTOCKS_EXPOSED": 0.7, "ANUS_EXPOSED": 0.4}]),
        [None, None, None],
    )
    assert scored.score == 0.7 and list(scored.labels) == ["BUTTOCKS_EXPOSED", "ANUS_EXPOSED"]
    assert "FACE_FEMALE" not in safety.EXPLICIT_LABELS
    assert "FEMALE_BREAST_COVERED" not in safety.EXPLICIT_LABELS


@pytest.mark.parametrize(
    ("mode", "score", "age_restricted", "can_hold", "expected"),
    [
        ("off", 1.0, False, True, ("post", None)),
        ("spoiler", 0.59, False, True, ("post", None)),
        ("spoiler", 0.6, False, True, ("spoiler", None)),
        ("hold", 0.9, False, True, ("hold", None)),
        ("hold", 0.9, False, False, ("spoiler", NOTE_NO_MODLOG)),
        ("hold", 1.0, True, True, ("post", NOTE_AGE_RESTRICTED)),
        ("spoiler", 1.0, True, True, ("post", NOTE_AGE_RESTRICTED)),
    ],
)
def test_decide(mode, score, age_restricted, can_hold, expected) -> None:
    got = safety.decide(policy(mode), score, age_restricted=age_restricted, can_hold=can_hold)
    assert got == expected


def test_threshold_zero_flags_every_clip() -> None:
    assert safety.decide(policy("hold", 0.0), 0.0, age_restricted=False, can_hold=True)[0] == "hold"


async def test_set_safety_is_validated_and_audited(db) -> None:
    fresh = await safety.guild_policy(db, 10)
    assert (fresh.mode, fresh.threshold) == (safety.DEFAULT_MODE, safety.DEFAULT_THRESHOLD)
    assert fresh.mode_is_default and fresh.threshold_is_default
    with pytest.raises(ModerationError, match="from 0 to 1"):
        await safety.set_safety(db, 10, mode=None, threshold=1.5, actor_id=5, now=NOW)
    with pytest.raises(ModerationError, match="mode"):
        await safety.set_safety(db, 10, mode=None, threshold=None, actor_id=5, now=NOW)
    change = await safety.set_safety(db, 10, mode="hold", threshold=0.8, actor_id=5, now=NOW)
    assert change.old == {"mode": "spoiler", "threshold": 0.6}
    assert change.new == {"mode": "hold", "threshold": 0.8}
    after = await safety.guild_policy(db, 10)
    assert (after.mode, after.threshold, after.mode_is_default) == ("hold", 0.8, False)
    rows = await db.fetchall("SELECT actor_id, data_json FROM audit_log WHERE kind = 'admin'")
    assert [(r[0], json.loads(r[1])["setting"]) for r in rows] == [(5, "safety")]


async def test_a_clip_is_checked_once(db, clip_5s: Path) -> None:
    job_id = await admit(db, make_request())
    job = await job_store.get_job(db, job_id)
    assert job is not None
    kwargs = {"age_restricted": False, "can_hold": True, "hold_hours": 48.0}
    first = await safety.review_clip(db, job, clip_5s, **kwargs)
    assert first is not None and first.frames == 5 and first.action == "post"
    # A retry (or a restart) reads the row back: no second scan, no second entry.
    again = await safety.review_clip(db, job, clip_5s, **kwargs)
    assert again == first
    rows = await db.fetchall("SELECT job_id FROM audit_log WHERE kind = 'safety'")
    assert [r[0] for r in rows] == [job_id]
    # Nothing to decide on a clip that was not held.
    outcome = await safety.expire(db, job_id)
    assert outcome is False


async def test_provider_safety_refusal_charges_nothing_and_is_logged(db, tmp_path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    await set_log_channel(db, 10, 777, actor_id=5, now=NOW)
    provider = FakeProvider(job_seconds=0.05)
    provider.fail_next("submit", ContentRefusedError())
    job_id, outcome, sink = await run_one(db, data_dir, provider)
    assert outcome == "failed"
    job = await job_store.get_job(db, job_id)
    assert job is not None and job.status is Status.FAILED
    assert job.failure_reason == MSG_CONTENT_REFUSED  # says what to change
    ended = [args for name, jid, args in sink.events if name == "ended" and jid == job_id]
    assert ended == [("failed", MSG_CONTENT_REFUSED)]  # the member is told
    assert await ledger_kinds(db, job_id) == ["reserve", "refund"]
    spent = await db.fetchval("SELECT COALESCE(SUM(cost_usd), 0) FROM quota_guild_spend")
    assert spent == 0
    (entry,) = await db.fetchall(
        "SELECT target_id, job_id, data_json FROM audit_log WHERE kind = 'refusal'"
    )
    assert entry[1] == job_id and json.loads(entry[2])["reason"] == "provider_filter"
    queued = await db.fetchval(
        "SELECT COUNT(*) FROM modlog_outbox o JOIN audit_log a ON a.id = o.audit_id"
        " WHERE a.kind = 'refusal'"
    )
    assert queued == 1  # on its way to the mod-log channel


def held(job_id: int, *, score: float = 0.91, hours: float = 48) -> check_store.ClipCheck:
    return check_store.ClipCheck(
        job_id=job_id, guild_id=10, score=score, labels=["FEMALE_BREAST_EXPOSED"], frames=5,
        provider_flagged=False, threshold=0.7, mode="hold", action="hold", note=None,
        checked_at=NOW, hold_until=NOW + timedelta(hours=hours),
    )  # fmt: skip


async def test_a_held_clip_row_is_written_once_and_decided_once(db) -> None:
    first_job = await admit(db, make_request())
    second_job = await admit(db, make_request())
    async with db.transaction() as conn:
        stored = await check_store.record_check(conn, held(first_job))
        # A second write for the same job keeps the first row.
        again = await check_store.record_check(conn, held(first_job, score=0.2))
        await check_store.record_check(conn, held(second_job, hours=1))
        await check_store.set_hold_message(conn, first_job, channel_id=777, message_id=888)
    assert stored == again == held(first_job)
    assert stored.score == 0.91 and stored.threshold == 0.7  # exact, not float4-rounded
    waiting = await check_store.held_clips(db, 10)
    assert [c.job_id for c in waiting] == [second_job, first_job]  # the sooner deadline first
    assert (waiting[1].hold_channel_id, waiting[1].hold_message_id) == (777, 888)
    assert all(c.pending_review for c in waiting) and await check_store.held_clips(db, 11) == []
    async with db.transaction() as conn:
        won = await check_store.decide(conn, first_job, "released", by=5, now=NOW)
        lost = await check_store.decide(conn, first_job, "discarded", by=6, now=NOW)
    assert (won, lost) == (True, False)
    decided = await check_store.get_check(db, first_job)
    assert decided is not None and (decided.decision, decided.decided_by) == ("released", 5)
    assert decided.decided_at == NOW
    assert [c.job_id for c in await check_store.held_clips(db, 10)] == [second_job]
