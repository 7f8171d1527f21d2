"""Benchmark: quota reservations per second, on SQLite or PostgreSQL, from one or more processes.

Each reservation is what /video does minus the provider: one write transaction (SQLite:
`BEGIN IMMEDIATE`; PostgreSQL: READ COMMITTED plus the member's and guild's advisory locks)
that checks every rule (override, roles, window usage, concurrency cap, cooldown, guild
budget) and appends the 'reserve' entry. Job rows are inserted beforehand so the number
measures the quota code. Reservations come from `--processes` OS processes (spawned, each
with its own Database: SQLite connection or asyncpg pool), each running `--tasks` concurrent
asyncio tasks; the `--n` reservations are split between the processes (round robin), spread
over `--members` members who already have `--history` finished jobs each (half of them inside
the current window). All processes start together (a barrier, after connecting); the overall
rate is `--n` over the wall time from the first start to the last finish.

`--database-url postgresql://user@host:port/db`: a server DSN whose user may create
databases; the run uses a scratch database `ltx_bench_<pid>` on that server and drops it
afterwards (nothing else is touched). Default: a SQLite file in a temp dir (WAL).

    .venv/bin/python -m bench.quota            # defaults: 5,000 reservations, SQLite
    .venv/bin/python -m bench.quota --n 20000 --members 500 --history 40 --budget 1e6
    .venv/bin/python -m bench.quota --database-url postgresql://postgres@127.0.0.1:5432/postgres \\
        --processes 3
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot import quota
from bot.db import Database, to_db_time
from bot.store import guilds as guild_store
from tests.backends import scratch_database

GUILD = 1
ROLES = (10, 11, 12)
T0 = datetime(2025, 6, 15, tzinfo=UTC)


async def insert_jobs(db: Database, count: int, members: int, now: datetime) -> list[int]:
    at = to_db_time(now)
    async with db.transaction() as conn:
        first = await conn.fetchval("SELECT COALESCE(MAX(id), 0) FROM jobs")
        await conn.executemany(
            "INSERT INTO jobs (guild_id, user_id, provider, mode, prompt, params_json,"
            " created_at, updated_at) VALUES (?, ?, 'simulator', 'text-to-video', 'p', '{}', ?, ?)",
            [(GUILD, 1000 + i % members, at, at) for i in range(count)],
        )
    return list(range(first + 1, first + count + 1))


async def seed_history(db: Database, members: int, per_member: int) -> None:
    """Finished jobs: half older than the window, half inside it."""
    if per_member == 0:
        return
    ids = await insert_jobs(db, members * per_member, members, T0)
    async with db.transaction() as conn:
        for n, job_id in enumerate(ids):
            user = 1000 + n % members
            age = timedelta(hours=30) if (n // members) % 2 else timedelta(minutes=5 + n % 600)
            at = T0 - age
            await quota.reserve(
                conn,
                guild_id=GUILD,
                user_id=user,
                job_id=job_id,
                seconds=1,
                width=1280,
                height=720,
                cost_usd=0.02,
                role_ids=ROLES,
                now=at,
                default_seconds=10**6,
            )
            await quota.settle(conn, job_id, seconds=1, cost_usd=0.02, now=at)


async def prepare(url: str, args: argparse.Namespace) -> list[int]:
    """Migrate, set the guild up, seed the history; the job ids to reserve for, in order."""
    db = await Database.open(url)
    try:
        await db.migrate()
        await guild_store.update_guild_settings(
            db,
            GUILD,
            max_concurrent_jobs=1000,
            cooldown_seconds=0,
            monthly_budget_usd=args.budget or None,
        )
        await guild_store.set_role_allowance(db, GUILD, 11, 10**6, now=T0)
        await seed_history(db, args.members, args.history)
        return await insert_jobs(db, args.n, args.members, T0)
    finally:
        await db.close()


async def reserve_all(db: Database, queue: list[tuple[int, int]], args: argparse.Namespace) -> int:
    """Reserve for every (n, job id) of `queue` from `args.tasks` tasks; returns the refusals."""
    refused = 0

    async def worker() -> None:
        nonlocal refused
        while queue:
            n, job_id = queue.pop()
            async with db.transaction() as conn:
                try:
                    await quota.reserve(
                        conn,
                        guild_id=GUILD,
                        user_id=1000 + n % args.members,
                        job_id=job_id,
                        seconds=5,
                        width=1280,
                        height=720,
                        cost_usd=0.1,
                        role_ids=ROLES,
                        now=T0 + timedelta(microseconds=n),
                        default_seconds=60,
                    )
                except quota.QuotaExceeded:
                    refused += 1

    await asyncio.gather(*(worker() for _ in range(args.tasks)))
    return refused


async def timed(
    url: str, queue: list[tuple[int, int]], args: argparse.Namespace, barrier: Any = None
) -> tuple[float, float, int]:
    """One process's share: connect, wait for the others, reserve. (start, end, refused)."""
    db = await Database.open(url, pool_size=args.tasks)
    try:
        await db.fetchval("SELECT 1")  # connected before the clock starts
        if barrier is not None:
            await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
        start = time.monotonic()
        refused = await reserve_all(db, queue, args)
        return start, time.monotonic(), refused
    finally:
        await db.close()


def process_main(url: str, queue: list[tuple[int, int]], args: argparse.Namespace,
                 barrier: Any, results: Any) -> None:  # fmt: skip
    results.put((os.getpid(), len(queue), *asyncio.run(timed(url, queue, args, barrier))))


@asynccontextmanager
async def bench_database(args: argparse.Namespace) -> AsyncIterator[str]:
    """The URL to run on: a SQLite file in a temp dir, or a scratch PostgreSQL database."""
    if not args.database_url:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    async with scratch_database(
        args.database_url, f"ltx_bench_{os.getpid()}", migrate=False
    ) as url:
        yield url


def run_processes(
    url: str, queue: list[tuple[int, int]], args: argparse.Namespace
) -> list[tuple[int, int, float, float, int]]:
    """Each of `args.processes` spawned processes takes every N-th reservation."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(args.processes)
    results = ctx.Queue()
    shares = [queue[i :: args.processes] for i in range(args.processes)]
    procs = [
        ctx.Process(target=process_main, args=(url, share, args, barrier, results))
        for share in shares
    ]
    for proc in procs:
        proc.start()
    out = [results.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"a benchmark process failed (exit code {proc.exitcode})")
    return out


async def run(args: argparse.Namespace) -> float:
    async with bench_database(args) as url:
        job_ids = await prepare(url, args)
        queue = list(enumerate(job_ids))
        if args.processes == 1:  # in this process, as before
            start, end, refused = await timed(url, queue, args)
            per = [(os.getpid(), args.n, start, end, refused)]
        else:
            per = await asyncio.get_running_loop().run_in_executor(
                None, run_processes, url, queue, args
            )
    backend = "PostgreSQL" if args.database_url else "SQLite"
    elapsed = max(p[3] for p in per) - min(p[2] for p in per)
    rate = args.n / elapsed
    for pid, count, start, end, refused in sorted(per):
        print(
            f"  process {pid}: {count} reservations ({refused} refused) in {end - start:.2f} s"
            f" = {count / (end - start):,.0f} reservations/s"
        )
    print(
        f"{backend}, {args.processes} process(es) x {args.tasks} tasks: {args.n} reservations"
        f" ({sum(p[4] for p in per)} refused), {args.members} members with {args.history}"
        f" past jobs each: {elapsed:.2f} s = {rate:,.0f} reservations/s"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="reservations to time (in all)")
    parser.add_argument(
        "--tasks", type=int, default=16, help="concurrent asyncio tasks per process"
    )
    parser.add_argument("--processes", type=int, default=1, help="OS processes sharing the work")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--history", type=int, default=20, help="past jobs per member")
    parser.add_argument("--budget", type=float, default=1e6, help="monthly USD budget (0: none)")
    parser.add_argument(
        "--database-url", default="", help="postgresql://… server DSN (default: SQLite)"
    )
    args = parser.parse_args()
    if args.processes < 1 or args.tasks < 1:
        parser.error("--processes and --tasks must be at least 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
