"""The slash-command schema hash of each sync scope (SQL only), so commands are synced only
when they changed: Discord caps command creates at 200 a day per guild."""

from __future__ import annotations

from datetime import datetime

from bot.db import Database, to_db_time


async def synced_hash(db: Database, scope: str) -> str | None:
    """The schema hash last synced for `scope` ('global' or 'guild:<id>'), if any."""
    value = await db.fetchval("SELECT schema_hash FROM command_sync WHERE scope = ?", (scope,))
    return None if value is None else str(value)


async def record_sync(db: Database, scope: str, schema_hash: str, at: datetime) -> None:
    await db.execute(
        "INSERT INTO command_sync (scope, schema_hash, synced_at) VALUES (?, ?, ?) "
        "ON CONFLICT(scope) DO UPDATE SET schema_hash = excluded.schema_hash, "
        "synced_at = excluded.synced_at",
        (scope, schema_hash, to_db_time(at)),
    )
