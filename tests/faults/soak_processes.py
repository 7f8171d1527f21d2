"""Multi-process soak: N bot processes (`python -m bot run`, shards 0..N-1 of N) on one
PostgreSQL database, against the fake Discord and the fake ByteCompute server.

    python -m tests.faults.soak --processes 3 --database-url postgresql://… --jobs 60

Each process runs in a working directory of its own (on PostgreSQL the data dir is `data/`
under the cwd) with SHARD_COUNT=N, SHARD_IDS=i, INSTANCE_NAME=bot-i, a short LEASE_SECONDS
and PROVIDER_REQUESTS_PER_SECOND. The soak makes its own database (`soak_<hex>`) on the
server of the given DSN, migrates it and drops it afterwards. Guilds on every shard (ids
n << 22, Discord's routing `(guild_id >> 22) % N`), members in each, /video text-to-video
spread over them. Faults: one process SIGKILLed while it holds leases on jobs the provider
accepted (checked in the database first), then restarted; later another SIGTERMed (a
graceful stop hands its leases back), then restarted. Takeover time: from the signal to the
moment another live process holds every lease the stopped one had (`jobs.lease_owner`).

Checks (PostgreSQL read with asyncpg): every job delivered exactly once or ended with a
public message and a refund, the ledger balanced (`tests.faults.soak.check_jobs`), and the
provider budget: the peak number of calls in any 1-second window, across all processes,
from the fake provider's recorded request times, must stay within the configured rate plus
what the buckets may hold: the processes share the rate (`bot.jobs.tracker.shares`), but
each bucket keeps at least one call banked (`TokenBucket.capacity`), so the bound is the
rate + its burst + one call per process (see `budget_allowance`).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bot.jobs.tracker import TrackerSettings
from tests.backends import create_database, drop_database, with_database
from tests.fakes.bytecompute_server import FakeByteCompute
from tests.fakes.discord_server import FakeDiscord, FakeInteraction
from tests.faults.conftest import TERMINAL
from tests.faults.soak import JOBS_SQL, LEDGER_SQL, ROOT, BotProcess, SoakReport, check_jobs

_ACTIVE = "status NOT IN ({})".format(", ".join(f"'{s}'" for s in TERMINAL))


@dataclass
class ProcessSoakReport(SoakReport):
    processes: int = 0
    sigkill_takeover: list[float] = field(default_factory=list)  # seconds
    sigterm_takeover: list[float] = field(default_factory=list)
    leases_taken_over: int = 0
    restarted: int = 0
    provider_calls: int = 0
    peak_calls_per_second: int = 0
    budget_allowance: float = 0.0  # calls allowed in any 1 s window
    statuses: Counter[str] = field(default_factory=Counter)  # jobs by final status

    @property
    def budget_ok(self) -> bool:
        return self.peak_calls_per_second <= self.budget_allowance

    def summary(self) -> str:
        kills = ", ".join(f"{t:.2f}" for t in self.sigkill_takeover) or "-"
        terms = ", ".join(f"{t:.2f}" for t in self.sigterm_takeover) or "-"
        return (
            f"process soak: {self.processes} processes, {self.commands} commands "
            f"({self.unacknowledged} unacknowledged: shard down), {self.jobs} jobs; delivered "
            f"{self.delivered}, failed with message {self.failed_with_message}, lost "
            f"{self.lost}, duplicated {self.duplicated} ({dict(self.statuses)}), ledger mismatches "
            f"{self.ledger_mismatches}; takeover after SIGKILL {kills} s, after SIGTERM "
            f"{terms} s ({self.leases_taken_over} leases, {self.restarted} restarts); "
            f"provider calls {self.provider_calls}, peak {self.peak_calls_per_second} in 1 s "
            f"(allowed {self.budget_allowance:g}: {'ok' if self.budget_ok else 'EXCEEDED'}); "
            f"wall {self.wall_seconds:.1f} s"
        )


def peak_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most timestamps in any half-open interval [t, t + window)."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def budget_allowance(rate: float, processes: int) -> float:
    """Calls `processes` buckets sharing `rate`/s may spend in a 1 s window: the rate, the
    shared burst (rate * burst_seconds, as `make_provider_state` builds it) and the one call
    each bucket may hold whatever its share (`TokenBucket.capacity` is at least 1)."""
    return rate + rate * TrackerSettings().burst_seconds + processes


class Cluster:
    """The fakes, the database and N bot processes; shared by the soak and bench/takeover.py."""

    def __init__(
        self,
        workdir: Path,
        server_dsn: str,
        *,
        processes: int = 3,
        lease_seconds: float = 6.0,
        requests_per_second: float | None = 4.0,
        job_seconds: tuple[float, float] = (2.0, 4.0),
        seed: int = 1,
        guilds_per_shard: int = 2,
    ) -> None:
        self.workdir = workdir
        self.count = processes
        self.lease_seconds = lease_seconds
        self.rps = requests_per_second
        self.rng = random.Random(seed)
        self._dbname = f"soak_{secrets.token_hex(4)}"
        self.dsn = with_database(server_dsn, self._dbname)
        self._server_dsn = server_dsn
        self.fake = FakeDiscord()
        low, high = job_seconds
        self.provider = FakeByteCompute(job_seconds=lambda: self.rng.uniform(low, high))
        self.guilds_per_shard = guilds_per_shard
        self.places: list[tuple[int, int, list[int]]] = []  # (guild, channel, members)
        self.bots: list[BotProcess] = []
        self.conn: asyncpg.Connection | None = None
        self.interactions: list[FakeInteraction] = []

    def name(self, i: int) -> str:
        return f"bot-{i}"

    async def __aenter__(self) -> Cluster:
        await create_database(self._server_dsn, self._dbname)
        self.conn = await asyncpg.connect(self.dsn)
        await self.fake.start()
        await self.provider.start()
        for n in range(10, 10 + self.count * self.guilds_per_shard):  # shard n % count
            guild = self.fake.add_guild(f"g{n}", guild_id=n << 22)
            members = [guild.owner_id]
            members += [self.fake.add_member(guild.id, username=f"m{n}-{k}").id for k in (1, 2)]
            self.places.append((guild.id, next(iter(guild.channels)), members))
        for i in range(self.count):
            cwd = self.workdir / self.name(i)
            cwd.mkdir(parents=True, exist_ok=True)
            self.bots.append(BotProcess(self._env(i), cwd / "bot.log", cwd=cwd))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for bot in self.bots:
            if bot.proc is not None:
                await bot.kill()
        if self.conn is not None:
            await self.conn.close()
        await self.provider.stop()
        await self.fake.stop()
        from bot.discord_api import DISCORD_API_BASE, apply_api_base

        apply_api_base(DISCORD_API_BASE)
        await drop_database(self._server_dsn, self.dsn)

    def _env(self, i: int) -> dict[str, str]:
        skip = ("BYTECOMPUTE", "LEONARDO", "LTX_", "SHARD", "INSTANCE", "LEASE", "PROVIDER_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env.update(
            PYTHONPATH=path,  # the cwd is not the checkout: `python -m bot` must still import it
            DISCORD_TOKEN=self.fake.token,
            DISCORD_API_BASE_URL=self.fake.api_base,
            DATABASE_URL=self.dsn,
            BYTECOMPUTE_API_KEY=self.provider.api_key,
            BYTECOMPUTE_BASE_URL=self.provider.base_url,
            SIMULATOR_ENABLED="false",
            DEFAULT_PROVIDER="bytecompute",
            QUOTA_SECONDS_PER_DAY="86400",
            MAX_ACTIVE_JOBS_PER_MEMBER="50",
            DEV_GUILD_ID="",
            SHARD_COUNT=str(self.count),
            SHARD_IDS=str(i),
            INSTANCE_NAME=self.name(i),
            LEASE_SECONDS=f"{self.lease_seconds:g}",
            LOG_LEVEL="INFO",
        )
        if self.rps is not None:
            env["PROVIDER_REQUESTS_PER_SECOND"] = f"{self.rps:g}"
        return env

    # ----- processes --------------------------------------------------------------------

    def _connected(self, i: int) -> bool:
        shard = [i, self.count]
        return any(
            s.conn is not None and not s.invalid and s.shard == shard
            for s in self.fake._sessions.values()
        )

    async def start(self, i: int, wait: float = 60.0) -> None:
        await self.bots[i].start(self.fake, wait)
        await self.fake.wait_for(lambda: self._connected(i), wait, f"{self.name(i)}'s shard")
        if i == 0:  # shard 0's process syncs the commands
            await self.fake.wait_for(
                lambda: any(c["name"] == "video" for c in self.fake.global_commands),
                wait,
                "/video to be registered",
            )

    async def start_all(self) -> None:
        await self.start(0)
        await asyncio.gather(*(self.start(i) for i in range(1, self.count)))

    def live(self) -> list[int]:
        return [i for i, b in enumerate(self.bots) if b.proc is not None]

    async def held(self, *, accepted: bool = False) -> dict[str, list[int]]:
        """Unfinished jobs by lease owner (`accepted`: only those the provider accepted)."""
        assert self.conn is not None
        only = " AND provider_job_id IS NOT NULL" if accepted else ""
        rows = await self.conn.fetch(
            f"SELECT lease_owner, id FROM jobs WHERE {_ACTIVE}{only}"
            " AND lease_owner IS NOT NULL ORDER BY id"
        )
        out: dict[str, list[int]] = {}
        for row in rows:
            out.setdefault(row["lease_owner"], []).append(int(row["id"]))
        return out

    async def victim(
        self, among: Sequence[int], limit: float = 60.0, *, newer_than: int = 0
    ) -> int:
        """The process of `among` holding leases on the most jobs the provider accepted (of
        those numbered above `newer_than`)."""
        deadline = time.monotonic() + limit
        while True:
            held = await self.held(accepted=True)
            choices = [
                (sum(1 for j in held.get(self.name(i), []) if j > newer_than), i) for i in among
            ]
            count, i = max(choices)
            if count:
                return i
            if time.monotonic() > deadline:
                raise AssertionError(f"no process of {list(among)} held an accepted job")
            await asyncio.sleep(0.1)

    async def takeover(self, i: int, job_ids: list[int], since: float, limit: float) -> float:
        """Seconds from `since` until another process holds every one of `job_ids` that is
        still unfinished (an ended job counts as handed over)."""
        assert self.conn is not None
        gone = self.name(i)
        deadline = since + limit
        while True:
            rows = await self.conn.fetch(
                "SELECT id, status, lease_owner FROM jobs WHERE id = ANY($1::bigint[])", job_ids
            )
            waiting = [
                r["id"]
                for r in rows
                if r["status"] not in TERMINAL and r["lease_owner"] in (None, gone)
            ]
            now = time.monotonic()
            if not waiting:
                return now - since
            if now > deadline:
                raise AssertionError(f"{gone}'s jobs {waiting} not taken over in {limit:g} s")
            await asyncio.sleep(0.02)

    async def fault(self, i: int, sig: signal.Signals) -> tuple[float, int]:
        """Send `sig` to process i; returns the takeover time of every lease it held at that
        moment (see `takeover`) and how many leases that was."""
        bot = self.bots[i]
        assert bot.proc is not None
        job_ids = (await self.held()).get(self.name(i), [])
        since = time.monotonic()
        bot.proc.send_signal(sig)
        limit = 3 * self.lease_seconds + 30
        took, _ = await asyncio.gather(self.takeover(i, job_ids, since, limit), bot.proc.wait())
        bot.proc = None
        return took, len(job_ids)

    # ----- members ----------------------------------------------------------------------

    async def command(self, n: int, *, shard: int | None = None) -> FakeInteraction:
        """/video number `n`, in the n-th guild (of those on `shard`, if given)."""
        places = [p for p in self.places if shard is None or (p[0] >> 22) % self.count == shard]
        guild, channel, members = places[n % len(places)]
        options = {"prompt": f"soak {n}", "duration": 4, "resolution": "512x512"}
        inter = await self.fake.send_slash_command(
            guild, channel, self.rng.choice(members), "video", options
        )
        self.interactions.append(inter)
        return inter

    async def commands(self, count: int, pause: float = 0.3) -> None:
        for _ in range(count):
            await self.command(len(self.interactions))
            await asyncio.sleep(self.rng.uniform(0.0, pause))

    async def last_job(self) -> int:
        assert self.conn is not None
        return int(await self.conn.fetchval("SELECT COALESCE(MAX(id), 0) FROM jobs"))

    async def wait_all_terminal(self, limit: float) -> None:
        assert self.conn is not None
        deadline = time.monotonic() + limit
        while True:
            left = await self.conn.fetch(f"SELECT id, status FROM jobs WHERE {_ACTIVE}")
            if not left:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"jobs never ended: {[dict(r) for r in left]}")
            await asyncio.sleep(0.25)

    def provider_call_times(self) -> list[float]:
        return [r.time for r in self.provider.requests if r.path.startswith("/v1/")]


async def run_process_soak(
    workdir: Path,
    database_url: str,
    *,
    processes: int = 3,
    jobs: int = 12,
    seed: int = 1,
    lease_seconds: float = 6.0,
    requests_per_second: float = 4.0,
    job_seconds: tuple[float, float] = (2.0, 4.0),
    restart: bool = True,
    settle_timeout: float = 90.0,
) -> ProcessSoakReport:
    """The soak (module docstring). `database_url`: any database on the server (a superuser
    or a role that may CREATE DATABASE); the soak's own database is made beside it."""
    assert processes >= 2, "a takeover needs another live process"
    report = ProcessSoakReport(processes=processes)
    report.budget_allowance = budget_allowance(requests_per_second, processes)
    started = time.monotonic()
    cluster = Cluster(
        workdir,
        database_url,
        processes=processes,
        lease_seconds=lease_seconds,
        requests_per_second=requests_per_second,
        job_seconds=job_seconds,
        seed=seed,
    )
    async with cluster:

        async def fault(candidates: Iterable[int], sig: signal.Signals, commands: int) -> int:
            """Signal a process holding leases on accepted jobs while `commands` more are
            sent; restart it (with `restart`). Returns which process it was."""
            victim = await cluster.victim(candidates)
            sending = asyncio.create_task(cluster.commands(commands))
            took, leases = await cluster.fault(victim, sig)
            takeovers = (
                report.sigkill_takeover if sig == signal.SIGKILL else report.sigterm_takeover
            )
            takeovers.append(took)
            report.faults[sig.name.lower()] += 1
            report.leases_taken_over += leases
            await sending
            if restart:
                await cluster.start(victim)
                report.restarted += 1
            return victim

        await cluster.start_all()
        third = max(1, jobs // 3)
        await cluster.commands(third)
        # SIGKILL a process that holds leases on jobs the provider accepted.
        killed = await fault(range(processes), signal.SIGKILL, third)
        # SIGTERM another one: its leases are handed back at once.
        await cluster.commands(1)
        others = [i for i in cluster.live() if i != killed] or cluster.live()
        await fault(others, signal.SIGTERM, jobs - 2 * third - 1)
        await cluster.wait_all_terminal(settle_timeout)
        await asyncio.sleep(1.0)  # final edits after the terminal commit
        for i in cluster.live():
            await cluster.bots[i].stop(wait=30.0)
        assert cluster.conn is not None
        rows = [dict(r) for r in await cluster.conn.fetch(JOBS_SQL)]
        ledger = [dict(r) for r in await cluster.conn.fetch(LEDGER_SQL)]
        channels = {channel for _, channel, _ in cluster.places}
        check_jobs(report, cluster.fake, cluster.interactions, channels, rows, ledger)
        report.statuses.update(str(r["status"]) for r in rows)
        if report.statuses["cancelled"]:  # nobody cancels and no guild is left here
            report.problems.append(f"{report.statuses['cancelled']} job(s) cancelled")
        times = cluster.provider_call_times()
        report.provider_calls = len(times)
        report.peak_calls_per_second = peak_in_window(times)
    report.wall_seconds = time.monotonic() - started
    return report
