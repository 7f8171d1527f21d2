"""SQL injection: every query takes member/admin text as a bound parameter. The static half is
ruff's S608 on bot/ (string-built SQL is flagged; the few `# noqa: S608` lines build column
lists from fixed allow-lists, e.g. `bot/store/jobs.py::_encode_field`). This is the dynamic
half: hostile text goes through the stores that keep member and admin input and comes back
exactly as written, with every table still there and nothing else changed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import moderation
from bot.db import Database
from bot.providers.base import Mode, NegotiatedRequest
from bot.store import jobs as job_store

HOSTILE = [
    "'); DROP TABLE jobs; --",
    '" OR "1"="1',
    "x' OR 1=1 --",
    "%_%",
    "\\'; DELETE FROM audit_log; --",
    "Robert'); DROP TABLE quota_ledger;--",
    "🎬 ünïcode\ttab",
]
NOW = datetime(2025, 7, 1, tzinfo=UTC)


async def tables(db: Database) -> list[str]:
    rows = await db.fetchall("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")
    return sorted(r["name"] for r in rows)


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_text_round_trips_through_the_stores(db: Database, text: str) -> None:
    before = await tables(db)
    request = NegotiatedRequest(
        prompt=text,
        provider="simulator",
        model="m",
        mode=Mode.TEXT,
        duration=5,
        width=1280,
        height=720,
        fps=25,
    )
    async with db.transaction() as conn:
        job_id = await job_store.insert_job(
            conn,
            guild_id=1,
            channel_id=2,
            user_id=3,
            request=request,
            input_dir=Path("/tmp") / text,
            now=NOW,
        )
        audit_id = await moderation.audit(
            conn, guild_id=1, kind="refusal", summary=text, data={"prompt": text}, now=NOW
        )
    await moderation.block_member(db, 1, 4, actor_id=9, reason=text, duration=None, now=NOW)
    job = await job_store.get_job(db, job_id)
    assert job is not None and job.prompt == text and job.request.prompt == text
    (entry,) = [e for e in await moderation.recent_entries(db, 1) if e.id == audit_id]
    assert entry.summary == " ".join(text.split()) and entry.data["prompt"] == text
    (block,) = await moderation.list_blocked_members(db, 1, NOW)
    assert block.reason == " ".join(text.split())
    assert await tables(db) == before
    assert await db.fetchval("SELECT COUNT(*) FROM jobs") == 1
    # A lookup by text matches only what it names (no LIKE wildcards, no injection).
    with pytest.raises(moderation.ModerationError):
        await moderation.resolve_term(db, 1, text)
