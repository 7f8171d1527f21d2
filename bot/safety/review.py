"""The output safety check of one clip, and a moderator's decision on a held one.

`review_clip` runs once per job, after download and before the first post (the delivery sink
calls it): it samples about one frame per second (`bot.media.sample_frames`), scores them
off the event loop, takes the provider's own flag as a score of 1, decides the action
(`policy.decide`) and records score, labels and action in `clip_checks` and the audit log in
one transaction. Every later attempt (a retry, a restart) reads that row, so a clip gets one
action only.

A held clip waits in the tracker (`ClipHeldError`) with its file until a moderator decides:
`release` lets the tracker post it (exactly once: its delivery key and nonce as for every
post), `discard` fails the job. Discard refunds the member's seconds (they received
nothing, and the classifier can be wrong) while the provider's cost stays in the guild's
monthly spend, as for every clip that was rendered and not posted; moderators who see abuse
block the member. A hold nobody decides within `SAFETY_HOLD_HOURS` ends like a discard
(`expire`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import media
from bot.db import Database, utcnow
from bot.moderation.audit import KIND_SAFETY, audit
from bot.safety.classifier import (
    ClassifierUnavailableError,
    ClipScore,
    load_classifier,
    score_frames,
)
from bot.safety.policy import (
    NOTE_NO_CLASSIFIER,
    NOTE_UNCHECKED,
    SafetyPolicy,
    decide,
    guild_policy,
)
from bot.store import jobs as job_store
from bot.store import safety as store
from bot.store.safety import ClipCheck, Decision

if TYPE_CHECKING:
    from bot.jobs.tracker.engine import JobTracker
    from bot.store.jobs import JobRecord

log = logging.getLogger(__name__)

ACTION_WORDS = {"post": "posted", "spoiler": "posted as a spoiler", "hold": "held for review"}
MSG_HELD = (
    "the server's safety check flagged your clip, so a moderator will look at it before it "
    "is posted here"
)
MSG_DISCARDED = "a moderator decided not to post this clip here after the safety check flagged it"


def scan_clip(path: Path) -> ClipScore:
    """Sample ~1 frame per second and score them (blocking; raises ClassifierUnavailable)."""
    classifier = load_classifier()
    frames = media.sample_frames(path, per_second=1.0)
    return score_frames(classifier, frames)


async def _score(path: Path) -> tuple[ClipScore | None, str | None]:
    """(score, note): None when not installed (note says so); an error: fail closed."""
    try:
        return await asyncio.to_thread(scan_clip, path), None
    except ClassifierUnavailableError:
        return None, NOTE_NO_CLASSIFIER
    except Exception:
        log.exception("safety check of %s failed", path.name)
        return ClipScore(score=1.0), NOTE_UNCHECKED


def _labels_text(labels: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in list(labels.items())[:4]) or "nothing found"


async def review_clip(
    db: Database,
    job: JobRecord,
    clip: Path,
    *,
    age_restricted: bool,
    can_hold: bool,
    hold_hours: float,
    now: datetime | None = None,
) -> ClipCheck | None:
    """The clip's check, made now or read back; None when the guild's mode is `off` (or the
    job has no guild: CLI clips are not checked)."""
    if job.guild_id is None:
        return None
    existing = await store.get_check(db, job.id)
    if existing is not None:
        return existing
    policy = await guild_policy(db, job.guild_id)
    if policy.mode == "off":
        return None
    scored: ClipScore | None = None
    note: str | None = None
    if not age_restricted:
        scored, note = await _score(clip)
    score = max(scored.score if scored else 0.0, 1.0 if job.provider_flagged else 0.0)
    action, why = decide(policy, score, age_restricted=age_restricted, can_hold=can_hold)
    note = "; ".join(n for n in (note, why) if n) or None
    at = now or utcnow()
    labels = dict(scored.labels) if scored else {}
    if job.provider_flagged:
        labels = {"PROVIDER_NSFW_FLAG": 1.0, **labels}
    check = ClipCheck(
        job_id=job.id,
        guild_id=job.guild_id,
        score=round(score, 4),
        labels=list(labels),
        frames=scored.frames if scored else 0,
        provider_flagged=job.provider_flagged,
        threshold=policy.threshold,
        mode=policy.mode,
        action=action,
        note=note,
        checked_at=at,
        hold_until=at + timedelta(hours=hold_hours) if action == "hold" else None,
    )
    async with db.transaction() as conn:
        stored = await store.record_check(conn, check)
        if stored.checked_at == check.checked_at:  # ours, not a concurrent writer's
            await _audit_check(conn, job, stored, labels, scored, policy, at)
    return stored


async def _audit_check(
    conn: Any,
    job: JobRecord,
    check: ClipCheck,
    labels: dict[str, float],
    scored: ClipScore | None,
    policy: SafetyPolicy,
    now: datetime,
) -> None:
    summary = (
        f"job {job.id} clip check: score {check.score:.2f} ({_labels_text(labels)}), "
        f"threshold {check.threshold:g}, mode {check.mode} → {ACTION_WORDS[check.action]}"
    )
    if check.note:
        summary += f" ({check.note})"
    await audit(
        conn,
        guild_id=job.guild_id,
        kind=KIND_SAFETY,
        summary=summary,
        actor_id=job.user_id,
        target_id=job.user_id,
        channel_id=job.channel_id,
        job_id=job.id,
        data={
            "event": "check",
            "score": check.score,
            "labels": labels,
            "frames": check.frames,
            "provider_flagged": check.provider_flagged,
            "threshold": check.threshold,
            "mode": check.mode,
            "action": check.action,
            "note": check.note,
            "cpu_seconds": round(scored.cpu_seconds, 3) if scored else None,
            "prompt": job.prompt,
            "mode_is_default": policy.mode_is_default,
        },
        now=now,
        # A clean clip posted as it is: in the audit log (/videoadmin log, export) only,
        # not one more mod-log post per clip; flagged, spoilered or held clips are posted.
        modlog=check.action != "post" or check.score >= check.threshold,
    )


async def hold_posted(db: Database, job_id: int, *, channel_id: int, message_id: int) -> None:
    """Remember the mod-log message that carries a held clip's buttons."""
    async with db.transaction() as conn:
        await store.set_hold_message(conn, job_id, channel_id=channel_id, message_id=message_id)


async def get_check(db: Database, job_id: int) -> ClipCheck | None:
    return await store.get_check(db, job_id)


async def held_clips(db: Database, guild_id: int) -> list[ClipCheck]:
    """The guild's clips waiting for a moderator, oldest first."""
    return await store.held_clips(db, guild_id)


@dataclass(frozen=True)
class Outcome:
    """What a moderator's button did: `done` False means someone decided first."""

    done: bool
    check: ClipCheck | None
    job: JobRecord | None


async def _decide(
    db: Database, job_id: int, decision: Decision, *, by: int | None, now: datetime
) -> Outcome:
    async with db.transaction() as conn:
        won = await store.decide(conn, job_id, decision, by=by, now=now)
        check = await store.get_check(conn, job_id)
        job = await job_store.get_job(conn, job_id)
        if won and check is not None and job is not None:
            who = f"by <@{by}>" if by is not None else "after the review time ran out"
            await audit(
                conn,
                guild_id=job.guild_id,
                kind=KIND_SAFETY,
                summary=f"job {job_id} held clip {decision} {who} (score {check.score:.2f})",
                actor_id=by,
                target_id=job.user_id,
                channel_id=job.channel_id,
                job_id=job_id,
                data={"event": decision, "score": check.score, "labels": check.labels},
                now=now,
            )
    return Outcome(done=won, check=check, job=job)


async def release(
    db: Database, tracker: JobTracker, job_id: int, *, by: int, now: datetime | None = None
) -> Outcome:
    """A moderator lets a held clip be posted; the tracker posts it (exactly once)."""
    outcome = await _decide(db, job_id, "released", by=by, now=now or utcnow())
    if outcome.done:
        await tracker.delivery.deliver_now(job_id)
    return outcome


async def discard(
    db: Database, tracker: JobTracker, job_id: int, *, by: int, now: datetime | None = None
) -> Outcome:
    """A moderator refuses a held clip: the job fails (refunded), the member is told."""
    outcome = await _decide(db, job_id, "discarded", by=by, now=now or utcnow())
    if outcome.done:
        await tracker.delivery.end_waiting(
            job_id, reason=f"held clip discarded by moderator {by}", member=MSG_DISCARDED
        )
    return outcome


async def expire(db: Database, job_id: int, *, now: datetime | None = None) -> bool:
    """No moderator decided in time: the hold ends like a discard (the caller fails the job).
    False when a moderator decided meanwhile."""
    outcome = await _decide(db, job_id, "expired", by=None, now=now or utcnow())
    return outcome.done


def expired_message(hold_hours: float) -> str:
    return (
        f"no moderator reviewed the clip within {hold_hours:g} h after the safety check "
        "flagged it, so it was not posted"
    )
