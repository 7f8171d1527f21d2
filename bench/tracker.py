"""Benchmark: the job tracker vs a naive poller over real HTTP, in four workloads.

    .venv/bin/python bench/tracker.py                          # every mix, one table, ~12 min
    .venv/bin/python bench/tracker.py --mix few --mix faster   # some mixes
    .venv/bin/python bench/tracker.py --mix thousand --jobs 300 --idle-share 0

Mixes (`MIXES`): 10 jobs of 1-3 s on a fresh DB; 10 jobs 5x faster and 10 jobs 5x slower
than the tracker's prior (60 s for a 5 s clip); the 1,000-job load run described below.
Each prints detection delay (provider finish -> status call that sees it), requests per job
and peak rate, with the naive 5 s poller beside it; the 1,000-job mix adds its detail table.

Setup (each side in its own process, so CPU and peak RSS are its own):
- the ByteCompute fake server (tests/fakes/bytecompute_server.py) runs in a separate
  process on 127.0.0.1; every job takes uniform random 20-90 s (same seed for both sides);
  it reports `queued` for the first 20 % of that time, then `running` with a progress %;
- the bot side uses the real `ByteComputeProvider` over httpx;
- **tracker**: the real `JobTracker` with a SQLite database, 1,000 jobs admitted at once
  (1,000 members, 7 durations x 2 sizes: 14 job classes, no history), a request budget of
  20 calls/s for *every* call (submit, status, download);
- **naive**: what common bots do: submit everything at once, then one task per job that
  polls every 5 s, then downloads; no budget.

Time scaling (`--time-scale S`, default 0.5): job times, the naive interval and every
time setting of the tracker are multiplied by S and the budget by 1/S, so the run is the
unscaled experiment played S times faster (the ratio of requests to job time is kept).
Durations and rates in the table are converted back to unscaled seconds; the request
budget is a *ratio* of requests to job time, so scaling job times alone while keeping 20
calls/s of wall time would change the experiment (submitting 1,000 jobs alone takes 50 s
of budget). CPU seconds and RSS are measured, not scaled.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

API_KEY = "bench-key"
DURATIONS = (4, 5, 6, 7, 8, 9, 10)
RESOLUTIONS = ("1280x720", "1920x1080")


# ----- the fake provider, in its own process -------------------------------------------------


def serve(conn: Connection, seed: int, low: float, high: float, scale: float) -> None:
    asyncio.run(_serve(conn, seed, low, high, scale))


async def _serve(conn: Connection, seed: int, low: float, high: float, scale: float) -> None:
    from tests.fakes.bytecompute_server import FakeByteCompute

    rng = random.Random(seed)
    fake = FakeByteCompute(
        api_key=API_KEY, job_seconds=lambda: rng.uniform(low, high) * scale, record=False
    )
    conn.send(await fake.start())
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # "report"
    conn.send({job.id: job.finish_at for job in fake.jobs.values()})
    await fake.stop()


class FakeServer:
    def __init__(self, seed: int, low: float, high: float, scale: float) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve, args=(child, seed, low, high, scale), daemon=True)
        self.proc.start()
        self.base_url: str = self.conn.recv()

    def finish_times(self) -> dict[str, float]:
        self.conn.send("report")
        times: dict[str, float] = self.conn.recv()
        self.proc.join(10)
        return times


# ----- measuring ----------------------------------------------------------------------------


class Counting:
    """Wraps a provider: records every call and when a job was first seen completed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.limits = inner.limits
        self.calls: list[tuple[str, float]] = []
        self.known_at: dict[str, float] = {}
        self.inflight_jobs = 0
        self.peak_inflight_jobs = 0

    def negotiate(self, request: Any) -> Any:
        return self.inner.negotiate(request)

    async def submit(self, request: Any) -> Any:
        self.calls.append(("submit", time.monotonic()))
        job = await self.inner.submit(request)
        self.inflight_jobs += 1
        self.peak_inflight_jobs = max(self.peak_inflight_jobs, self.inflight_jobs)
        return job

    async def status(self, job: Any) -> Any:
        from bot.providers.base import JobState

        self.calls.append(("status", time.monotonic()))
        status = await self.inner.status(job)
        if status.state is JobState.COMPLETED and job.job_id not in self.known_at:
            self.known_at[job.job_id] = time.monotonic()
            self.inflight_jobs -= 1
        return status

    async def download(self, job: Any, dest: Path) -> None:
        self.calls.append(("download", time.monotonic()))
        await self.inner.download(job, dest)

    async def check(self) -> Any:
        return await self.inner.check()

    async def cancel(self, job: Any) -> bool:
        return await self.inner.cancel(job)

    async def aclose(self) -> None:
        await self.inner.aclose()


def max_rate(times: list[float], window: float) -> float:
    """Most calls in any half-open window [t, t + window), per second of that window."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best / window


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def requests_for(
    provider: Any, n: int, seed: int, durations: tuple[int, ...] = DURATIONS
) -> list[Any]:
    from bot.providers.base import VideoRequest

    rng = random.Random(seed + 1)
    return [
        provider.negotiate(
            VideoRequest(
                prompt=f"bench clip {i}",
                provider=provider.name,
                duration=rng.choice(durations),
                resolution=rng.choice(RESOLUTIONS),
            )
        )
        for i in range(n)
    ]


def usage() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024  # CPU s, peak RSS MB (Linux: KiB)


# ----- the two sides ------------------------------------------------------------------------


def scaled_settings(scale: float, budget: float, jobs: int, idle_share: float | None) -> Any:
    from bot.jobs.tracker import TrackerSettings

    base = TrackerSettings()
    times = {
        name: getattr(base, name) * scale
        for name in (
            "burst_seconds",
            "shutdown_grace_seconds",
            "sweep_interval_seconds",
            "min_poll_interval_seconds",
            "max_poll_interval_seconds",
            "max_eta_wait_seconds",
            "prior_base_seconds",
            "prior_seconds_per_video_second",
            "eta_margin_seconds",
            "idle_poll_gap_seconds",
            "error_backoff_base_seconds",
            "error_backoff_max_seconds",
            "provider_pause_max_seconds",
        )
    }
    return TrackerSettings(
        requests_per_second={"bytecompute": budget / scale},
        max_concurrency={"bytecompute": jobs},  # the fake has no GPU limit
        idle_poll_share=base.idle_poll_share if idle_share is None else idle_share,
        **times,
    )


class TimingSink:
    """The tracker's delivery side for the benchmarks: when each job ended; `all_done` is set
    once `expected` jobs have."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.done: dict[int, float] = {}
        self.failed: dict[int, str] = {}
        self.all_done = asyncio.Event()

    def _finish(self) -> None:
        if len(self.done) + len(self.failed) >= self.expected:
            self.all_done.set()

    async def job_queued(self, job: Any, position: int) -> None:
        return None

    async def job_started(self, job: Any) -> None:
        return None

    async def job_progress(self, job: Any, progress: Any, eta: Any) -> None:
        return None

    async def job_completed(self, job: Any, clip: Path, *, maybe_posted: bool) -> Any:
        from bot.jobs.tracker import DeliveryReceipt

        self.done[job.id] = time.monotonic()
        self._finish()
        return DeliveryReceipt(channel_id=1, message_id=job.id)

    async def job_ended(self, job: Any, outcome: str, reason: str) -> None:
        self.failed[job.id] = f"{outcome}: {reason}"
        self._finish()


async def run_tracker(base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from bot.db import Database, utcnow
    from bot.jobs.tracker import JobTracker
    from bot.providers.bytecompute import ByteComputeProvider
    from bot.store import jobs as store

    cpu0, _ = usage()
    with tempfile.TemporaryDirectory(prefix="bench-tracker-") as tmp:
        db = await Database.open(Path(tmp) / "bot.db")
        await db.migrate()
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            provider = Counting(ByteComputeProvider(client, api_key=API_KEY, base_url=base_url))
            sink = TimingSink(args.jobs)
            settings = scaled_settings(args.time_scale, args.budget, args.jobs, args.idle_share)
            tracker = JobTracker(
                db, {"bytecompute": provider}, data_dir=Path(tmp), sink=sink, settings=settings
            )
            await tracker.start()
            requests = requests_for(provider, args.jobs, args.seed, args.durations)
            started = time.monotonic()
            ids = []
            async with db.transaction() as conn:
                for i, request in enumerate(requests):
                    ids.append(
                        await store.insert_job(
                            conn,
                            guild_id=1,
                            channel_id=1,
                            user_id=i,
                            request=request,
                            input_dir=None,
                            now=utcnow(),
                        )
                    )
            for job_id in ids:
                await tracker.enqueue(job_id)
            await asyncio.wait_for(sink.all_done.wait(), timeout=3600 * args.time_scale)
            makespan = time.monotonic() - started
            early = tracker._states["bytecompute"].early_polls
            await tracker.stop()
            rows = await db.fetchall(
                "SELECT id, provider_job_id, submitted_at, created_at FROM jobs"
            )
            submit_wait = [
                (
                    store.from_db_time(r["submitted_at"]) - store.from_db_time(r["created_at"])
                ).total_seconds()
                for r in rows
                if r["submitted_at"]
            ]
            pjob_of = {r["id"]: r["provider_job_id"] for r in rows}
        await db.close()
    cpu1, rss = usage()
    return {
        "calls": provider.calls,
        "known_at": provider.known_at,
        "delivered": len(sink.done),
        "failed": sink.failed,
        "makespan": makespan,
        "cpu": cpu1 - cpu0,
        "rss": rss,
        "submit_wait": submit_wait,
        "end_to_end": [sink.done[i] - started for i in ids if i in sink.done],
        "peak_inflight": provider.peak_inflight_jobs,
        "pjobs": [pjob_of[i] for i in ids],
        "early": early,
    }


async def run_naive(base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from bot.providers.base import JobState
    from bot.providers.bytecompute import ByteComputeProvider

    cpu0, _ = usage()
    interval = args.naive_interval * args.time_scale
    delivered: dict[int, float] = {}
    failed: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-naive-") as tmp:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            provider = Counting(ByteComputeProvider(client, api_key=API_KEY, base_url=base_url))
            requests = requests_for(provider, args.jobs, args.seed, args.durations)
            started = time.monotonic()
            pjobs: list[str] = [""] * len(requests)

            async def one(i: int, request: Any) -> None:
                try:
                    job = await provider.submit(request)
                    pjobs[i] = job.job_id
                    while True:
                        await asyncio.sleep(interval)
                        status = await provider.status(job)
                        if status.state is JobState.COMPLETED:
                            break
                        if status.state not in (JobState.QUEUED, JobState.RUNNING):
                            failed[i] = str(status.state)
                            return
                    await provider.download(job, Path(tmp) / f"{i}.mp4")
                    (Path(tmp) / f"{i}.mp4").unlink()
                    delivered[i] = time.monotonic()
                except Exception as exc:
                    failed[i] = repr(exc)

            await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
            makespan = time.monotonic() - started
    cpu1, rss = usage()
    return {
        "calls": provider.calls,
        "known_at": provider.known_at,
        "delivered": len(delivered),
        "failed": failed,
        "makespan": makespan,
        "cpu": cpu1 - cpu0,
        "rss": rss,
        "submit_wait": [],
        "end_to_end": [t - started for t in delivered.values()],
        "peak_inflight": provider.peak_inflight_jobs,
        "pjobs": pjobs,
    }


def side(kind: str, conn: Connection, args: argparse.Namespace) -> None:
    """One side of the benchmark, in its own process (with its own fake server)."""
    server = FakeServer(args.seed, args.min_job, args.max_job, args.time_scale)
    runner: Callable[..., Any] = run_tracker if kind == "tracker" else run_naive
    result = asyncio.run(runner(server.base_url, args))
    finish = server.finish_times()
    s = args.time_scale
    delays = [
        (result["known_at"][p] - finish[p]) / s for p in result["pjobs"] if p in result["known_at"]
    ]
    calls = result.pop("calls")
    times = [t for _, t in calls]
    conn.send(
        {
            "kind": kind,
            "jobs": args.jobs,
            "delivered": result["delivered"],
            "failed": len(result["failed"]),
            "failures": list(result["failed"].values())[:5],
            "detect_p50": percentile(delays, 50),
            "detect_p99": percentile(delays, 99),
            "detect_max": max(delays) if delays else float("nan"),
            "requests": len(calls),
            "per_job": len(calls) / args.jobs,
            "by_kind": {
                k: sum(1 for c, _ in calls if c == k) for k in ("submit", "status", "download")
            },
            "peak_rate": max_rate(times, 1.0 * s) * s,
            "mean_rate": len(times) / (max(times) - min(times)) * s if len(times) > 1 else 0,
            "makespan": result["makespan"] / s,
            "cpu": result["cpu"],
            "rss": result["rss"],
            "submit_wait_p50": percentile(result["submit_wait"], 50) / s,
            "submit_wait_p99": percentile(result["submit_wait"], 99) / s,
            "e2e_p50": percentile(result["end_to_end"], 50) / s,
            "e2e_p99": percentile(result["end_to_end"], 99) / s,
            "peak_inflight": result["peak_inflight"],
            "early": result.get("early", 0),
        }
    )


def run_side(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=side, args=(kind, child, args))
    proc.start()
    result: dict[str, Any] = parent.recv()
    proc.join()
    return result


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    by = {r["kind"]: r for r in results}
    t, n = by.get("tracker", {}), by.get("naive", {})

    def f(r: dict[str, Any], key: str, fmt: str) -> str:
        return format(r[key], fmt) if key in r else "—"

    rows = [
        (
            "jobs delivered / failed",
            lambda r: f"{r['delivered']} / {r['failed']}" if r else "—",
            "all / 0",
        ),
        ("detection delay p50 (s)", lambda r: f(r, "detect_p50", ".2f"), "≤ 1"),
        ("detection delay p99 (s)", lambda r: f(r, "detect_p99", ".2f"), "≤ 5"),
        ("detection delay max (s)", lambda r: f(r, "detect_max", ".2f"), ""),
        ("provider requests per job", lambda r: f(r, "per_job", ".2f"), "≤ 4"),
        (
            "  of which submit / status / download",
            lambda r: (
                " / ".join(str(r["by_kind"][k]) for k in ("submit", "status", "download"))
                if r
                else "—"
            ),
            "",
        ),
        ("  status calls that were early polls", lambda r: f(r, "early", "d"), ""),
        (
            "peak request rate, any 1 s (req/s)",
            lambda r: f(r, "peak_rate", ".1f"),
            f"≤ {args.budget:g}",
        ),
        ("mean request rate (req/s)", lambda r: f(r, "mean_rate", ".1f"), ""),
        ("peak jobs running at the provider", lambda r: f(r, "peak_inflight", "d"), ""),
        (
            "wait before submission p50 / p99 (s)",
            lambda r: (
                f"{r['submit_wait_p50']:.1f} / {r['submit_wait_p99']:.1f}"
                if r and r["submit_wait_p50"] == r["submit_wait_p50"]
                else "0 (no budget)"
            ),
            "",
        ),
        (
            "admission → delivered p50 / p99 (s)",
            lambda r: f"{r['e2e_p50']:.1f} / {r['e2e_p99']:.1f}" if r else "—",
            "",
        ),
        (f"all {args.jobs:,} done after (s)", lambda r: f(r, "makespan", ".0f"), ""),
        ("CPU time of the bot process (s)", lambda r: f(r, "cpu", ".1f"), ""),
        ("peak RSS of the bot process (MB)", lambda r: f(r, "rss", ".0f"), "≤ 150"),
    ]
    lines = [
        "| metric | tracker | naive (poll every 5 s) | target |",
        "|---|---|---|---|",
    ]
    for label, get, target in rows:
        lines.append(f"| {label} | {get(t)} | {get(n)} | {target} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Mix:
    """One workload: `jobs` admitted at once, each taking uniform `low`-`high` s."""

    name: str
    title: str
    jobs: int
    low: float
    high: float
    durations: tuple[int, ...]
    time_scale: float
    p50: float  # targets (s)
    p99: float
    per_job: float | None = None


# The tracker's prior is 30 s + 6 s per video second: 60 s for the 5 s clips below.
MIXES = {
    "few": Mix("few", "10 jobs of 1-3 s, fresh DB", 10, 1.0, 3.0, DURATIONS, 1.0, 1, 2),
    "faster": Mix(
        "faster", "10 jobs 5x faster than the prior (10-14 s)", 10, 10, 14, (5,), 1.0, 1, 3
    ),
    "slower": Mix(
        "slower", "10 jobs 5x slower than the prior (250-350 s)", 10, 250, 350, (5,), 0.1, 1, 3
    ),
    "thousand": Mix(
        "thousand", "1,000 jobs of 20-90 s (the load run)", 1000, 20, 90, DURATIONS, 0.5, 1, 5, 4
    ),
}


def run_mix(mix: Mix, args: argparse.Namespace) -> list[dict[str, Any]]:
    margs = argparse.Namespace(**vars(args))
    margs.jobs = args.jobs if args.jobs is not None and mix.name == "thousand" else mix.jobs
    margs.min_job, margs.max_job, margs.durations = mix.low, mix.high, mix.durations
    margs.time_scale = args.time_scale if args.time_scale is not None else mix.time_scale
    results = []
    for kind in ("tracker", "naive"):
        if args.only and kind != args.only:
            continue
        began = time.monotonic()
        result = run_side(kind, margs)
        result["mix"] = mix
        result["args"] = margs
        print(f"{mix.name} {kind}: done in {time.monotonic() - began:.0f} s wall", file=sys.stderr)
        if result["failures"]:
            print(f"  failures: {result['failures']}", file=sys.stderr)
        results.append(result)
    return results


def summary(results: list[dict[str, Any]], budget: float) -> str:
    lines = [
        "| mix | side | delivered / failed | detection p50 / p99 / max (s) | requests per job "
        "| peak req/s (any 1 s) | target p50 / p99, req/job |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mix: Mix = r["mix"]
        side_name = "tracker" if r["kind"] == "tracker" else "naive 5 s"
        target = f"≤ {mix.p50:g} / ≤ {mix.p99:g}"
        if mix.per_job is not None:
            target += f", ≤ {mix.per_job:g}"
        lines.append(
            f"| {mix.title} ({r['jobs']:,}) | {side_name} | {r['delivered']} / {r['failed']} "
            f"| {r['detect_p50']:.2f} / {r['detect_p99']:.2f} / {r['detect_max']:.2f} "
            f"| {r['per_job']:.2f} | {r['peak_rate']:.1f} (budget {budget:g}) | {target} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mix",
        choices=(*MIXES, "all"),
        action="append",
        dest="mixes",
        help="repeatable; default all",
    )
    parser.add_argument("--jobs", type=int, default=None, help="jobs of the 1,000-job mix")
    parser.add_argument(
        "--time-scale", type=float, default=None, help="every mix (default: per mix)"
    )
    parser.add_argument("--budget", type=float, default=20.0, help="calls/s (unscaled)")
    parser.add_argument("--naive-interval", type=float, default=5.0)
    parser.add_argument(
        "--idle-share", type=float, default=None, help="tracker idle_poll_share (0: plan only)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=("tracker", "naive"))
    args = parser.parse_args()
    chosen = [m for m in args.mixes or () if m != "all"] or list(MIXES)
    results: list[dict[str, Any]] = []
    for name in chosen:
        results.extend(run_mix(MIXES[name], args))
    command = "python bench/tracker.py " + " ".join(sys.argv[1:])
    print(
        f"`{command.strip()}` — budget {args.budget:g} calls/s; each mix: jobs admitted at "
        "once; figures converted back to unscaled seconds\n"
    )
    print(summary(results, args.budget))
    thousand = [r for r in results if r["mix"].name == "thousand"]
    if thousand:
        margs = thousand[0]["args"]
        print(
            f"\n1,000-job mix in detail ({margs.jobs} jobs of uniform {margs.min_job:g}-"
            f"{margs.max_job:g} s, time scale {margs.time_scale:g}):\n"
        )
        print(table(thousand, margs))


if __name__ == "__main__":
    main()
