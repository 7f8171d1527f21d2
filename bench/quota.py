"""Benchmark: quota reservations per second on SQLite (file DB in a temp dir, WAL).

Each reservation is what /video does minus the provider: one `BEGIN IMMEDIATE`
transaction that checks every rule (override, roles, window usage, concurrency cap,
cooldown, guild budget) and appends the 'reserve' entry. Job rows are inserted beforehand
so the number measures the quota code. Reservations come from `--tasks` concurrent asyncio
tasks on one Database, spread over `--members` members who already have `--history`
finished jobs each (half of them inside the current window).

    .venv/bin/python -m bench.quota            # defaults: 5,000 reservations
    .venv/bin/python -m bench.quota --n 20000 --members 500 --history 40 --budget 1e6
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot import quota
from bot.db import Database, to_db_time
from bot.store import guilds as guild_store

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


async def run(args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(Path(tmp) / "bench.db")
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
            job_ids = await insert_jobs(db, args.n, args.members, T0)
            queue = list(enumerate(job_ids))
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

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(args.tasks)))
            elapsed = time.perf_counter() - start
            rate = args.n / elapsed
            print(
                f"{args.n} reservations ({refused} refused) by {args.tasks} tasks, "
                f"{args.members} members with {args.history} past jobs each: "
                f"{elapsed:.2f} s = {rate:,.0f} reservations/s"
            )
            return rate
        finally:
            await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="reservations to time")
    parser.add_argument("--tasks", type=int, default=16, help="concurrent asyncio tasks")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--history", type=int, default=20, help="past jobs per member")
    parser.add_argument("--budget", type=float, default=1e6, help="monthly USD budget (0: none)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
