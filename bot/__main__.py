"""Command line: `ltx-discord-bot [run|check|migrate|sync|generate]` (same as `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.db import Database, MigrationError, discover_migrations, migrations_dir, redact_url
from bot.logs import setup_logging

log = logging.getLogger("bot")


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


# ----- run / sync ---------------------------------------------------------------------


async def _run_bot(settings: Settings) -> None:
    from bot.client import make_bot

    assert settings.discord_token is not None
    bot = make_bot(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with bot:
        runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("shutting down (signal received)")
        await bot.close()
        stopper.cancel()
        if runner in done:
            runner.result()  # re-raise a login/connection failure
        else:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


async def _sync(settings: Settings) -> int:
    from bot.client import make_bot

    assert settings.discord_token is not None
    bot = make_bot(settings, auto_sync=False, start_workers=False)
    async with bot:
        await bot.login(settings.discord_token.get_secret_value())
        changed = await bot.sync_commands(force=True)
        print("slash commands synced" if changed else "slash commands unchanged")
    return 0


def cmd_run(settings: Settings) -> int:
    if settings.discord_token is None:
        return _fail("DISCORD_TOKEN is not set; put it in the environment or .env (see README)")
    import discord

    try:
        asyncio.run(_run_bot(settings))
    except discord.LoginFailure:
        return _fail("Discord refused DISCORD_TOKEN (login failed); check the bot token")
    except MigrationError as exc:
        return _fail(str(exc))
    return 0


def cmd_sync(settings: Settings) -> int:
    if settings.discord_token is None:
        return _fail("DISCORD_TOKEN is not set; put it in the environment or .env (see README)")
    import discord

    try:
        return asyncio.run(_sync(settings))
    except discord.LoginFailure:
        return _fail("Discord refused DISCORD_TOKEN (login failed); check the bot token")


# ----- migrate / check ----------------------------------------------------------------


async def _migrate(settings: Settings) -> int:
    db = await Database.open(settings.database_target)
    try:
        applied = await db.migrate()
        version = await db.schema_version()
        where = db.location
    finally:
        await db.close()
    print(
        f"database {where}: schema version {version}"
        + (f" (applied {', '.join(applied)})" if applied else " (up to date)")
    )
    return 0


def cmd_migrate(settings: Settings) -> int:
    try:
        return asyncio.run(_migrate(settings))
    except MigrationError as exc:
        return _fail(str(exc))


async def _check_database(settings: Settings) -> tuple[str, bool, str]:
    """The database row of `check`: reachable, and its schema version against the code's."""
    path = settings.database_path
    if not settings.uses_postgresql and not path.exists():
        writable = _dir_writable(path.parent)
        text = f"{path}: will be created" if writable else f"{path.parent} is not writable"
        return ("database", writable, text)
    where = str(path) if not settings.uses_postgresql else redact_url(settings.database_url)
    try:
        db = await Database.open(settings.database_target)
        try:
            version = await db.schema_version()
            latest = discover_migrations(migrations_dir(db.dialect))[-1][0]
        finally:
            await db.close()
    except Exception as exc:
        return ("database", False, f"{where}: {type(exc).__name__}: {exc}")
    if version > latest:
        return ("database", False, f"{where}: version {version} is newer than code ({latest})")
    if version < latest:
        pending = latest - version
        return (
            "database",
            True,
            f"{where}: version {version}, {pending} migration(s) pending (applied at start)",
        )
    return ("database", True, f"{where}: version {version}, up to date")


async def _check(settings: Settings) -> int:
    from bot.providers.registry import build_providers, make_http_client

    rows: list[tuple[str, bool, str]] = [
        (
            "config",
            True,
            f"providers: {', '.join(settings.providers) or 'none'}; "
            f"default: {settings.effective_default_provider}",
        ),
        (
            "discord token",
            settings.discord_token is not None,
            "set"
            if settings.discord_token is not None
            else "DISCORD_TOKEN missing (needed for run/sync)",
        ),
    ]
    rows.append(await _check_database(settings))
    rows.extend(await _check_processes(settings))
    with tempfile.TemporaryDirectory() as tmp:
        async with make_http_client() as client:
            providers = build_providers(settings, client, Path(tmp))
            for name, provider in providers.items():
                try:
                    async with asyncio.timeout(30):
                        result = await provider.check()
                    rows.append((f"provider {name}", result.ok, result.detail))
                except Exception as exc:
                    rows.append((f"provider {name}", False, f"{type(exc).__name__}: {exc}"))
                finally:
                    await provider.aclose()
    from bot.safety import classifier_status

    available, detail = await asyncio.to_thread(classifier_status)
    if not available:
        detail += "; the output safety check then counts only the provider's own flag"
    rows.append(("safety classifier", available, detail))
    width = max(len(r[0]) for r in rows)
    # Optional parts: missing is a warning, not a failure (the token matters for run/sync
    # only; without the classifier the bot runs, with the provider's flag as the only check).
    optional = {"discord token", "safety classifier"}
    for name, ok, detail in rows:
        word = "OK  " if ok else ("WARN" if name in optional else "FAIL")
        print(f"{name.ljust(width)}  {word}  {detail}")
    return 0 if all(ok for name, ok, _ in rows if name not in optional) else 1


async def _check_processes(settings: Settings) -> list[tuple[str, bool, str]]:
    """One row per live process (a heartbeat within LEASE_SECONDS): shards, jobs held, its
    part of each provider's request budget."""
    from datetime import timedelta

    from bot.db import utcnow
    from bot.store import leases, shares

    if not settings.uses_postgresql and not settings.database_path.exists():
        return []
    try:
        db = await Database.open(settings.database_target)
        try:
            version = await db.schema_version()
            if version < 8:  # before the leases migration: none to list
                return []
            now = utcnow()
            since = now - timedelta(seconds=settings.lease_seconds)
            live = await leases.live_instances(db, since=since, now=now)
            parts = await shares.shares_by_owner(db) if version >= 10 else {}
        finally:
            await db.close()
    except Exception as exc:
        return [("processes", False, f"could not be listed: {type(exc).__name__}: {exc}")]
    names = ", ".join(info.name for info in live)
    rows = [("processes", True, f"{len(live)} live" + (f": {names}" if live else ""))]
    for info in live:
        age = (now - info.heartbeat_at).total_seconds()
        shards = f"shards {info.shards}" if info.shards else "all shards"
        budget = ", ".join(f"{p} {s:.0%}" for p, s in parts.get(info.name, {}).items())
        rows.append(
            (f"process {info.name}", True,
             f"{shards}; holds {info.jobs} job(s); last heartbeat {age:.0f} s ago"
             + (f"; budget share {budget}" if budget else ""))
        )  # fmt: skip
    return rows


def _dir_writable(directory: Path) -> bool:
    probe = directory
    while not probe.exists():
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK)


def cmd_check(settings: Settings) -> int:
    return asyncio.run(_check(settings))


# ----- generate -----------------------------------------------------------------------


def cmd_generate(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli_generate import generate

    try:
        return asyncio.run(generate(settings, args))
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ltx-discord-bot", description="LTX-2.3 video bot for Discord"
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="start the bot (default)")
    sub.add_parser("check", help="validate configuration, database and provider credentials")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("sync", help="sync slash commands with Discord now")
    gen = sub.add_parser("generate", help="make one clip offline-capable, without Discord")
    gen.add_argument("prompt")
    gen.add_argument("--image", type=Path, help="image-to-video input")
    gen.add_argument("--first-frame", type=Path)
    gen.add_argument("--last-frame", type=Path)
    gen.add_argument("--duration", type=int)
    gen.add_argument("--resolution", help="WIDTHxHEIGHT, e.g. 1280x720")
    gen.add_argument("--aspect-ratio")
    gen.add_argument("--fps", type=int)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--no-audio", action="store_true")
    gen.add_argument("--provider", choices=["bytecompute", "leonardo", "simulator"])
    gen.add_argument("--out", type=Path, default=Path("clip.mp4"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings()
    except ConfigError as exc:
        return _fail(str(exc))
    setup_logging(settings.log_level if command == "run" else "WARNING", settings.secrets())
    handlers = {
        "run": lambda: cmd_run(settings),
        "check": lambda: cmd_check(settings),
        "migrate": lambda: cmd_migrate(settings),
        "sync": lambda: cmd_sync(settings),
        "generate": lambda: cmd_generate(settings, args),
    }
    started = time.monotonic()
    code = handlers[command]()
    log.debug("%s finished in %.1fs", command, time.monotonic() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
