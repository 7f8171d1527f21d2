"""How long `/videoadmin usage show` takes for a busy server, and a poster frame per clip.

    python bench/usage_report.py [--jobs 20000] [--days 90]

Fills a fresh database (migrated like the bot's) with `--jobs` jobs of one guild spread
over `--days` days, each with its reserve and settle/refund ledger entries (written with
plain INSERTs for speed: the rows have the shape `bot.quota` writes), then times the report
query + aggregation and the chart for 30, 90 and 366 days, and `poster_jpeg` on a 4 s
1280×720 simulator clip. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.db import Database, to_db_time
from bot.media import poster_jpeg, render_clip
from bot.reports import render_usage_png, usage_report

GUILD = 1


async def fill(db: Database, jobs: int, days: int, now: datetime) -> None:
    rng = random.Random(7)
    job_rows, ledger_rows = [], []
    for job_id in range(1, jobs + 1):
        at = now - timedelta(seconds=rng.uniform(0, days * 86400))
        status = rng.choices(["delivered", "failed", "cancelled"], [90, 6, 4])[0]
        seconds = float(rng.choice((4, 6, 8, 10)))
        cost = seconds * 0.06
        t = to_db_time(at)
        done = to_db_time(at + timedelta(seconds=rng.uniform(40, 300)))
        job_rows.append(
            (job_id, GUILD, 2, rng.randrange(1000, 1500), rng.choice(("bytecompute", "leonardo")),
             "text-to-video", "p", "{}", status, seconds, cost, t, done, t)
        )  # fmt: skip
        ledger_rows.append((GUILD, job_rows[-1][3], job_id, "reserve", seconds, cost, t))
        kind = "settle" if status == "delivered" else "refund"
        delta = (0.0, 0.0) if kind == "settle" else (-seconds, -cost)
        ledger_rows.append((GUILD, job_rows[-1][3], job_id, kind, delta[0], delta[1], t))
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO jobs (id, guild_id, channel_id, user_id, provider, mode, prompt,"
            " params_json, status, seconds, cost_usd, created_at, finished_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            job_rows,
        )
        await conn.executemany(
            "INSERT INTO quota_ledger (guild_id, user_id, job_id, kind, seconds, cost_usd, at)"
            " VALUES (?,?,?,?,?,?,?)",
            ledger_rows,
        )


def timed(fn, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(Path(tmp) / "bench.db")
        await db.migrate()
        await fill(db, args.jobs, args.days, now)
        render_usage_png(await usage_report(db, GUILD, days=7, now=now), "warm-up")
        print(f"{args.jobs:,} jobs over {args.days} days, one guild\n")
        print("| days | report queries + assembly (ms) | chart (ms) | PNG bytes |")
        print("|---|---|---|---|")
        for days in (30, 90, 366):
            samples = []
            for _ in range(5):
                start = time.perf_counter()
                report = await usage_report(db, GUILD, days=days, now=now)
                samples.append(time.perf_counter() - start)
            png = render_usage_png(report, "bench")
            chart = timed(lambda r=report: render_usage_png(r, "bench"))
            print(
                f"| {days} | {statistics.median(samples) * 1000:.0f} | {chart * 1000:.0f} "
                f"| {len(png):,} |"
            )
        await db.close()
        clip = Path(tmp) / "clip.mp4"
        render_clip(
            clip, prompt="bench", width=1280, height=720, fps=25, duration=4, audio=True, seed=1
        )
        frame = timed(lambda: poster_jpeg(clip))
        print(f"\nposter_jpeg, 4 s 1280×720 clip: {frame * 1000:.0f} ms, "
              f"{len(poster_jpeg(clip)):,} bytes")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
