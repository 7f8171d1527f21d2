"""The command line as an admin uses it: real subprocesses, fake provider servers."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from bot.media import probe
from tests.fakes.bytecompute_server import FakeByteCompute
from tests.fakes.leonardo_server import FakeLeonardo

ROOT = Path(__file__).resolve().parents[2]
CONFIG_VARS = (
    "DISCORD_TOKEN",
    "DISCORD_API_BASE_URL",
    "DATABASE_URL",
    "BYTECOMPUTE_API_KEY",
    "BYTECOMPUTE_BASE_URL",
    "LEONARDO_API_KEY",
    "LEONARDO_BASE_URL",
    "DEFAULT_PROVIDER",
    "SIMULATOR_ENABLED",
    "QUOTA_SECONDS_PER_DAY",
    "DEV_GUILD_ID",
    "SIMULATOR_DELAY_SECONDS",
)


def cli_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'data' / 'bot.db'}"
    env.update(values)
    return env


async def run_cli(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=tmp_path,  # no .env there
        env=cli_env(tmp_path, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_run_without_token_is_one_clear_line(tmp_path: Path) -> None:
    code, _, err = await run_cli(tmp_path, "run")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "DISCORD_TOKEN" in lines[0]
    assert "Traceback" not in err


async def test_malformed_setting_is_one_clear_line(tmp_path: Path) -> None:
    code, _, err = await run_cli(tmp_path, "check", QUOTA_SECONDS_PER_DAY="plenty")
    assert code == 2
    assert err.strip().count("\n") == 0 and "QUOTA_SECONDS_PER_DAY" in err


async def test_migrate_then_check_with_the_simulator(tmp_path: Path) -> None:
    code, out, _ = await run_cli(tmp_path, "migrate")
    assert code == 0 and "schema version" in out
    code, out, _ = await run_cli(tmp_path, "check")
    assert code == 0, out
    assert "provider simulator" in out and "up to date" in out
    # No token: a warning (only run/sync need it), not a failure.
    assert any(line.startswith("discord token") and " WARN " in line for line in out.splitlines())


async def test_check_reports_a_bad_provider_key_as_a_failed_row(tmp_path: Path) -> None:
    async with FakeByteCompute(api_key="bc-right-key") as bc, FakeLeonardo() as leo:
        code, out, err = await run_cli(
            tmp_path,
            "check",
            BYTECOMPUTE_API_KEY="bc-wrong-key",
            BYTECOMPUTE_BASE_URL=bc.base_url,
            LEONARDO_API_KEY=leo.api_key,
            LEONARDO_BASE_URL=leo.rest_url,
        )
    assert code == 1, out + err
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("provider ")}
    assert " FAIL " in rows["bytecompute"]
    assert " OK " in rows["leonardo"]
    assert "bc-wrong-key" not in out + err


@pytest.mark.parametrize("provider", ["simulator", "bytecompute", "leonardo"])
async def test_generate_writes_a_decodable_clip(tmp_path: Path, provider: str) -> None:
    out_file = tmp_path / f"{provider}.mp4"
    async with FakeByteCompute(job_seconds=0.3) as bc, FakeLeonardo(job_seconds=0.3) as leo:
        env = {
            "SIMULATOR_ENABLED": "true",
            "SIMULATOR_DELAY_SECONDS": "0.3",
            "BYTECOMPUTE_API_KEY": bc.api_key,
            "BYTECOMPUTE_BASE_URL": bc.base_url,
            "LEONARDO_API_KEY": leo.api_key,
            "LEONARDO_BASE_URL": leo.rest_url,
        }
        code, out, err = await run_cli(
            tmp_path,
            "generate",
            "a paper boat on a river",
            "--provider",
            provider,
            "--duration",
            "4" if provider != "leonardo" else "6",
            "--resolution",
            "1280x720",
            "--out",
            str(out_file),
            **env,
        )
    assert code == 0, out + err
    info = probe(out_file)
    assert info.frames > 0 and info.has_audio
    if provider == "simulator":  # the simulator renders exactly what was negotiated
        assert abs(info.duration_s - 4.0) <= 1 / 25 + 1e-6
        assert (info.width, info.height) == (1280, 720)
    assert "wrote" in out


async def test_generate_refuses_bad_input_clearly(tmp_path: Path) -> None:
    bogus = tmp_path / "not-an-image.png"
    bogus.write_text("hello")
    code, _, err = await run_cli(
        tmp_path,
        "generate",
        "x",
        "--image",
        str(bogus),
        "--out",
        str(tmp_path / "o.mp4"),
        SIMULATOR_DELAY_SECONDS="0",
    )
    assert code == 2
    assert "PNG, JPEG or WebP" in err and "Traceback" not in err
    assert not (tmp_path / "o.mp4").exists()


async def test_check_accepts_an_allowance_beyond_a_day(tmp_path: Path) -> None:
    """Seconds of video, not wall-clock time: 100,000 s per member per day is a setting."""
    code, out, _ = await run_cli(tmp_path, "migrate")
    assert code == 0, out
    code, out, err = await run_cli(tmp_path, "check", QUOTA_SECONDS_PER_DAY="100000")
    assert code == 0, out + err
    assert "invalid configuration" not in err


async def test_out_of_range_setting_says_what_to_set(tmp_path: Path) -> None:
    code, _, err = await run_cli(tmp_path, "check", MAX_ACTIVE_JOBS_PER_MEMBER="0")
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "MAX_ACTIVE_JOBS_PER_MEMBER: must be 1 or more" in err and "set e.g." in err


async def test_check_lists_the_live_processes(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from bot.db import Database
    from bot.store import leases, shares
    from tests.unit.test_tracker_support import admit, make_request

    code, _, _ = await run_cli(tmp_path, "migrate")
    assert code == 0
    db = await Database.open(tmp_path / "data" / "bot.db")
    try:
        now = datetime.now(UTC)
        lease = timedelta(seconds=20)
        for i in range(2):
            await admit(db, make_request(f"p{i}"), user_id=i)
        await leases.renew(db, "bot-a", shards="0,1", now=now, until=now + lease)
        await leases.renew(db, "bot-gone", shards="2", now=now - lease * 2, until=now - lease)
        async with db.transaction() as conn:
            await leases.claim(conn, "bot-a", now=now, until=now + lease)
            await shares.put(conn, "bytecompute", "bot-a", share=0.25, demand=2, now=now)
            await shares.put(conn, "leonardo", "bot-a", share=1.0, demand=0, now=now)
    finally:
        await db.close()
    code, out, _ = await run_cli(tmp_path, "check")
    assert code == 0, out
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines()}
    assert "1 live: bot-a" in rows["processes"]
    assert "shards 0,1; holds 2 job(s)" in rows["process bot-a"]
    # Its part of each provider's request budget (bot.jobs.tracker.shares).
    assert "budget share bytecompute 25%, leonardo 100%" in rows["process bot-a"]
    assert "bot-gone" not in out  # no heartbeat within LEASE_SECONDS
