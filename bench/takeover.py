"""Lease takeover time: how soon another process drives the jobs of one that stopped.

    python bench/takeover.py --kills 20                     # LEASE_SECONDS 20 (the default)
    python bench/takeover.py --kills 3 --lease-seconds 6    # a quick look
    python bench/takeover.py --kills 20 --signals SIGTERM   # one kind only

N bot processes (`python -m bot run`, default 2, shards i of N) on one PostgreSQL database
(`--database-url`, else TEST_DATABASE_URL, else a throwaway server from tests/pg_server.py),
the fake Discord and the fake ByteCompute server (jobs of 10-20 s, so leases are held while
the signals come), the harness of tests/faults/soak_processes.py. Each round gives the next
process new /video jobs on its own shard (the admitting process leases them), waits until
the provider accepted one, then signals it: first `--kills` rounds of SIGKILL, then as many
of SIGTERM; the process is restarted after each. Takeover time: from the signal to the
moment another live process holds every lease the signalled one had (`jobs.lease_owner`,
polled every 20 ms); a job that ended meanwhile counts as handed over. After a SIGKILL the
lease must run out first (at most LEASE_SECONDS after the last heartbeat, which comes every
third of it) and a beat of another process claims it; after a SIGTERM the leases are handed
back at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.soak_processes import Cluster  # noqa: E402
from tests.pg_server import PgServer  # noqa: E402


async def run(args: argparse.Namespace, dsn: str, workdir: Path) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"SIGKILL": [], "SIGTERM": []}
    leases: dict[str, list[int]] = {"SIGKILL": [], "SIGTERM": []}
    cluster = Cluster(
        workdir,
        dsn,
        processes=args.processes,
        lease_seconds=args.lease_seconds,
        requests_per_second=None,
        job_seconds=(10.0, 20.0),
        seed=args.seed,
    )
    started = time.monotonic()
    async with cluster:
        await cluster.start_all()
        kinds = [signal.Signals[name] for name in args.signals]
        rounds = [sig for sig in kinds for _ in range(args.kills)]
        for k, sig in enumerate(rounds):
            i = k % args.processes
            before = await cluster.last_job()
            for _ in range(args.jobs_per_round):
                inter = await cluster.command(len(cluster.interactions), shard=i)
                await inter.wait_for_callback(30)
            await cluster.victim([i], newer_than=before)  # a new job of its own accepted
            took, count = await cluster.fault(i, sig)
            times[sig.name].append(took)
            leases[sig.name].append(count)
            print(
                f"{sig.name} #{k + 1}: bot-{i}, {count} lease(s), takeover {took:.2f} s", flush=True
            )
            await cluster.start(i)
    wall = time.monotonic() - started
    print(
        f"\n{args.processes} processes, LEASE_SECONDS {args.lease_seconds:g}, wall {wall:.0f} s",
        "\n| signal | rounds | leases per round (mean) | takeover p50 (s) | max (s) | min (s) |",
        "\n|---|---|---|---|---|---|",
    )
    for name, values in times.items():
        if values:
            print(
                f"| {name} | {len(values)} | {statistics.mean(leases[name]):.1f} |"
                f" {statistics.median(values):.2f} | {max(values):.2f} | {min(values):.2f} |"
            )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="rounds of each signal")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--lease-seconds", type=float, default=20.0)
    parser.add_argument("--jobs-per-round", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--signals", nargs="+", choices=["SIGKILL", "SIGTERM"], default=["SIGKILL", "SIGTERM"]
    )
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    server = None
    dsn = args.database_url
    if not dsn:
        server = PgServer()
        dsn = server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(args, dsn, Path(tmp)))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
