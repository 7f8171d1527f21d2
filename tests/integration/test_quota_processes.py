"""Reservations stay atomic when several OS processes race on one PostgreSQL database.

Three `python -m tests.integration.quota_race` processes, each with its own Database (its own
asyncpg pool), reserve at once for the same member and against the same guild's monthly
budget (and for the same member in a guild without one, the shared-lock path). Afterwards:
never more reserved than the member's allowance or the guild's cap, and exactly that much
(the attempts far exceed both); every refusal is a QuotaExceeded whose reason matches the
final state; no other exception (serialization failure, deadlock) reached the caller; the
ledger, the spend table the trigger keeps and the job rows agree.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bot.db import Database
from bot.store import guilds as guild_store
from bot.store import quotas as ledger
from tests.integration import quota_race as race

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, ATTEMPTS, TASKS = 3, 90, 6
BUDGET = 2.0  # USD: room for exactly 20 reservations of COST in the budget guild
MAX_PER_MEMBER = 12  # 60 s allowance / 5 s


async def run_processes(url: str) -> list[dict[str, Any]]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.quota_race",
            url,
            str(seed),
            str(ATTEMPTS),
            str(TASKS),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for seed in range(1, PROCESSES + 1)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.strip() == b"ready", line
        for proc in procs:  # all connected: start the race
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(proc.communicate() for proc in procs)), 120
        )
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
    assert [proc.returncode for proc in procs] == [0] * PROCESSES
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]


async def test_three_processes_never_overspend_a_member_or_a_guild_budget(pg_url: str) -> None:
    db = await Database.open(pg_url, pool_size=2)
    try:
        for guild_id, budget in ((race.BUDGET_GUILD, BUDGET), (race.OPEN_GUILD, None)):
            await guild_store.update_guild_settings(
                db, guild_id, max_concurrent_jobs=1000, cooldown_seconds=0,
                monthly_budget_usd=budget,
            )  # fmt: skip
        results = await run_processes(pg_url)

        errors = [e for r in results for e in r["errors"]]
        assert errors == []
        accepted: Counter[tuple[int, int]] = Counter()
        job_ids: set[int] = set()
        for result in results:
            for guild_id, user_id, job_id in result["accepted"]:
                accepted[(guild_id, user_id)] += 1
                job_ids.add(job_id)
        refused: Counter[tuple[int, int, str]] = Counter()
        for result in results:
            for key, count in result["refused"].items():
                guild_id, user_id, reason = key.split(":")
                refused[(int(guild_id), int(user_id), reason)] += count
        attempts = sum(accepted.values()) + sum(refused.values())
        assert attempts == PROCESSES * ATTEMPTS

        in_budget_guild = sum(n for (g, _), n in accepted.items() if g == race.BUDGET_GUILD)
        assert in_budget_guild == round(BUDGET / race.COST)  # never more, and not fewer
        assert accepted[(race.OPEN_GUILD, race.MEMBER)] == MAX_PER_MEMBER
        assert max(accepted.values()) <= MAX_PER_MEMBER
        for (guild_id, user_id, reason), _ in refused.items():
            if reason == "allowance":  # checked first: the member had used it all
                assert accepted[(guild_id, user_id)] == MAX_PER_MEMBER, (guild_id, user_id)
            else:
                assert (reason, guild_id) == ("guild_budget", race.BUDGET_GUILD), reason

        async with db.transaction() as conn:
            month = ledger.month_key(race.T0)
            spend = await ledger.guild_spend(conn, race.BUDGET_GUILD, month=month)
            from_ledger = await ledger.guild_spend_from_ledger(conn, race.BUDGET_GUILD, month=month)
            rows = await conn.fetchall(
                "SELECT job_id, kind, COUNT(*) AS n FROM quota_ledger GROUP BY job_id, kind"
            )
            jobs = {int(r[0]) for r in await conn.fetchall("SELECT id FROM jobs")}
        assert spend == pytest.approx(BUDGET)
        assert from_ledger == pytest.approx(BUDGET)
        assert {(r["kind"], r["n"]) for r in rows} == {("reserve", 1)}
        assert {r["job_id"] for r in rows} == job_ids == jobs  # refused attempts left nothing
    finally:
        await db.close()
