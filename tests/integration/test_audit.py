"""The audit table on a real migrated SQLite file: append-only, pruning, CSV export."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot import moderation
from bot.db import Database, IntegrityError
from bot.store import audit as audit_store
from bot.store.guilds import update_guild_settings

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
GUILD = 111


async def add(db: Database, *, at: datetime, guild_id: int | None = GUILD, **kw) -> int:
    async with db.transaction() as conn:
        return await moderation.audit(
            conn,
            guild_id=guild_id,
            kind=kw.pop("kind", "generation"),
            summary=kw.pop("summary", "a finished job"),
            now=at,
            **kw,
        )


async def count(db: Database, guild_id: int | None = GUILD) -> int:
    return int(
        await db.fetchval(
            "SELECT COUNT(*) FROM audit_log WHERE guild_id IS NOT DISTINCT FROM ?", (guild_id,)
        )
    )


async def test_audit_rows_cannot_be_updated(db: Database) -> None:
    audit_id = await add(db, at=NOW)
    with pytest.raises(IntegrityError, match="append-only"):
        await db.execute("UPDATE audit_log SET summary = 'edited' WHERE id = ?", (audit_id,))
    with pytest.raises(IntegrityError, match="append-only"):
        await db.execute("UPDATE audit_log SET data_json = '{}'")
    entry = await audit_store.get_entry(db, audit_id)
    assert entry is not None and entry.summary == "a finished job"


async def test_audit_rows_cannot_be_deleted(db: Database) -> None:
    await add(db, at=NOW)
    with pytest.raises(IntegrityError, match="append-only"):
        await db.execute("DELETE FROM audit_log")
    assert await count(db) == 1


async def test_prune_removes_old_entries_and_is_itself_logged(db: Database) -> None:
    old = [await add(db, at=NOW - timedelta(days=d)) for d in (200, 120, 91)]
    keep = [await add(db, at=NOW - timedelta(days=d)) for d in (89, 1)]
    other_guild_old = await add(db, at=NOW - timedelta(days=300), guild_id=222)

    deleted = await moderation.prune(db, GUILD, NOW)

    assert deleted == len(old)
    ids = [r[0] for r in await db.fetchall("SELECT id FROM audit_log WHERE guild_id = ?", (GUILD,))]
    assert set(keep) <= set(ids) and not set(old) & set(ids)
    assert await audit_store.get_entry(db, other_guild_old) is not None  # other guild untouched
    prune_entries = [e for e in await moderation.recent_entries(db, GUILD) if e.kind == "prune"]
    assert len(prune_entries) == 1
    assert prune_entries[0].data["deleted"] == 3
    assert prune_entries[0].data["retention_days"] == 90
    # The gate is shut again: ordinary deletes are still refused.
    assert await db.fetchval("SELECT open FROM audit_prune_gate") == 0
    with pytest.raises(IntegrityError):
        await db.execute("DELETE FROM audit_log WHERE id = ?", (keep[0],))
    # Nothing left to prune: nothing deleted and no new prune entry.
    assert await moderation.prune(db, GUILD, NOW) == 0
    assert sum(e.kind == "prune" for e in await moderation.recent_entries(db, GUILD)) == 1


async def test_prune_follows_the_guild_retention_and_drops_pending_posts(db: Database) -> None:
    await update_guild_settings(db, GUILD, retention_days=30, log_channel_id=999, now=NOW)
    stale = await add(db, at=NOW - timedelta(days=31))
    fresh = await add(db, at=NOW - timedelta(days=29))
    assert await audit_store.pending_posts(db, GUILD) == 2

    assert await moderation.prune(db, GUILD, NOW) == 1

    assert await audit_store.get_entry(db, stale) is None
    assert await audit_store.get_entry(db, fresh) is not None
    queued = {r[0] for r in await db.fetchall("SELECT audit_id FROM modlog_outbox")}
    assert stale not in queued and fresh in queued  # plus the prune entry itself
    assert len(queued) == 2


async def test_prune_rolls_back_completely_on_error(db: Database) -> None:
    await add(db, at=NOW - timedelta(days=100))
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            assert await audit_store.prune_before(conn, GUILD, NOW - timedelta(days=90)) == 1
            raise RuntimeError("crash mid-prune")
    assert await count(db) == 1
    assert await db.fetchval("SELECT open FROM audit_prune_gate") == 0


async def test_set_retention_prunes_and_audits(db: Database) -> None:
    await add(db, at=NOW - timedelta(days=20))
    await add(db, at=NOW - timedelta(days=2))
    change, removed = await moderation.set_retention(db, GUILD, 7, actor_id=5, now=NOW)
    assert (change.old, change.new, removed) == (90, 7, 1)
    kinds = [e.kind for e in await moderation.recent_entries(db, GUILD)]
    assert kinds == ["prune", "admin", "generation"]
    with pytest.raises(moderation.ModerationError, match="between 7 and 3650"):
        await moderation.set_retention(db, GUILD, 3, actor_id=5, now=NOW)


TRICKY = [
    "plain prompt",
    'quotes "inside", commas, and\nnew\r\nlines',
    '=HYPERLINK("http://evil.example","click")',
    "+1 -1 @SUM(A1) \tTAB",
    "'already quoted",
    "unicode: Ⓝ-s-f-w, 日本語, emoji 🎬, zero\u200bwidth",
    "",
]


async def test_csv_export_round_trips(db: Database) -> None:
    expected = []
    for i, prompt in enumerate(TRICKY):
        audit_id = await add(
            db,
            at=NOW - timedelta(days=3, minutes=i),
            kind="refusal" if i % 2 else "generation",
            summary=prompt or "-empty-",
            actor_id=1000 + i,
            target_id=2000 + i if i % 3 else None,
            channel_id=3000,
            job_id=i or None,
            data={"prompt": prompt, "nested": {"list": [1, 2.5, None], "ok": True}},
        )
        expected.append(await audit_store.get_entry(db, audit_id))
    await add(db, at=NOW - timedelta(days=40))  # outside the range
    await add(db, at=NOW - timedelta(days=3), guild_id=222)  # other guild

    start, end = moderation.export_range(
        (NOW - timedelta(days=10)).date().isoformat(),
        NOW.date().isoformat(),
        today=NOW.date(),
        retention_days=90,
    )
    data, rows = await moderation.export_csv(db, GUILD, start, end)

    assert data.startswith(b"\xef\xbb\xbf")  # BOM for spreadsheets
    parsed = moderation.read_csv_export(data)
    assert rows == len(parsed) == len(TRICKY)
    assert list(parsed[0]) == list(moderation.CSV_COLUMNS)
    by_id = {int(row["id"]): row for row in parsed}
    for entry in expected:
        assert entry is not None
        row = by_id[entry.id]
        assert datetime.fromisoformat(row["at"]) == entry.at
        assert int(row["guild_id"]) == entry.guild_id
        assert row["kind"] == entry.kind
        assert row["summary"] == entry.summary
        for column in ("actor_id", "target_id", "channel_id", "job_id"):
            value = getattr(entry, column)
            assert row[column] == ("" if value is None else str(value))
        assert json.loads(row["data_json"]) == entry.data
    # Formula-looking cells are guarded in the raw file.
    raw = data.decode("utf-8-sig")
    assert "'=HYPERLINK" in raw and ",=HYPERLINK" not in raw


async def test_csv_export_size_limit(db: Database) -> None:
    for i in range(300):
        await add(db, at=NOW - timedelta(minutes=i), data={"prompt": "x" * 200})
    start, end = NOW - timedelta(days=1), NOW + timedelta(days=1)
    with pytest.raises(moderation.ExportTooLarge, match="shorter date range"):
        await moderation.export_csv(db, GUILD, start, end, max_bytes=20_000)
    data, rows = await moderation.export_csv(db, GUILD, start, end, max_bytes=1_000_000)
    assert rows == 300 and len(data) > 20_000


def test_export_range_parsing() -> None:
    today = NOW.date()
    start, end = moderation.export_range(None, None, today=today, retention_days=30)
    assert start == datetime(2025, 5, 16, tzinfo=UTC)
    assert end == datetime(2025, 6, 16, tzinfo=UTC)
    start, end = moderation.export_range("2025-06-01", "2025-06-01", today=today, retention_days=90)
    assert end - start == timedelta(days=1)
    with pytest.raises(moderation.ModerationError, match="YYYY-MM-DD"):
        moderation.export_range("06/01/2025", None, today=today, retention_days=90)
    with pytest.raises(moderation.ModerationError, match="on or before"):
        moderation.export_range("2025-06-10", "2025-06-01", today=today, retention_days=90)
