"""Benchmark: the 1,000-job tracker run with several processes on one PostgreSQL database,
sharing one provider budget.

    .venv/bin/python bench/tracker_processes.py                      # 3 processes, 1,000 jobs
    .venv/bin/python bench/tracker_processes.py --processes 1 --jobs 300
    .venv/bin/python bench/tracker_processes.py --database-url postgresql://u:p@host/db

The workload is bench/tracker.py's 1,000-job mix (same fake ByteCompute server in its own
process, uniform 20-90 s jobs, 7 durations x 2 sizes, time scale 0.5, 20 calls/s for every
call): but the jobs are admitted by `--processes` bot processes (each a real `JobTracker`
with its own INSTANCE_NAME and connection pool, admitting its third of the jobs under its
lease, as the bot does), and the 20 calls/s is the provider's limit for all of them
together (`bot.jobs.tracker.shares` splits it). Each process records its own calls; the
clocks are the machine's monotonic clock, so the peak rate is measured over the merged
calls of every process. Without `--database-url` a throwaway PostgreSQL server is started
(tests/pg_server.py), a fresh database is created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.tracker import (  # noqa: E402
    API_KEY,
    DURATIONS,
    Counting,
    FakeServer,
    TimingSink,
    max_rate,
    percentile,
    requests_for,
    scaled_settings,
    usage,
)
from tests.backends import create_database, drop_database  # noqa: E402

# ----- one bot process ------------------------------------------------------------------------


def worker(
    index: int, url: str, base_url: str, args: argparse.Namespace, go: Event, out: Connection
) -> None:
    out.send(asyncio.run(_worker(index, url, base_url, args, go)))


async def _worker(
    index: int, url: str, base_url: str, args: argparse.Namespace, go: Event
) -> dict[str, Any]:
    import httpx

    from bot.db import Database, utcnow
    from bot.jobs.tracker import JobTracker
    from bot.providers.bytecompute import ByteComputeProvider
    from bot.store import jobs as store

    mine = [i for i in range(args.jobs) if i % args.processes == index]

    cpu0, _ = usage()
    s = args.time_scale
    with tempfile.TemporaryDirectory(prefix=f"bench-proc{index}-") as tmp:
        db = await Database.open(url, pool_size=8)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            provider = Counting(ByteComputeProvider(client, api_key=API_KEY, base_url=base_url))
            sink = TimingSink(len(mine))
            settings = scaled_settings(s, args.budget, args.jobs, args.idle_share).model_copy(
                update={
                    "instance_name": f"bench-{index}",
                    "lease_seconds": 20.0 * s,
                    "share_settle_seconds": 1.0 * s,
                }
            )
            tracker = JobTracker(
                db, {"bytecompute": provider}, data_dir=Path(tmp), sink=sink, settings=settings
            )
            await tracker.start()
            requests = requests_for(provider, args.jobs, args.seed, args.durations)
            await asyncio.get_running_loop().run_in_executor(None, go.wait)
            started = time.monotonic()
            ids = []
            async with db.transaction() as conn:
                for i in mine:
                    job_id = await store.insert_job(
                        conn,
                        guild_id=1,
                        channel_id=1,
                        user_id=i,
                        request=requests[i],
                        input_dir=None,
                        now=utcnow(),
                    )
                    await tracker.leases.take(conn, job_id)
                    ids.append(job_id)
            for job_id in ids:
                await tracker.enqueue(job_id)
            await asyncio.wait_for(sink.all_done.wait(), timeout=3600 * s)
            makespan = time.monotonic() - started
            shares_seen = tracker.leases.shares.settles
            await tracker.stop()
            rows = await db.fetchall("SELECT id, provider_job_id FROM jobs")
            pjob_of = {r["id"]: r["provider_job_id"] for r in rows}
        await db.close()
    cpu1, rss = usage()
    return {
        "index": index,
        "calls": provider.calls,
        "known_at": provider.known_at,
        "delivered": len(sink.done),
        "failed": list(sink.failed.values()),
        "makespan": makespan,
        "cpu": cpu1 - cpu0,
        "rss": rss,
        "pjobs": [pjob_of[i] for i in ids],
        "settles": shares_seen,
    }


# ----- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace, admin_dsn: str) -> dict[str, Any]:
    url = asyncio.run(create_database(admin_dsn, f"bench_{uuid.uuid4().hex[:10]}"))
    server = FakeServer(args.seed, args.min_job, args.max_job, args.time_scale)
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    pipes, procs = [], []
    try:
        for index in range(args.processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker, args=(index, url, server.base_url, args, go, child), daemon=True
            )
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        time.sleep(3.0)  # every tracker started (and holds its first share)
        go.set()
        results = [p.recv() for p in pipes]
        for proc in procs:
            proc.join(30)
    finally:
        finish = server.finish_times()
        asyncio.run(drop_database(admin_dsn, url))
    s = args.time_scale
    times = sorted(t for r in results for _, t in r["calls"])
    known = {p: t for r in results for p, t in r["known_at"].items()}
    pjobs = [p for r in results for p in r["pjobs"]]
    delays = [(known[p] - finish[p]) / s for p in pjobs if p in known]
    calls = [c for r in results for c, _ in r["calls"]]
    return {
        "processes": args.processes,
        "jobs": args.jobs,
        "delivered": sum(r["delivered"] for r in results),
        "failed": sum(len(r["failed"]) for r in results),
        "failures": [f for r in results for f in r["failed"]][:5],
        "per_job": len(calls) / args.jobs,
        "by_kind": {k: calls.count(k) for k in ("submit", "status", "download")},
        "peak_rate": max_rate(times, 1.0 * s) * s,
        "mean_rate": len(times) / (times[-1] - times[0]) * s if len(times) > 1 else 0.0,
        "detect_p50": percentile(delays, 50),
        "detect_p99": percentile(delays, 99),
        "detect_max": max(delays) if delays else float("nan"),
        "makespan": max(r["makespan"] for r in results) / s,
        "per_process": [
            {
                "index": r["index"],
                "jobs": len(r["pjobs"]),
                "requests": len(r["calls"]),
                "cpu": r["cpu"],
                "rss": r["rss"],
            }
            for r in sorted(results, key=lambda r: r["index"])
        ],
    }


def report(r: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    lines = [
        f"`{command}` — {r['processes']} process(es) on one PostgreSQL database, one budget of "
        f"{args.budget:g} calls/s for all of them, {r['jobs']:,} jobs of {args.min_job:g}-"
        f"{args.max_job:g} s, time scale {args.time_scale:g} (figures in unscaled seconds)",
        "",
        "| metric | value | target |",
        "|---|---|---|",
        f"| jobs delivered / failed | {r['delivered']} / {r['failed']} | all / 0 |",
        f"| provider requests per job | {r['per_job']:.2f} | ≤ 4 |",
        "| of which submit / status / download | "
        + " / ".join(str(r["by_kind"][k]) for k in ("submit", "status", "download"))
        + " | |",
        f"| peak request rate, any 1 s, all processes (req/s) | {r['peak_rate']:.1f} "
        f"| ≤ {args.budget:g} + 1 per process (each bucket holds one call) |",
        f"| mean request rate (req/s) | {r['mean_rate']:.1f} | |",
        f"| detection delay p50 / p99 / max (s) | {r['detect_p50']:.2f} / "
        f"{r['detect_p99']:.2f} / {r['detect_max']:.2f} | ≤ 1 / ≤ 5 |",
        f"| all done after (s) | {r['makespan']:.0f} | |",
    ]
    for p in r["per_process"]:
        lines.append(
            f"| process {p['index']}: jobs, requests, CPU (s), peak RSS (MB) | {p['jobs']}, "
            f"{p['requests']}, {p['cpu']:.1f}, {p['rss']:.0f} | |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=20.0, help="calls/s, all processes")
    parser.add_argument("--time-scale", type=float, default=0.5)
    parser.add_argument("--min-job", type=float, default=20.0)
    parser.add_argument("--max-job", type=float, default=90.0)
    parser.add_argument("--idle-share", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None, help="a superuser DSN (CREATE DATABASE)")
    args = parser.parse_args()
    args.durations = DURATIONS
    command = "python bench/tracker_processes.py " + " ".join(sys.argv[1:])
    if args.database_url:
        result = run(args, args.database_url)
    else:
        from tests.pg_server import PgServer

        with tempfile.TemporaryDirectory(prefix="bench-pg-") as state:
            server = PgServer(Path(state))
            dsn = server.start()
            try:
                result = run(args, dsn)
            finally:
                server.stop()
    print(report(result, args, command.strip()))
    if result["failures"]:
        print("failures:", result["failures"], file=sys.stderr)


if __name__ == "__main__":
    main()
