"""Writes docs/usage-sample.png: the /videoadmin usage chart for 30 made-up days.

    python docs/make_sample_chart.py [OUT.png]

The rows are invented (a fixed random seed, so the picture is the same on every run) but
go through the bot's own aggregation (`bot.reports.build_report`) and renderer
(`bot.reports.render_usage_png`), exactly as `/videoadmin usage show` draws them.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bot.reports import build_report, render_usage_png
from bot.store.reports import JobUsageRow, RefusalRow

OUT = Path(__file__).with_name("usage-sample.png")
LAST_DAY = date(2025, 6, 30)
DAYS = 30
PROVIDERS = (("bytecompute", 0.06), ("leonardo", 0.08), ("simulator", 0.0))


def sample_rows(rng: random.Random) -> tuple[list[JobUsageRow], list[RefusalRow]]:
    jobs: list[JobUsageRow] = []
    refusals: list[RefusalRow] = []
    first = LAST_DAY.replace(day=1)
    members = [1000 + i for i in range(12)]
    weights = [12, 9, 7, 5, 4, 3, 3, 2, 2, 1, 1, 1]
    day = first
    while day <= LAST_DAY:
        busy = 1.6 if day.weekday() >= 5 else 1.0
        for _ in range(int(rng.gauss(9, 3) * busy) + 2):
            provider, price = rng.choices(PROVIDERS, weights=[6, 3, 1])[0]
            created = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                seconds=rng.randrange(86_400)
            )
            seconds = float(rng.choice((4, 6, 8, 10)))
            roll = rng.random()
            status = "delivered" if roll < 0.9 else ("failed" if roll < 0.96 else "cancelled")
            cost = seconds * price if status == "delivered" else 0.0
            wait = rng.uniform(40, 240)
            jobs.append(
                JobUsageRow(
                    job_id=len(jobs) + 1,
                    user_id=rng.choices(members, weights=weights)[0],
                    provider=provider,
                    status=status,
                    seconds=seconds,
                    created_at=created,
                    finished_at=created + timedelta(seconds=wait),
                    spend_usd=round(cost, 4),
                    charged_seconds=seconds if status == "delivered" else 0.0,
                )
            )
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
            at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            refusals.append(RefusalRow(user_id=rng.choice(members), at=at, reason="allowance"))
        day += timedelta(days=1)
    return jobs, refusals


def main(out: Path = OUT) -> None:
    jobs, refusals = sample_rows(random.Random(16))  # noqa: S311 (made-up data)
    report = build_report(
        guild_id=1,
        member_id=None,
        first_day=LAST_DAY - timedelta(days=DAYS - 1),
        last_day=LAST_DAY,
        jobs=jobs,
        refusals=refusals,
        budget_usd=150.0,
    )
    out.write_bytes(render_usage_png(report, "Video usage · Example Server · last 30 days"))
    print(f"wrote {out} ({out.stat().st_size:,} bytes): {report.summary()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
