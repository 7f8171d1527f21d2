"""The audit log's only writer: every audit entry in the bot is written here.

`audit` appends an entry inside the caller's transaction, together with the change it
records; when the entry belongs to a guild it is also queued in `modlog_outbox`, and the
mod-log worker listening on that database (`listen`) is woken once the transaction has
committed, so nobody has to remember to wake it. The other writers here wrap `audit` for
one kind of entry each (generation, refusal, job action, admin change) and own the
transaction when the caller has none.

`data` conventions (what `cogs/modlog.py` renders; every key optional):

- generation: prompt, mode, settings {duration, width, height, fps, seed, audio, ...},
  inputs [{name, sha256, url?}], provider, model, provider_job_id, cost_usd,
  outcome ("delivered" | "failed" | "cancelled" | "expired"), failure_reason, result_url
  (jump link to the result message), source {message_id, channel_id, author_id,
  author_kind, url} (Animate: the message the images came from)
- refusal: reason ("blocked_member" | "blocked_word" | "allowance" | "invalid_input" | ...),
  message, prompt, term_id
- admin: setting, old, new (plus details such as reason, expires_at)
- delete / cancel: message_id, job details; prune: deleted, cutoff, retention_days
- provider_account: provider, status (e.g. 402), error (the provider's words)
- generation `data` also has `operation` (generate / audio-to-video / extend / retake),
  `source_job_id` for an edit, and the soundtrack's / source clip's sha256 in `inputs`
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.db import Database, current_transaction, utcnow
from bot.store import audit as audit_store
from bot.store._conn import Connection
from bot.store.audit import AuditEntry
from bot.store.jobs import JobRecord

KIND_GENERATION = "generation"
KIND_REFUSAL = "refusal"
KIND_ADMIN = "admin"
KIND_DELETE = "delete"
KIND_PRUNE = "prune"
KIND_CANCEL = "cancel"
KIND_SUBMISSION_UNKNOWN = "submission_unknown"
KIND_PROVIDER_ACCOUNT = "provider_account"
KIND_SAFETY = "safety"
_KIND_RE = re.compile(r"^[a-z][a-z_]{0,31}$")
MAX_SUMMARY_CHARS = 1000

Wake = Callable[[], None]

# The mod-log worker of each database (at most one): woken after an entry is committed.
_listeners: weakref.WeakKeyDictionary[Database, Wake] = weakref.WeakKeyDictionary()


class Change(BaseModel):
    """One audited admin change: `summary` is also the reply to the admin."""

    model_config = ConfigDict(frozen=True)

    setting: str
    summary: str
    old: Any = None
    new: Any = None
    audit_id: int


# ----- who is woken ----------------------------------------------------------------------


def listen(db: Database, wake: Wake) -> None:
    """Call `wake()` after every commit that queued an entry for a mod-log channel."""
    _listeners[db] = wake


def unlisten(db: Database, wake: Wake) -> None:
    if _listeners.get(db) == wake:
        del _listeners[db]


def _wake_after_commit(conn: Connection) -> None:
    tx = current_transaction(conn)
    if tx is not None:
        tx.after_commit(lambda: _wake(tx.db))
        return
    if isinstance(conn.owner, Database):  # no transaction: the insert has committed already
        _wake(conn.owner)


def _wake(db: Database) -> None:
    wake = _listeners.get(db)
    if wake is not None:
        wake()


# ----- writers ---------------------------------------------------------------------------


async def audit(
    conn: Connection,
    *,
    guild_id: int | None,
    kind: str,
    summary: str,
    actor_id: int | None = None,
    target_id: int | None = None,
    channel_id: int | None = None,
    job_id: int | None = None,
    data: dict[str, Any] | None = None,
    now: datetime,
    modlog: bool = True,
) -> int:
    """Append an audit entry (inside the caller's transaction); returns its id.

    When the guild has a log channel the entry is queued for it too (unless `modlog` is
    False: routine entries kept in the log only), and the mod-log worker is woken after the
    caller's transaction commits.
    """
    if not _KIND_RE.match(kind):
        raise ValueError(f"bad audit kind {kind!r}")
    text = " ".join(summary.split())
    if len(text) > MAX_SUMMARY_CHARS:
        text = text[: MAX_SUMMARY_CHARS - 1] + "…"
    data_json = json.dumps(data or {}, ensure_ascii=False, default=str, sort_keys=True)
    audit_id = await audit_store.insert_entry(
        conn,
        guild_id=guild_id,
        at=now,
        kind=kind,
        summary=text,
        actor_id=actor_id,
        target_id=target_id,
        channel_id=channel_id,
        job_id=job_id,
        data_json=data_json,
    )
    if guild_id is not None and modlog:
        await audit_store.enqueue_post(conn, audit_id, guild_id, now)
        _wake_after_commit(conn)
    return audit_id


async def admin_change(
    conn: Connection,
    *,
    guild_id: int,
    actor_id: int,
    setting: str,
    summary: str,
    old: Any,
    new: Any,
    now: datetime,
    target_id: int | None = None,
    channel_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> Change:
    """Audit an admin's change of `setting` (inside the caller's transaction)."""
    audit_id = await audit(
        conn,
        guild_id=guild_id,
        kind=KIND_ADMIN,
        summary=summary,
        actor_id=actor_id,
        target_id=target_id,
        channel_id=channel_id,
        data={"setting": setting, "old": old, "new": new, **(details or {})},
        now=now,
    )
    return Change(setting=setting, summary=summary, old=old, new=new, audit_id=audit_id)


async def audit_refusal(
    db: Database,
    *,
    guild_id: int | None,
    user_id: int,
    channel_id: int | None,
    reason: str,
    message: str,
    prompt: str,
    now: datetime | None = None,
) -> int | None:
    """Record a refused /video request (None, nothing written, outside a guild)."""
    if guild_id is None:
        return None
    async with db.transaction() as conn:
        return await audit(
            conn,
            guild_id=guild_id,
            kind=KIND_REFUSAL,
            summary=f"refused ({reason}): {message}",
            actor_id=user_id,
            target_id=user_id,
            channel_id=channel_id,
            data={"reason": reason, "message": message, "prompt": prompt},
            now=now or utcnow(),
        )


async def audit_job_action(
    db: Database,
    job: JobRecord,
    *,
    kind: str,
    summary: str,
    actor_id: int,
    now: datetime | None = None,
    **data: Any,
) -> int:
    """Record what someone did to a job (a moderator's cancel, a delete of its video)."""
    async with db.transaction() as conn:
        return await audit(
            conn,
            guild_id=job.guild_id,
            kind=kind,
            summary=summary,
            actor_id=actor_id,
            target_id=job.user_id,
            channel_id=job.channel_id,
            job_id=job.id,
            data={"prompt": job.prompt, **data},
            now=now or utcnow(),
        )


async def audit_submission_unknown(
    conn: Connection, job: JobRecord, *, summary: str, now: datetime, **data: Any
) -> int:
    """A submission whose answer was lost and that the provider cannot look up: it may
    run (and be billed) twice. Inside the caller's transaction (the tracker's note)."""
    return await audit(
        conn,
        guild_id=job.guild_id,
        kind=KIND_SUBMISSION_UNKNOWN,
        summary=summary,
        target_id=job.user_id,
        channel_id=job.channel_id,
        job_id=job.id,
        data={"provider": job.provider, "attempts": job.attempts, **data},
        now=now,
    )


async def audit_provider_account(
    conn: Connection, job: JobRecord, *, summary: str, now: datetime, **data: Any
) -> int:
    """The provider refused a job for its account (out of credit, HTTP 402): for the
    admins, who must top up; written with the job's refund (the tracker's transaction)."""
    return await audit(
        conn,
        guild_id=job.guild_id,
        kind=KIND_PROVIDER_ACCOUNT,
        summary=summary,
        target_id=job.user_id,
        channel_id=job.channel_id,
        job_id=job.id,
        data={"provider": job.provider, **data},
        now=now,
    )


async def audit_provider_refusal(
    conn: Connection, job: JobRecord, *, message: str, stage: str, now: datetime
) -> int:
    """The provider's safety filter refused a job (nothing was made or charged); written
    with the job's refund (the tracker's transaction)."""
    return await audit(
        conn,
        guild_id=job.guild_id,
        kind=KIND_REFUSAL,
        summary=f"job {job.id} refused by {job.provider}'s safety filter at {stage}",
        actor_id=job.user_id,
        target_id=job.user_id,
        channel_id=job.channel_id,
        job_id=job.id,
        data={
            "reason": "provider_filter",
            "message": message,
            "prompt": job.prompt,
            "provider": job.provider,
        },
        now=now,
    )


def jump_url(guild_id: int | None, channel_id: int | None, message_id: int | None) -> str | None:
    if guild_id is None or channel_id is None or message_id is None:
        return None
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


async def audit_generation(
    db: Database,
    job: JobRecord,
    *,
    outcome: str,
    reason: str | None = None,
    result_channel_id: int | None = None,
    result_message_id: int | None = None,
    now: datetime | None = None,
) -> int | None:
    """Record a finished generation (delivered, failed, cancelled or expired).

    Who made what: member, channel, prompt, SHA-256 of each input, settings, provider and
    its job id, cost, outcome and a jump link to the result. CLI jobs (no guild) are not
    audited.
    """
    if job.guild_id is None:
        return None
    request = job.request
    inputs = [
        {"name": name, "sha256": image.sha256}
        for name in ("image", "first_frame", "last_frame")
        if (image := getattr(request, name)) is not None
    ]
    if request.soundtrack is not None:
        inputs.append({"name": "soundtrack", "sha256": request.soundtrack.sha256})
    if request.edit is not None:
        inputs.append({"name": "source", "sha256": request.edit.source.sha256})
    settings = {
        "duration": request.duration,
        "width": request.width,
        "height": request.height,
        "fps": request.fps,
        "seed": request.seed,
        "audio": request.audio,
        "adjustments": [a.describe() for a in job.adjustments or request.adjustments],
    }
    data: dict[str, Any] = {
        "prompt": request.prompt,
        "mode": str(request.mode),
        "operation": str(request.operation),
        "source_job_id": request.edit.source_job_id if request.edit else None,
        "settings": settings,
        "inputs": inputs,
        "provider": job.provider,
        "model": job.model or request.model,
        "provider_job_id": job.provider_job_id,
        "cost_usd": job.cost_usd,
        "outcome": outcome,
        "failure_reason": reason,
        "result_url": jump_url(job.guild_id, result_channel_id, result_message_id),
    }
    summary = f"job {job.id} {outcome}: {request.duration}s {request.width}x{request.height} "
    summary += f"on {job.provider}, ${job.cost_usd:.2f}"
    source = job.source
    if source is not None:
        url = jump_url(source.guild_id, source.channel_id, source.message_id)
        data["source"] = {**source.model_dump(), "url": url}
        summary += f"; animated from {url} by {source.author_kind} {source.author_id}"
    async with db.transaction() as conn:
        return await audit(
            conn,
            guild_id=job.guild_id,
            kind=KIND_GENERATION,
            summary=summary,
            actor_id=job.user_id,
            target_id=job.user_id,
            channel_id=job.channel_id,
            job_id=job.id,
            data=data,
            now=now or utcnow(),
        )


# ----- reading ---------------------------------------------------------------------------


async def recent_entries(
    db: Database,
    guild_id: int,
    *,
    limit: int = 25,
    member_id: int | None = None,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Newest first; `member_id` keeps entries where that member acted or was the target."""
    return await audit_store.recent_entries(
        db, guild_id, limit=max(1, min(limit, 500)), member_id=member_id, before_id=before_id
    )
