"""Process soak: the real bot (`python -m bot run`) as a subprocess, SIGKILLed at random
moments and restarted, while members send /video through the fake Discord.

    python -m tests.faults.soak --cycles 50 --jobs 150      # the long form, from the shell

Afterwards (the bot restarted once more and left to finish every job, then stopped with
SIGTERM) the checks read the fake Discord's recorded messages and the SQLite database:

* every job is terminal; a delivered one has exactly one clip message (its
  `result_message_id`), any other ended with a public message saying so and a refund;
* the quota ledger balances (`tests.faults.conftest.check_ledger`);
* no orphan files. Orphan: any file under the data dir other than the database (`bot.db*`)
  and the simulator's own store (`simulator/`, the stand-in for a provider's servers), i.e.
  job inputs, clips and `.part` downloads, once every job has ended.

With `discord_faults` (the default) each cycle may also mix in the Discord delivery faults
of tests/faults/test_delivery_faults.py: a clip post stored but its answer lost (5xx or a
dropped connection, on the follow-up or the channel path), a stale clip of another
deployment with a job number of ours, and a short REST outage right after the restart.

Commands whose interaction reached no live bot (it was killed before acknowledging) create
no job; they are counted as `unacknowledged` (Discord shows the member "interaction failed").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.discord_server import FakeDiscord, FakeInteraction
from tests.faults.conftest import TERMINAL, check_ledger, post_as_other_deployment

ROOT = Path(__file__).resolve().parents[2]
JOB_IN_TEXT = re.compile(r"\*\*job (\d+)\*\*|Job (\d+) ")
CLIP_TEXT = re.compile(r"your video is ready \(job (\d+)\)")


@dataclass
class SoakReport:
    cycles: int = 0
    commands: int = 0
    unacknowledged: int = 0
    jobs: int = 0
    delivered: int = 0
    failed_with_message: int = 0
    lost: int = 0
    duplicated: int = 0
    ledger_mismatches: int = 0
    orphan_files: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    wall_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        return (
            f"soak: {self.cycles} kill/restart cycles, {self.commands} commands "
            f"({self.unacknowledged} unacknowledged: bot dead), {self.jobs} jobs, "
            f"faults: {faults}; delivered {self.delivered}, failed with message "
            f"{self.failed_with_message}, lost {self.lost}, duplicated {self.duplicated}, "
            f"ledger mismatches {self.ledger_mismatches}, orphan files {self.orphan_files}, "
            f"wall {self.wall_seconds:.1f} s"
        )


class BotProcess:
    def __init__(self, env: dict[str, str], log_path: Path, cwd: Path = ROOT) -> None:
        self.env = env
        self.log_path = log_path
        self.cwd = cwd  # on PostgreSQL the data dir is `data/` here (never the repo root)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, fake: FakeDiscord, wait: float = 30.0) -> None:
        before = fake.identifies
        log = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        await fake.wait_for(lambda: fake.identifies > before, wait, "the bot to identify")
        await fake.wait_for_gateway(wait)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self.proc = None

    async def stop(self, wait: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), wait)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            code = -9
        self.proc = None
        return code


def _env(fake: FakeDiscord, data_dir: Path, simulator_delay: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYTECOMPUTE", "LEONARDO"))}
    env.update(
        DISCORD_TOKEN=fake.token,
        DISCORD_API_BASE_URL=fake.api_base,
        DATABASE_URL=f"sqlite:///{data_dir / 'bot.db'}",
        SIMULATOR_ENABLED="true",
        SIMULATOR_DELAY_SECONDS=str(simulator_delay),
        QUOTA_SECONDS_PER_DAY="86400",
        MAX_ACTIVE_JOBS_PER_MEMBER="50",
        DEV_GUILD_ID="",
        DEFAULT_PROVIDER="",
        LOG_LEVEL="INFO",
    )
    return env


async def run_soak(
    workdir: Path,
    *,
    cycles: int = 4,
    jobs_per_cycle: int = 4,
    seed: int = 1,
    simulator_delay: float = 1.0,
    max_uptime: float = 3.0,
    settle_timeout: float = 120.0,
    discord_faults: bool = True,
) -> SoakReport:
    rng = random.Random(seed)
    report = SoakReport()
    started = time.monotonic()
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    fake = FakeDiscord()
    world = fake.populate_default_world()
    await fake.start()
    members = [world.user_id]
    for i in range(3):
        members.append(fake.add_member(world.guild_id, username=f"soaker{i}").id)
    interactions: list[FakeInteraction] = []
    bot = BotProcess(_env(fake, data_dir, simulator_delay), workdir / "bot.log")
    try:
        await bot.start(fake)
        for _ in range(cycles):
            deadline = time.monotonic() + rng.uniform(0.3, max_uptime)
            for _ in range(jobs_per_cycle):
                options = {
                    "prompt": f"soak {len(interactions)}",
                    "duration": 4,
                    "resolution": "512x512",
                    "provider": "simulator",
                }
                inter = await fake.send_slash_command(
                    world.guild_id, world.channel_id, rng.choice(members), "video", options
                )
                interactions.append(inter)
                await asyncio.sleep(rng.uniform(0.0, 0.3))
            if discord_faults:
                await _discord_fault(rng, fake, report, job_number=len(interactions))
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            await bot.kill()
            report.faults["sigkill"] += 1
            report.cycles += 1
            if discord_faults and rng.random() < 0.3:  # Discord's REST down at the restart
                fake.fail_next(503, method="GET", path=rf"^/channels/{world.channel_id}$", times=2)
                fake.fail_next(503, method="POST", path=CLIP_POST, when=_with_files)
                report.faults["outage_after_restart"] += 1
            await bot.start(fake)
        # Let everything finish, then stop cleanly.
        await _wait_all_terminal(data_dir / "bot.db", settle_timeout)
        await asyncio.sleep(1.0)  # final edits after the terminal commit
        report.faults["graceful_stop"] += 1
        await bot.stop()
        # Injected Discord faults that a request actually ran into (some expire unused
        # when the bot is killed before it posts).
        report.faults["discord_faults_hit"] = sum(len(f.hits) for f in fake.faults)
        _check(report, fake, interactions, data_dir)
    finally:
        if bot.proc is not None:
            await bot.kill()
        await fake.stop()
        from bot.discord_api import DISCORD_API_BASE, apply_api_base

        apply_api_base(DISCORD_API_BASE)
    report.wall_seconds = time.monotonic() - started
    return report


CLIP_POST = r"^/(webhooks/\d+/[^/]+|channels/\d+/messages)$"


def _with_files(rec: Any) -> bool:
    """A clip post of the bot (not the other deployment's, see `post_as_other_deployment`)."""
    body = rec.json if isinstance(rec.json, dict) else {}
    return bool(rec.files) and body.get("content") != "staging build"


async def _discord_fault(
    rng: random.Random, fake: FakeDiscord, report: SoakReport, *, job_number: int
) -> None:
    """Maybe one delivery fault for this cycle (see the module docstring)."""
    roll = rng.random()
    if roll < 0.35:
        status = rng.choice([500, 503, 0])
        fake.fail_next(status, method="POST", path=CLIP_POST, when=_with_files, after_commit=True)
        report.faults[f"answer_lost_{status or 'reset'}"] += 1
    elif roll < 0.55 and fake.world is not None:
        name = rng.choice(
            [f"ltx-job-{job_number}.mp4", f"ltx-job-{job_number}-{rng.getrandbits(64):016x}.mp4"]
        )
        await post_as_other_deployment(fake, fake.world.channel_id, name)
        report.faults["stale_post"] += 1


def _rows(db_path: Path, sql: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


async def _wait_all_terminal(db_path: Path, limit: float) -> None:
    deadline = time.monotonic() + limit
    marks = ",".join(f"'{s}'" for s in TERMINAL)
    while True:
        left = _rows(db_path, f"SELECT id, status FROM jobs WHERE status NOT IN ({marks})")
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs never ended: {left}")
        await asyncio.sleep(0.5)


def _check(
    report: SoakReport, fake: FakeDiscord, interactions: list[FakeInteraction], data_dir: Path
) -> None:
    db = data_dir / "bot.db"
    jobs = _rows(db, JOBS_SQL)
    ledger = _rows(db, LEDGER_SQL)
    channels = {fake.world.channel_id} if fake.world else set()
    check_jobs(report, fake, interactions, channels, jobs, ledger)
    orphans = [
        p
        for p in data_dir.rglob("*")
        if p.is_file()
        and not p.name.startswith("bot.db")
        and "simulator" not in p.relative_to(data_dir).parts
    ]
    report.orphan_files = len(orphans)
    report.problems.extend(f"orphan file {p.relative_to(data_dir)}" for p in orphans)


JOBS_SQL = "SELECT id, status, seconds, result_message_id FROM jobs ORDER BY id"
LEDGER_SQL = "SELECT job_id, kind, seconds FROM quota_ledger ORDER BY id"


def check_jobs(
    report: SoakReport,
    fake: FakeDiscord,
    interactions: list[FakeInteraction],
    channel_ids: set[int],
    jobs: list[dict[str, Any]],
    ledger: list[dict[str, Any]],
) -> None:
    """Every job delivered exactly once (one clip message, its `result_message_id`) or ended
    with a public message and a refund; the ledger balanced. `jobs`/`ledger`: JOBS_SQL and
    LEDGER_SQL rows, from either backend."""
    report.commands = len(interactions)
    report.unacknowledged = sum(1 for i in interactions if not i.acknowledged)
    report.jobs = len(jobs)
    # A job row per acknowledged /video (none for the others).
    acked = report.commands - report.unacknowledged
    if len(jobs) > acked:
        report.problems.append(f"{len(jobs)} jobs for {acked} acknowledged commands")

    clips: Counter[int] = Counter()
    clip_ids: dict[int, int] = {}
    texts: dict[int, list[str]] = {}
    for channel_id in channel_ids:
        for m in fake.messages(channel_id, include_deleted=True):
            if m.author_id != fake.bot_user_id:
                continue
            versions = [m.content, *(h.get("content") or "" for h in m.history)]
            for text in versions:
                for a, b in JOB_IN_TEXT.findall(text or ""):
                    texts.setdefault(int(a or b), []).append(text)
            ready = CLIP_TEXT.search(m.content or "")
            if m.attachments and ready:
                clips[int(ready[1])] += 1
                clip_ids[int(ready[1])] = m.id
    for job in jobs:
        jid, status = int(job["id"]), str(job["status"])
        if status == "delivered":
            n = clips.get(jid, 0)
            if n == 0 or job["result_message_id"] != clip_ids[jid]:
                report.lost += 1
                report.problems.append(f"job {jid} delivered without a clip message")
            elif n > 1:
                report.duplicated += 1
                report.problems.append(f"job {jid}: {n} clip messages")
            else:
                report.delivered += 1
        elif status in TERMINAL:
            said = [t for t in texts.get(jid, []) if f"Job {jid} " in t and "charged" in t]
            if clips.get(jid):
                report.duplicated += 1
                report.problems.append(f"job {jid} {status} but a clip was posted")
            elif said:
                report.failed_with_message += 1
            else:
                report.lost += 1
                report.problems.append(f"job {jid} {status} without a message to the member")
        else:
            report.lost += 1
            report.problems.append(f"job {jid} still {status}")
    mismatches = check_ledger(jobs, ledger)
    report.ledger_mismatches = len(mismatches)
    report.problems.extend(mismatches)


def main() -> None:
    parser = argparse.ArgumentParser(description="Kill/restart soak of the bot (fake Discord)")
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--jobs-per-cycle", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    multi = parser.add_argument_group("several processes (tests/faults/soak_processes.py)")
    multi.add_argument("--processes", type=int, default=0, help="N bot processes (>= 2)")
    multi.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    multi.add_argument("--jobs", type=int, default=60, help="/video commands in all")
    multi.add_argument("--lease-seconds", type=float, default=6.0)
    multi.add_argument("--requests-per-second", type=float, default=4.0)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        if args.processes:
            if not args.database_url:
                parser.error("--processes needs --database-url (or TEST_DATABASE_URL)")
            from tests.faults.soak_processes import run_process_soak

            report: SoakReport = asyncio.run(
                run_process_soak(
                    workdir,
                    args.database_url,
                    processes=args.processes,
                    jobs=args.jobs,
                    seed=args.seed,
                    lease_seconds=args.lease_seconds,
                    requests_per_second=args.requests_per_second,
                    settle_timeout=max(90.0, 3.0 * args.jobs),
                )
            )
        else:
            report = asyncio.run(
                run_soak(
                    workdir, cycles=args.cycles, jobs_per_cycle=args.jobs_per_cycle, seed=args.seed
                )
            )
    print(report.summary())
    for problem in report.problems:
        print("  problem:", problem)
    budget_ok = getattr(report, "budget_ok", True)
    sys.exit(1 if report.problems or not budget_ok else 0)


if __name__ == "__main__":
    main()
