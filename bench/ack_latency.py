"""Benchmark: acknowledgement latency of 50 simultaneous `/video` commands.

    .venv/bin/python bench/ack_latency.py                 # bot in its own process (default)
    .venv/bin/python bench/ack_latency.py --in-process    # bot and fake share one event loop
    .venv/bin/python bench/ack_latency.py --runs 5 --commands 50

Setup: the fake Discord (tests/fakes/discord_server.py: REST + gateway on 127.0.0.1) runs
in this process; the real bot runs as `python -m bot run` (its own process, like in
production) with DISCORD_API_BASE_URL pointing at the fake, the offline simulator as its
provider and a fresh SQLite database. N distinct members each send one `/video` (text to
video, 4 s, 512x512) at the same moment: the N INTERACTION_CREATE events are written to the
gateway back to back.

Measured per command, by the fake:
- **ack**: INTERACTION_CREATE written to the gateway → the interaction callback (the
  deferral) received. Discord's hard limit is 3 s; the target is p99 ≤ 250 ms.
- **summary**: INTERACTION_CREATE → the private summary (settings, cost, allowance) shown,
  i.e. download/validation, negotiation, the job row + quota reservation, and the edit.
- **status**: INTERACTION_CREATE → the public status message (with its Cancel button).
Then every clip is rendered and posted (the simulator takes 4 jobs at a time); the run
ends when all N are posted. One warm-up command precedes each run (not counted).

Prints a Markdown table (one row per run plus the pooled figures) and the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.discord_server import FakeDiscord, FakeInteraction  # noqa: E402

OPTIONS = {"duration": 4, "resolution": "512x512"}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def ms(value: float) -> str:
    return f"{value * 1000:.0f}" if value >= 0.0995 else f"{value * 1000:.1f}"


class BotProcess:
    """`python -m bot run` against the fake, in its own process."""

    def __init__(self, fake: FakeDiscord, data_dir: Path, delay: float) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
            "DISCORD_TOKEN": fake.token,
            "DISCORD_API_BASE_URL": fake.api_base,
            "DATABASE_URL": f"sqlite:///{data_dir / 'bot.db'}",
            "SIMULATOR_ENABLED": "true",
            "SIMULATOR_DELAY_SECONDS": str(delay),
            "QUOTA_SECONDS_PER_DAY": "600",
            "LOG_LEVEL": "WARNING",
        }
        self.log = data_dir / "bot.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def start_bot(fake: FakeDiscord, data_dir: Path, args: argparse.Namespace) -> Any:
    """Start the bot; returns a stop coroutine function."""
    if args.in_process:
        from bot.client import VideoBot
        from bot.config import load_settings
        from tests.fakes.discord_server import running_bot

        settings = load_settings(
            _env_file=None,
            discord_token=fake.token,
            discord_api_base_url=fake.api_base,
            database_url=f"sqlite:///{data_dir / 'bot.db'}",
            simulator_enabled=True,
            simulator_delay_seconds=args.delay,
            quota_seconds_per_day=600,
        )
        context = running_bot(VideoBot(settings), fake, timeout=30)
        await context.__aenter__()

        async def stop_in_process() -> None:
            await context.__aexit__(None, None, None)

        return stop_in_process

    proc = BotProcess(fake, data_dir, args.delay)
    proc.start()
    try:
        await fake.wait_for(
            lambda: not proc.alive() or (fake.commands() and fake.resumes + fake.identifies),
            60,
            "the bot to sync its commands and connect",
        )
    except AssertionError:
        proc.stop()
        raise
    if not proc.alive():
        raise SystemExit(f"the bot exited early; see {proc.log}:\n{proc.log.read_text()[-2000:]}")
    await asyncio.sleep(1.0)  # GUILD_CREATE processed

    async def stop_process() -> None:
        await asyncio.to_thread(proc.stop)

    return stop_process


async def one_run(
    fake: FakeDiscord, members: list[int], args: argparse.Namespace
) -> dict[str, list[float]]:
    w = fake.world
    assert w is not None
    # Warm-up (not counted): the first command pays for lazy imports and first connections.
    warm = await fake.send_slash_command(
        w.guild_id, w.channel_id, members[-1], "video", {"prompt": "warm-up", **OPTIONS}
    )
    await warm.wait_for_followup(lambda m: not m.ephemeral, timeout=30)

    posted_before = sum(1 for m in fake.messages(w.channel_id) if m.attachments)
    sent: list[FakeInteraction] = await asyncio.gather(
        *(
            fake.send_slash_command(
                w.guild_id,
                w.channel_id,
                member,
                "video",
                {"prompt": f"benchmark clip {i}: a lighthouse in a storm", **OPTIONS},
            )
            for i, member in enumerate(members[: args.commands])
        )
    )
    await asyncio.gather(*(inter.wait_for_callback(timeout=10) for inter in sent))
    originals = await asyncio.gather(
        *(inter.wait_for_original(lambda m: not m.loading, timeout=60) for inter in sent)
    )
    statuses = await asyncio.gather(
        *(inter.wait_for_followup(lambda m: not m.ephemeral, timeout=60) for inter in sent)
    )
    summary_at = {m.id: m for m in originals}
    for msg in summary_at.values():
        assert "Job" in msg.content, f"not a job summary: {msg.content!r}"
    started = time.perf_counter()
    await fake.wait_for(
        lambda: (
            sum(1 for m in fake.messages(w.channel_id) if m.attachments)
            >= posted_before + len(sent) + 1
        ),
        args.result_timeout,
        "every clip to be posted",
    )
    results_s = time.perf_counter() - started
    ack = [inter.ack_latency or float("nan") for inter in sent]
    summary = [_updated_at(fake, inter, inter.original_message_id) for inter in sent]
    status = [_created_at(fake, inter, m.id) for inter, m in zip(sent, statuses, strict=True)]
    return {"ack": ack, "summary": summary, "status": status, "results": [results_s]}


def _edit_request_at(fake: FakeDiscord, inter: FakeInteraction) -> float:
    for rec in fake.requests:
        if rec.method == "PATCH" and rec.path.startswith("/webhooks/") and inter.token in rec.path:
            return rec.at
    return float("nan")


def _updated_at(fake: FakeDiscord, inter: FakeInteraction, _mid: int | None) -> float:
    assert inter.dispatched_at is not None
    return _edit_request_at(fake, inter) - inter.dispatched_at


def _created_at(fake: FakeDiscord, inter: FakeInteraction, _mid: int) -> float:
    assert inter.dispatched_at is not None
    for rec in fake.requests:
        if rec.method == "POST" and rec.path.startswith("/webhooks/") and inter.token in rec.path:
            return rec.at - inter.dispatched_at
    return float("nan")


async def main_async(args: argparse.Namespace) -> None:
    rows: list[str] = []
    pooled: dict[str, list[float]] = {"ack": [], "summary": [], "status": []}
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="ack-bench-") as tmp:
            async with FakeDiscord() as fake:
                world = fake.populate_default_world()
                members = [
                    fake.add_member(world.guild_id, username=f"member{i}").id
                    for i in range(args.commands + 1)
                ]
                stop = await start_bot(fake, Path(tmp), args)
                try:
                    result = await one_run(fake, members, args)
                finally:
                    await stop()
                    from bot.discord_api import DISCORD_API_BASE, apply_api_base

                    apply_api_base(DISCORD_API_BASE)
        for key in pooled:
            pooled[key] += result[key]
        rows.append(
            f"| {run} | {args.commands} | {ms(statistics.median(result['ack']))} "
            f"| {ms(quantile(result['ack'], 0.99))} | {ms(max(result['ack']))} "
            f"| {ms(statistics.median(result['summary']))} "
            f"| {ms(quantile(result['summary'], 0.99))} "
            f"| {ms(statistics.median(result['status']))} "
            f"| {result['results'][0]:.1f} s |"
        )
    mode = "in-process" if args.in_process else "bot in its own process"
    print(
        f"\n/video acknowledgement latency — {args.commands} simultaneous commands, {mode}, "
        f"{os.cpu_count()} CPU ({platform.machine()}), Python {platform.python_version()}\n"
    )
    print(
        "| run | commands | ack p50 ms | ack p99 ms | ack max ms | summary p50 ms "
        "| summary p99 ms | status p50 ms | all clips posted after |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    if args.runs > 1:
        print(
            f"| all | {len(pooled['ack'])} | {ms(statistics.median(pooled['ack']))} "
            f"| {ms(quantile(pooled['ack'], 0.99))} | {ms(max(pooled['ack']))} "
            f"| {ms(statistics.median(pooled['summary']))} "
            f"| {ms(quantile(pooled['summary'], 0.99))} "
            f"| {ms(statistics.median(pooled['status']))} | |"
        )
    target = quantile(pooled["ack"], 0.99) <= 0.250
    print(f"\nack p99 ≤ 250 ms: {'yes' if target else 'NO'}")
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=50, help="simultaneous commands")
    parser.add_argument("--runs", type=int, default=3, help="independent runs (fresh bot)")
    parser.add_argument("--delay", type=float, default=0.5, help="simulator seconds per job")
    parser.add_argument("--in-process", action="store_true", help="bot in this event loop")
    parser.add_argument("--result-timeout", type=float, default=180.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
