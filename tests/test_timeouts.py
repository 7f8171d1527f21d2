"""tests/timeouts.py: a hung test ends the run with its asyncio tasks' stacks printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HANGS = """
import asyncio

async def test_hangs():
    async def stuck_in_here():
        await asyncio.Event().wait()

    asyncio.get_running_loop().create_task(stuck_in_here(), name="the-stuck-one")
    await asyncio.sleep(600)
"""


def test_a_hung_test_prints_where_each_task_waits_and_ends_the_run(tmp_path: Path) -> None:
    test_file = tmp_path / "test_hangs.py"
    test_file.write_text(HANGS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.timeouts", "-p", "no:cacheprovider",
         "--timeout", "2", "--timeout-method", "thread", "-o", "asyncio_mode=auto",
         "--rootdir", str(tmp_path), "-c", "/dev/null", str(test_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "asyncio tasks at the timeout" in out
    assert "the-stuck-one" in out and "await asyncio.Event().wait()" in out
    assert "Timeout" in out  # pytest-timeout's own thread stacks follow
