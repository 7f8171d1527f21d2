"""CSV export of a guild's audit log (`/videoadmin log export`), and its audit entry.

UTF-8 with BOM for spreadsheets; a cell a spreadsheet would run as a formula starts with
"'" (`read_csv_export` undoes that). `export_range` turns the command's dates into a
UTC [start, end) range.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bot.db import Database
from bot.moderation.audit import KIND_ADMIN, audit
from bot.moderation.errors import ModerationError
from bot.store import audit as audit_store
from bot.store.audit import AuditEntry

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


class ExportTooLarge(ModerationError):
    pass


def _csv_cell(value: Any) -> str:
    """Text for a cell; text a spreadsheet would run as a formula gets a leading "'"."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_value(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


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


async def record_export(
    db: Database, guild_id: int, *, actor_id: int, rows: int, first: str, last: str, now: datetime
) -> int:
    """Audit that `actor_id` exported `rows` entries from day `first` to `last` (inclusive)."""
    async with db.transaction() as conn:
        return await audit(
            conn,
            guild_id=guild_id,
            kind=KIND_ADMIN,
            summary=f"exported the audit log ({rows} entries, {first} → {last})",
            actor_id=actor_id,
            data={"action": "export", "since": first, "until": last, "rows": rows},
            now=now,
        )


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
