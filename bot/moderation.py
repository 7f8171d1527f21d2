"""Moderation: the audit log, prompt rules, blocked members, mod-log posting, retention.

Audit entries (`audit`) are written inside the caller's transaction, together with the
change they record; when the guild has a log channel the entry is also queued in
`modlog_outbox`, and `ModLog` posts queued entries in the background (failures are retried
and never block anything else).

`data` conventions (what `cogs/modlog.py` renders; every key optional):

- generation: prompt, mode, settings {duration, width, height, fps, seed, audio, ...},
  inputs [{name, sha256, url?}], provider, model, provider_job_id, cost_usd,
  outcome ("delivered" | "failed" | "cancelled" | "expired"), failure_reason, result_url
  (jump link to the result message)
- refusal: reason ("blocked_member" | "blocked_word" | "allowance" | "invalid_input" | ...),
  message, prompt, term_id
- admin: setting, old, new (plus details such as reason, expires_at)
- delete / cancel: message_id, job details; prune: deleted, cutoff, retention_days
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

import aiosqlite
from pydantic import BaseModel, ConfigDict

from bot import textmatch
from bot.db import Database, utcnow
from bot.scheduling import create_task
from bot.store import audit as audit_store
from bot.store import blocks as block_store
from bot.store.audit import AuditEntry
from bot.store.blocks import BlockedMember, BlockedTerm
from bot.store.guilds import DEFAULT_RETENTION_DAYS, get_guild_settings, update_guild_settings
from bot.store.jobs import JobRecord

__all__ = [
    "AuditEntry",
    "BlockedMember",
    "BlockedTerm",
    "Change",
    "ModLog",
    "ModerationError",
    "PermanentPostError",
    "audit",
    "check_member",
    "check_prompt",
    "prune",
]

log = logging.getLogger(__name__)

KIND_GENERATION = "generation"
KIND_REFUSAL = "refusal"
KIND_ADMIN = "admin"
KIND_DELETE = "delete"
KIND_PRUNE = "prune"
KIND_CANCEL = "cancel"
_KIND_RE = re.compile(r"^[a-z][a-z_]{0,31}$")
MAX_SUMMARY_CHARS = 1000

BLOCKED_MEMBER_MESSAGE = "You can't use /video in this server right now."
PROMPT_CHECK_TIMEOUT_MESSAGE = (
    "Your prompt couldn't be checked against this server's blocked terms in time; "
    "please shorten or simplify it."
)
PROMPT_CHECK_FAILED_MESSAGE = (
    "Your prompt couldn't be checked against this server's blocked terms right now; "
    "please try again in a moment."
)
MATCH_TIME_LIMIT_S = textmatch.MATCH_TIMEOUT_S  # all of a guild's regexes on one prompt
MAX_TERMS_PER_GUILD = 500
MAX_REGEXES_PER_GUILD = 50
MAX_REASON_CHARS = 300
MAX_BLOCK_DAYS = 3650
MIN_RETENTION_DAYS = 7
MAX_RETENTION_DAYS = 3650


class ModerationError(Exception):
    """Bad admin input; `message` can be shown as is and says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Change(BaseModel):
    """One audited admin change: `summary` is also the reply to the admin."""

    model_config = ConfigDict(frozen=True)

    setting: str
    summary: str
    old: Any = None
    new: Any = None
    audit_id: int


# ----- audit -----------------------------------------------------------------------------


async def audit(
    conn: aiosqlite.Connection,
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
) -> int:
    """Append an audit entry (inside the caller's transaction); returns its id.

    When the guild has a log channel the entry is queued for it too; call
    `bot.modlog.wake()` after the transaction commits to post it promptly.
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
    if guild_id is not None:
        await audit_store.enqueue_post(conn, audit_id, guild_id, now)
    return audit_id


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


# ----- checks used by /video -------------------------------------------------------------


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


async def check_member(db: Database, guild_id: int, user_id: int, now: datetime) -> str | None:
    """None when the member may use /video; else the neutral message to show them."""
    block = await block_store.active_block(db, guild_id, user_id, now)
    return None if block is None else BLOCKED_MEMBER_MESSAGE


@lru_cache(maxsize=256)
def _ruleset(rules: tuple[textmatch.Rule, ...]) -> textmatch.RuleSet:
    return textmatch.RuleSet(rules)


async def guild_ruleset(db: Database, guild_id: int) -> textmatch.RuleSet:
    terms = await block_store.list_terms(db, guild_id)
    return _ruleset(tuple(textmatch.Rule(t.id, t.pattern, t.is_regex) for t in terms))


class PromptVerdict(BaseModel):
    """Why a prompt is refused: the member-facing message and, for moderators, the rule."""

    model_config = ConfigDict(frozen=True)

    message: str
    term_id: int | None = None
    is_regex: bool = False
    excerpt: str | None = None  # the part of the prompt that matched


async def find_blocked_term(db: Database, guild_id: int, prompt: str) -> PromptVerdict | None:
    """None when the prompt passes the guild's blocked terms (see `check_prompt`)."""
    rules = await guild_ruleset(db, guild_id)
    if rules.empty:
        return None
    try:
        hit = await rules.match(prompt, time_limit=MATCH_TIME_LIMIT_S)
    except textmatch.RegexTimeout:
        log.warning("blocked-term regexes of guild %s timed out on a prompt", guild_id)
        return PromptVerdict(message=PROMPT_CHECK_TIMEOUT_MESSAGE)
    except textmatch.SandboxError:
        log.exception("blocked-term check failed (guild %s)", guild_id)
        return PromptVerdict(message=PROMPT_CHECK_FAILED_MESSAGE)
    if hit is None:
        return None
    excerpt = hit.excerpt(prompt).replace("`", "'")
    shown = f" (`{excerpt}`)" if excerpt.strip() else ""
    return PromptVerdict(
        message=f"Your prompt contains a blocked term{shown}; please rephrase it.",
        term_id=hit.rule.id,
        is_regex=hit.rule.is_regex,
        excerpt=excerpt,
    )


async def check_prompt(db: Database, guild_id: int, prompt: str) -> str | None:
    """None when the prompt is allowed; else the message for the member.

    The message quotes the part of *their* prompt that matched, never a rule's pattern.
    If the guild's regexes overrun their time limit the prompt is refused (fail closed).
    """
    verdict = await find_blocked_term(db, guild_id, prompt)
    return None if verdict is None else verdict.message


# ----- blocked members -------------------------------------------------------------------

_DURATION_PART = re.compile(
    r"(\d+)(minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w)"
)
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_FOREVER = frozenset({"", "forever", "indefinite", "indefinitely", "permanent", "never"})


def parse_duration(text: str | None) -> timedelta | None:
    """ "30m", "2h", "3d", "1w", "1d12h" → timedelta; empty/"forever" → None."""
    raw = (text or "").strip().lower()
    if raw in _FOREVER:
        return None
    compact = raw.replace(" ", "")
    total = 0
    position = 0
    for part in _DURATION_PART.finditer(compact):
        if part.start() != position:
            break
        total += int(part.group(1)) * _UNIT_SECONDS[part.group(2)[0]]
        position = part.end()
    if position != len(compact) or not compact:
        raise ModerationError(
            f"I can't read the duration `{text}`: use e.g. `30m`, `2h`, `3d`, `1w` or `1d12h` "
            "(or leave it empty to block until unblocked)."
        )
    if total < 60:
        raise ModerationError("A block must last at least one minute.")
    if total > MAX_BLOCK_DAYS * 86_400:
        raise ModerationError(
            f"A timed block can last at most {MAX_BLOCK_DAYS} days; leave the duration "
            "empty to block until unblocked."
        )
    return timedelta(seconds=total)


def describe_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0m"


async def block_member(
    db: Database,
    guild_id: int,
    user_id: int,
    *,
    actor_id: int,
    reason: str | None,
    duration: timedelta | None,
    now: datetime,
) -> Change:
    """Block (or re-block) a member from /video; `duration` None: until unblocked."""
    reason = " ".join(reason.split()) if reason else None
    if reason and len(reason) > MAX_REASON_CHARS:
        raise ModerationError(f"Keep the reason under {MAX_REASON_CHARS} characters.")
    expires = now + duration if duration is not None else None
    block = BlockedMember(
        guild_id=guild_id,
        user_id=user_id,
        reason=reason,
        blocked_by=actor_id,
        created_at=now,
        expires_at=expires,
    )
    async with db.transaction() as conn:
        previous = await block_store.active_block(conn, guild_id, user_id, now)
        await block_store.put_block(conn, block)
        old = _block_state(previous)
        new = _block_state(block)
        until = f"for {describe_duration(duration)}" if duration else "until unblocked"
        summary = f"blocked member {user_id} from /video {until}"
        if reason:
            summary += f" (reason: {reason})"
        audit_id = await audit(
            conn,
            guild_id=guild_id,
            kind=KIND_ADMIN,
            summary=summary,
            actor_id=actor_id,
            target_id=user_id,
            data={"setting": "blocked", "old": old, "new": new, "reason": reason},
            now=now,
        )
    return Change(setting="blocked", summary=summary, old=old, new=new, audit_id=audit_id)


def _block_state(block: BlockedMember | None) -> str:
    if block is None:
        return "not blocked"
    if block.expires_at is None:
        return "blocked until unblocked"
    return f"blocked until {block.expires_at.astimezone(UTC).isoformat(timespec='minutes')}"


async def unblock_member(
    db: Database, guild_id: int, user_id: int, *, actor_id: int, now: datetime
) -> Change | None:
    """Lift a block; None (nothing audited) when the member was not blocked."""
    async with db.transaction() as conn:
        previous = await block_store.active_block(conn, guild_id, user_id, now)
        await block_store.delete_block(conn, guild_id, user_id)
        if previous is None:
            return None
        summary = f"unblocked member {user_id}"
        audit_id = await audit(
            conn,
            guild_id=guild_id,
            kind=KIND_ADMIN,
            summary=summary,
            actor_id=actor_id,
            target_id=user_id,
            data={"setting": "blocked", "old": _block_state(previous), "new": "not blocked"},
            now=now,
        )
    return Change(
        setting="blocked",
        summary=summary,
        old=_block_state(previous),
        new="not blocked",
        audit_id=audit_id,
    )


async def active_block(
    db: Database, guild_id: int, user_id: int, now: datetime
) -> BlockedMember | None:
    return await block_store.active_block(db, guild_id, user_id, now)


async def list_blocked_members(db: Database, guild_id: int, now: datetime) -> list[BlockedMember]:
    return await block_store.list_active_blocks(db, guild_id, now)


# ----- blocked terms ---------------------------------------------------------------------


async def list_blocked_terms(db: Database, guild_id: int) -> list[BlockedTerm]:
    return await block_store.list_terms(db, guild_id)


def _rule_label(
    term: BlockedTerm | None = None, *, pattern: str = "", is_regex: bool = False
) -> str:
    if term is not None:
        pattern, is_regex = term.pattern, term.is_regex
    return f"regex /{pattern}/" if is_regex else f"term “{pattern}”"


async def add_blocked_term(
    db: Database,
    guild_id: int,
    pattern: str,
    *,
    is_regex: bool,
    actor_id: int,
    now: datetime,
    sandbox: textmatch.RegexSandbox | None = None,
) -> BlockedTerm:
    """Validate and add a term or regex (raises ModerationError saying what to change)."""
    try:
        if is_regex:
            clean = await textmatch.check_regex(pattern, sandbox=sandbox)
            key = clean
        else:
            clean = " ".join(pattern.split())
            key = textmatch.term_key(clean)
    except textmatch.RuleError as exc:
        raise ModerationError(exc.message) from None
    existing = await block_store.list_terms(db, guild_id)
    for term in existing:
        if term.is_regex != is_regex:
            continue
        other = term.pattern if is_regex else _safe_key(term.pattern)
        if other == key:
            raise ModerationError(f"That is already blocked as {_rule_label(term)} (#{term.id}).")
    if len(existing) >= MAX_TERMS_PER_GUILD:
        raise ModerationError(
            f"This server already has {MAX_TERMS_PER_GUILD} blocked terms; remove some first."
        )
    if is_regex and sum(t.is_regex for t in existing) >= MAX_REGEXES_PER_GUILD:
        raise ModerationError(
            f"This server already has {MAX_REGEXES_PER_GUILD} blocked expressions; remove some "
            "first (plain terms are cheaper and catch spelling tricks too)."
        )
    async with db.transaction() as conn:
        term = await block_store.insert_term(
            conn, guild_id=guild_id, pattern=clean, is_regex=is_regex, added_by=actor_id, now=now
        )
        label = _rule_label(term)
        await audit(
            conn,
            guild_id=guild_id,
            kind=KIND_ADMIN,
            summary=f"added blocked {label} (#{term.id})",
            actor_id=actor_id,
            data={
                "setting": "blocked_term",
                "old": None,
                "new": clean,
                "is_regex": is_regex,
                "term_id": term.id,
            },
            now=now,
        )
    return term


def _safe_key(pattern: str) -> str | None:
    try:
        return textmatch.term_key(pattern)
    except textmatch.RuleError:
        return None


async def resolve_term(db: Database, guild_id: int, text: str) -> BlockedTerm:
    """A rule by exact pattern, by `#id`, or by an equivalent term spelling."""
    wanted = " ".join(text.split())
    terms = await block_store.list_terms(db, guild_id)
    exact = [t for t in terms if t.pattern == wanted]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        ids = ", ".join(f"#{t.id}" for t in exact)
        raise ModerationError(f"`{wanted}` is both a term and a regex ({ids}); give the number.")
    number = wanted.removeprefix("#")
    if number.isdecimal() and len(number) <= 19:
        for term in terms:
            if term.id == int(number):
                return term
    key = _safe_key(wanted)
    if key is not None:
        for term in terms:
            if not term.is_regex and _safe_key(term.pattern) == key:
                return term
    raise ModerationError(
        f"No blocked term or expression `{wanted}` here; see `/videoadmin blockword list`."
    )


async def remove_blocked_term(
    db: Database, guild_id: int, text: str, *, actor_id: int, now: datetime
) -> BlockedTerm:
    term = await resolve_term(db, guild_id, text)
    async with db.transaction() as conn:
        await block_store.delete_term(conn, guild_id, term.id)
        await audit(
            conn,
            guild_id=guild_id,
            kind=KIND_ADMIN,
            summary=f"removed blocked {_rule_label(term)} (#{term.id})",
            actor_id=actor_id,
            data={
                "setting": "blocked_term",
                "old": term.pattern,
                "new": None,
                "is_regex": term.is_regex,
                "term_id": term.id,
            },
            now=now,
        )
    return term


# ----- guild settings owned by moderation ------------------------------------------------


async def set_log_channel(
    db: Database, guild_id: int, channel_id: int | None, *, actor_id: int, now: datetime
) -> Change:
    """Set (or with None, turn off) the mod-log channel. The change itself is posted there."""
    async with db.transaction() as conn:
        before = await get_guild_settings(conn, guild_id)
        await update_guild_settings(conn, guild_id, log_channel_id=channel_id, now=now)
        old, new = before.log_channel_id, channel_id
        summary = (
            f"mod-log channel: {_channel_words(old)} → {_channel_words(new)}"
            if old != new
            else f"mod-log channel unchanged ({_channel_words(new)})"
        )
        audit_id = await audit(
            conn,
            guild_id=guild_id,
            kind=KIND_ADMIN,
            summary=summary,
            actor_id=actor_id,
            channel_id=new,
            data={"setting": "log_channel_id", "old": old, "new": new},
            now=now,
        )
    return Change(setting="log_channel_id", summary=summary, old=old, new=new, audit_id=audit_id)


def _channel_words(channel_id: int | None) -> str:
    return "none" if channel_id is None else f"channel {channel_id}"


async def set_retention(
    db: Database, guild_id: int, days: int, *, actor_id: int, now: datetime
) -> tuple[Change, int]:
    """Set how long audit entries are kept, then prune; returns (change, entries removed)."""
    if not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise ModerationError(
            f"Keep the log between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS} days."
        )
    async with db.transaction() as conn:
        before = await get_guild_settings(conn, guild_id)
        await update_guild_settings(conn, guild_id, retention_days=days, now=now)
        summary = f"audit retention: {before.retention_days} → {days} days"
        audit_id = await audit(
            conn,
            guild_id=guild_id,
            kind=KIND_ADMIN,
            summary=summary,
            actor_id=actor_id,
            data={"setting": "retention_days", "old": before.retention_days, "new": days},
            now=now,
        )
    removed = await prune(db, guild_id, now)
    change = Change(
        setting="retention_days",
        summary=summary,
        old=before.retention_days,
        new=days,
        audit_id=audit_id,
    )
    return change, removed


# ----- retention -------------------------------------------------------------------------


async def prune(db: Database, guild_id: int | None, now: datetime) -> int:
    """Delete the guild's audit entries older than its retention (default 90 days).

    One transaction: open the gate, delete, close the gate, and (when anything was
    deleted) record a "prune" entry. Returns the number of entries deleted.
    """
    async with db.transaction() as conn:
        days = DEFAULT_RETENTION_DAYS
        if guild_id is not None:
            days = (await get_guild_settings(conn, guild_id)).retention_days
        cutoff = now - timedelta(days=days)
        deleted = await audit_store.prune_before(conn, guild_id, cutoff)
        if deleted:
            await audit(
                conn,
                guild_id=guild_id,
                kind=KIND_PRUNE,
                summary=f"retention: removed {deleted} audit entries older than {days} days",
                data={"deleted": deleted, "cutoff": cutoff.isoformat(), "retention_days": days},
                now=now,
            )
    if deleted:
        log.info(
            "pruned %d audit entries of guild %s (older than %d days)", deleted, guild_id, days
        )
    return deleted


async def prune_all(db: Database, now: datetime) -> int:
    """Retention for every guild with audit entries, plus removal of expired blocks."""
    total = 0
    for guild_id in await audit_store.audit_guild_ids(db):
        total += await prune(db, guild_id, now)
    async with db.transaction() as conn:
        await block_store.purge_expired_blocks(conn, now)
    return total


# ----- CSV export ------------------------------------------------------------------------

CSV_COLUMNS = (
    "id",
    "at",
    "guild_id",
    "kind",
    "actor_id",
    "target_id",
    "channel_id",
    "job_id",
    "summary",
    "data_json",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def _csv_cell(value: Any) -> str:
    """Text for a cell; text a spreadsheet would run as a formula gets a leading "'"."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_value(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


async def retention_days(db: Database, guild_id: int) -> int:
    """How many days the guild keeps audit entries."""
    return (await get_guild_settings(db, guild_id)).retention_days


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ModerationError(f"`{option}` must be a date like 2025-01-31 (YYYY-MM-DD).") from None


def export_range(
    since: str | None, until: str | None, *, today: date, retention_days: int
) -> tuple[datetime, datetime]:
    """[start, end) in UTC for the export options (dates inclusive, UTC days)."""
    start_day = parse_day(since, "since") if since else today - timedelta(days=retention_days)
    end_day = parse_day(until, "until") if until else today
    if start_day > end_day:
        raise ModerationError("`since` must be on or before `until`.")
    start = datetime.combine(start_day, time.min, tzinfo=UTC)
    end = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=UTC)
    return start, end


class ExportTooLarge(ModerationError):
    pass


async def export_csv(
    db: Database,
    guild_id: int,
    since: datetime,
    until: datetime,
    *,
    max_bytes: int | None = None,
) -> tuple[bytes, int]:
    """CSV (UTF-8 with BOM, for spreadsheets) of entries with since <= at < until; returns
    (bytes, rows). Raises ExportTooLarge beyond `max_bytes`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    rows = 0
    async for entry in audit_store.iter_entries_between(db, guild_id, since, until):
        writer.writerow(_csv_row(entry))
        rows += 1
        if max_bytes is not None and rows % 200 == 0 and buffer.tell() > max_bytes:
            raise ExportTooLarge(_too_large(max_bytes))
    data = "\ufeff" + buffer.getvalue()
    encoded = data.encode("utf-8")
    if max_bytes is not None and len(encoded) > max_bytes:
        raise ExportTooLarge(_too_large(max_bytes))
    return encoded, rows


def _too_large(max_bytes: int) -> str:
    return (
        f"That export is larger than this server's upload limit ({max_bytes / 1_000_000:.0f} MB);"
        " choose a shorter date range."
    )


def _csv_row(entry: AuditEntry) -> list[str]:
    values: list[Any] = [
        entry.id,
        entry.at.astimezone(UTC).isoformat(timespec="microseconds"),
        entry.guild_id,
        entry.kind,
        entry.actor_id,
        entry.target_id,
        entry.channel_id,
        entry.job_id,
        entry.summary,
        json.dumps(entry.data, ensure_ascii=False, sort_keys=True),
    ]
    return [_csv_cell(v) for v in values]


def read_csv_export(data: bytes) -> list[dict[str, str]]:
    """Parse an export back (undoing the formula guard); for tests and tooling."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    return [{k: _csv_value(v) for k, v in row.items()} for row in reader]


# ----- mod-log channel posting -----------------------------------------------------------

Poster = Callable[[AuditEntry, int], Awaitable[None]]


class PermanentPostError(Exception):
    """Raised by a poster when an entry can never be posted (drop it, do not retry)."""


class ModLog:
    """Posts queued audit entries to each guild's log channel, in order, in the background.

    One loop: post every due entry (per guild in audit order); on a failure the guild's
    due entries wait with exponential backoff and count an attempt; an entry that failed
    `max_attempts` times is dropped with a log line (it stays in the audit log). The loop
    also applies retention every `prune_interval`. Posting never blocks callers: they only
    insert rows (see `audit`) and may `wake()` the loop.
    """

    def __init__(
        self,
        db: Database,
        poster: Poster,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_attempts: int = 10,
        base_delay: float = 5.0,
        max_delay: float = 900.0,
        poll_interval: float = 30.0,
        post_timeout: float = 30.0,
        prune_interval: timedelta | None = timedelta(hours=6),
        batch: int = 50,
    ) -> None:
        self.db = db
        self.poster = poster
        self.clock = clock
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.poll_interval = poll_interval
        self.post_timeout = post_timeout
        self.prune_interval = prune_interval
        self.batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._next_prune: datetime | None = None

    # ----- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self._task = create_task(self._run(), name="modlog")

    async def stop(self, *, grace: float = 5.0) -> None:
        """Finish the post in flight (up to `grace` seconds), then stop the loop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Post newly queued entries now instead of at the next poll."""
        self._wake.set()

    # ----- one pass ---------------------------------------------------------------------

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th consecutive failure (1-based)."""
        return float(min(self.max_delay, self.base_delay * 2 ** max(0, attempts - 1)))

    async def run_once(self) -> int:
        """Post every due entry once; returns how many were posted."""
        now = self.clock()
        due = await audit_store.due_posts(self.db, now, limit=self.batch)
        posted = 0
        by_guild: dict[int, list[audit_store.OutboxItem]] = {}
        for item in due:
            by_guild.setdefault(item.guild_id, []).append(item)
        for guild_id, items in by_guild.items():
            posted += await self._post_guild(guild_id, items)
        async with self.db.transaction() as conn:
            dropped = await audit_store.drop_exhausted(conn, self.max_attempts)
        for audit_id, guild_id in dropped:
            log.warning(
                "mod-log: gave up posting audit entry %d to guild %d after %d attempts",
                audit_id,
                guild_id,
                self.max_attempts,
            )
        return posted

    async def _post_guild(self, guild_id: int, items: Iterable[audit_store.OutboxItem]) -> int:
        posted = 0
        for item in items:
            if self._stopping:
                break
            entry = await audit_store.get_entry(self.db, item.audit_id)
            if item.channel_id is None or entry is None:  # channel turned off / pruned
                await self._done(item.audit_id)
                continue
            try:
                await asyncio.wait_for(self.poster(entry, item.channel_id), self.post_timeout)
            except PermanentPostError as exc:
                log.warning(
                    "mod-log: dropping audit entry %d for guild %d: %s", entry.id, guild_id, exc
                )
                await self._done(item.audit_id)
                continue
            except Exception as exc:
                attempts = item.attempts + 1
                delay = self.backoff(attempts)
                now = self.clock()
                error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning(
                    "mod-log: posting to guild %d failed (attempt %d, retry in %.0f s): %s",
                    guild_id,
                    attempts,
                    delay,
                    error,
                )
                async with self.db.transaction() as conn:
                    await audit_store.guild_posts_failed(
                        conn,
                        guild_id,
                        now=now,
                        retry_at=now + timedelta(seconds=delay),
                        error=error,
                    )
                break  # keep the guild's entries in order: the rest wait too
            await self._done(item.audit_id)
            posted += 1
        return posted

    async def _done(self, audit_id: int) -> None:
        async with self.db.transaction() as conn:
            await audit_store.post_done(conn, audit_id)

    # ----- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            posted = 0
            try:
                posted = await self.run_once()
                await self._maybe_prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("mod-log pass failed; retrying later")
            if self._stopping:
                break
            delay = 0.0 if posted >= self.batch else await self._idle_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _maybe_prune(self) -> None:
        if self.prune_interval is None:
            return
        now = self.clock()
        if self._next_prune is not None and now < self._next_prune:
            return
        self._next_prune = now + self.prune_interval
        await prune_all(self.db, now)

    async def _idle_delay(self) -> float:
        delay = self.poll_interval
        due = await audit_store.next_post_due(self.db)
        if due is not None:
            delay = min(delay, (due - self.clock()).total_seconds())
        if self._next_prune is not None:
            delay = min(delay, (self._next_prune - self.clock()).total_seconds())
        return max(0.0, delay)
