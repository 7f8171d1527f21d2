"""Writes docs/usage-sample.png: the /videoadmin usage chart for 30 made-up days.

    python docs/make_sample_chart.py [OUT.png]

The jobs are invented (a fixed random seed, so the picture is the same on every run) and
written to a throwaway database migrated like the bot's: job rows, their reserve and
settle/refund ledger entries (the shape `bot.quota` writes), refusals in the audit log and
a monthly budget. The chart then comes from the bot's own report (`bot.reports.usage_report`)
and renderer (`bot.reports.render_usage_png`), exactly as `/videoadmin usage show` draws it.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.db import Database, to_db_time
from bot.reports import render_usage_png, usage_report
from bot.store import guilds as guild_store

OUT = Path(__file__).with_name("usage-sample.png")
NOW = datetime(2025, 6, 30, 18, 0, tzinfo=UTC)
DAYS = 30
GUILD = 1
PROVIDERS = (("bytecompute", 0.06), ("leonardo", 0.08), ("simulator", 0.0))
MEMBERS = [1000 + i for i in range(12)]
ACTIVITY = [12, 9, 7, 5, 4, 3, 3, 2, 2, 1, 1, 1]


def sample_rows(rng: random.Random) -> tuple[list[tuple], list[tuple], list[tuple]]:
    jobs: list[tuple] = []
    ledger: list[tuple] = []
    refusals: list[tuple] = []
    day = NOW.replace(day=1, hour=0)
    while day <= NOW:
        busy = 1.6 if day.weekday() >= 5 else 1.0
        for _ in range(int(rng.gauss(9, 3) * busy) + 2):
            provider, price = rng.choices(PROVIDERS, weights=[6, 3, 1])[0]
            created = day + timedelta(
                seconds=rng.randrange(min(86_400, int((NOW - day).total_seconds())))
            )
            seconds = float(rng.choice((4, 6, 8, 10)))
            roll = rng.random()
            status = "delivered" if roll < 0.9 else ("failed" if roll < 0.96 else "cancelled")
            user = rng.choices(MEMBERS, weights=ACTIVITY)[0]
            job_id = len(jobs) + 1
            done = created + timedelta(seconds=rng.uniform(40, 240))
            t = to_db_time(created)
            jobs.append(
                (job_id, GUILD, 2, user, provider, "text-to-video", "a sample prompt", "{}",
                 status, seconds, seconds * price, t, to_db_time(done), t)
            )  # fmt: skip
            quote = seconds * price
            ledger.append((GUILD, user, job_id, "reserve", seconds, quote, t))
            if status == "delivered":
                ledger.append((GUILD, user, job_id, "settle", 0.0, 0.0, t))
            else:
                ledger.append((GUILD, user, job_id, "refund", -seconds, -quote, t))
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
            at = to_db_time(day + timedelta(hours=12))
            refusals.append((GUILD, at, "refusal", rng.choice(MEMBERS), "refused", "{}"))
        day += timedelta(days=1)
    return jobs, ledger, refusals


async def build() -> tuple[bytes, str]:
    jobs, ledger, refusals = sample_rows(random.Random(16))  # noqa: S311 (made-up data)
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(Path(tmp) / "sample.db")
        try:
            await db.migrate()
            async with db.transaction() as conn:
                await conn.executemany(
                    "INSERT INTO jobs (id, guild_id, channel_id, user_id, provider, mode, prompt,"
                    " params_json, status, seconds, cost_usd, created_at, finished_at,"
                    " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    jobs,
                )
                await conn.executemany(
                    "INSERT INTO quota_ledger (guild_id, user_id, job_id, kind, seconds,"
                    " cost_usd, at) VALUES (?,?,?,?,?,?,?)",
                    ledger,
                )
                await conn.executemany(
                    "INSERT INTO audit_log (guild_id, at, kind, target_id, summary, data_json)"
                    " VALUES (?,?,?,?,?,?)",
                    refusals,
                )
                await guild_store.update_guild_settings(
                    conn, GUILD, monthly_budget_usd=150.0, now=NOW
                )
            report = await usage_report(db, GUILD, days=DAYS, now=NOW)
        finally:
            await db.close()
    png = render_usage_png(report, "Video usage · Example Server · last 30 day(s)")
    return png, report.summary()


def main(out: Path = OUT) -> None:
    png, summary = asyncio.run(build())
    out.write_bytes(png)
    print(f"wrote {out} ({out.stat().st_size:,} bytes): {summary}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
