"""One racing process for tests/integration/test_quota_processes.py (run with `python -m`).

    python -m tests.integration.quota_race DATABASE_URL SEED ATTEMPTS TASKS

Opens its own Database (its own asyncpg pool), prints `ready`, waits for a line on stdin (so
all processes start racing together), then makes ATTEMPTS reservations from TASKS asyncio
tasks, each what /video does: the job row and its reservation in one transaction. The
attempts are spread (seeded) over the scenario's targets in `TARGETS`. Prints one JSON line:
the accepted jobs, the refusals by (guild, member, reason) and any other exception, by type
and message (there must be none).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

from bot import quota
from bot.db import Database, to_db_time

T0 = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
BUDGET_GUILD, OPEN_GUILD = 501, 502  # with a monthly budget / without one
MEMBER = 7001  # the member every process races for, in both guilds
OTHERS = (7002, 7003, 7004, 7005)  # other members of the budget guild
SECONDS, COST = 5.0, 0.1
# (guild, member) per attempt: half for MEMBER in the budget guild, a quarter each for
# another member there and for MEMBER in the guild without a budget.
TARGETS = [(BUDGET_GUILD, MEMBER)] * 2 + [(BUDGET_GUILD, None), (OPEN_GUILD, MEMBER)]


async def attempt(db: Database, guild_id: int, user_id: int, n: int) -> int:
    now = T0 + timedelta(microseconds=n)
    async with db.transaction() as conn:
        job_id = int(
            await conn.fetchval(
                "INSERT INTO jobs (guild_id, user_id, provider, mode, prompt, params_json,"
                " created_at, updated_at) VALUES (?, ?, 'simulator', 'text-to-video', 'p',"
                " '{}', ?, ?) RETURNING id",
                (guild_id, user_id, to_db_time(now), to_db_time(now)),
            )
        )
        await quota.reserve(
            conn,
            guild_id=guild_id,
            user_id=user_id,
            job_id=job_id,
            seconds=SECONDS,
            width=1280,
            height=720,
            cost_usd=COST,
            role_ids=(),
            now=now,
            default_seconds=60,
        )
    return job_id


async def race(url: str, seed: int, attempts: int, tasks: int) -> dict[str, object]:
    rng = random.Random(seed)
    plan: list[tuple[int, int]] = []
    for _ in range(attempts):
        guild_id, user_id = rng.choice(TARGETS)
        plan.append((guild_id, user_id if user_id is not None else rng.choice(OTHERS)))
    db = await Database.open(url, pool_size=tasks)
    accepted: list[tuple[int, int, int]] = []
    refused: Counter[str] = Counter()
    errors: list[str] = []
    try:
        await db.fetchval("SELECT 1")  # the pool is connected before the start
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        async def worker() -> None:
            while plan:
                guild_id, user_id = plan.pop()
                try:
                    job_id = await attempt(db, guild_id, user_id, seed * attempts + len(plan))
                except quota.QuotaExceeded as exc:
                    refused[f"{guild_id}:{user_id}:{exc.reason}"] += 1
                except Exception as exc:  # reported to the test, which then fails
                    errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    accepted.append((guild_id, user_id, job_id))

        await asyncio.gather(*(worker() for _ in range(tasks)))
    finally:
        await db.close()
    return {"accepted": accepted, "refused": dict(refused), "errors": errors}


def main() -> None:
    url, seed, attempts, tasks = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps(asyncio.run(race(url, seed, attempts, tasks))), flush=True)


if __name__ == "__main__":
    main()
