"""Reports for admins: usage over the last N days (from the jobs and the quota ledger).

- `usage`  the aggregation (per day and provider, per member, a one-line summary) and the
           daily CSV; SQL in `bot.store.reports`
- `chart`  the usage chart as a PNG (matplotlib, Agg backend), drawn in a worker thread
- `queue`  the server's unfinished jobs with their place in line (`/videoadmin queue`)
"""

from __future__ import annotations

from bot.reports.chart import HEIGHT_PX, WIDTH_PX, render_usage_png
from bot.reports.queue import guild_queue
from bot.reports.usage import (
    CSV_COLUMNS,
    DayUsage,
    MemberUsage,
    UsageReport,
    build_report,
    daily_csv,
    day_range,
    usage_report,
)

__all__ = [
    "CSV_COLUMNS",
    "HEIGHT_PX",
    "WIDTH_PX",
    "DayUsage",
    "MemberUsage",
    "UsageReport",
    "build_report",
    "daily_csv",
    "day_range",
    "guild_queue",
    "render_usage_png",
    "usage_report",
]
