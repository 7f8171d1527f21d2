"""Kill/restart soak of the real bot process (see tests/faults/soak.py for the checks).

Short form in CI (~a minute); long form with `--runslow` (or `SOAK_CYCLES=50`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.soak import run_soak


def _assert_clean(report) -> None:
    print(report.summary())
    assert report.problems == []
    assert report.lost == 0 and report.duplicated == 0
    assert report.ledger_mismatches == 0 and report.orphan_files == 0
    assert report.delivered + report.failed_with_message == report.jobs
    assert report.jobs > 0


async def test_soak_short(tmp_path: Path) -> None:
    cycles = int(os.environ.get("SOAK_CYCLES", "4"))
    report = await run_soak(tmp_path, cycles=cycles, jobs_per_cycle=4, seed=cycles)
    _assert_clean(report)
    assert report.faults["sigkill"] == cycles
    assert report.delivered > 0


@pytest.mark.slow
async def test_soak_long(tmp_path: Path) -> None:
    report = await run_soak(tmp_path, cycles=50, jobs_per_cycle=3, seed=50, settle_timeout=300)
    _assert_clean(report)
    assert report.faults["sigkill"] == 50
