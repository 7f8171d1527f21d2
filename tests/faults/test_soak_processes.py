"""Several bot processes on one PostgreSQL database: shards, leases, a SIGKILL and a SIGTERM
(see tests/faults/soak_processes.py for the checks). Short form here (3 processes, 12 jobs);
long form with `--runslow`, or `python -m tests.faults.soak --processes 3 --database-url …`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends import PgCluster
from tests.faults.soak_processes import ProcessSoakReport, peak_in_window, run_process_soak


@pytest.fixture
def server_dsn(pg_cluster: PgCluster) -> str:
    """A superuser DSN on the session's PostgreSQL server (tests/backends.py: skipped, and
    saying why, only when no server can be had); the soak makes its own database there."""
    return pg_cluster.dsn


def _assert_clean(report: ProcessSoakReport) -> None:
    print(report.summary())
    assert report.problems == []
    assert report.lost == 0 and report.duplicated == 0 and report.ledger_mismatches == 0
    assert report.delivered + report.failed_with_message == report.jobs
    assert report.delivered > 0
    assert report.faults["sigkill"] == 1 and report.faults["sigterm"] == 1
    assert report.leases_taken_over >= 2
    # A graceful stop hands its leases back: the others claim them at a wake-up or beat,
    # well before a lease could have run out.
    assert report.sigterm_takeover[0] < report.sigkill_takeover[0]


def _assert_budget(report: ProcessSoakReport) -> None:
    """The processes' calls together stay within the one provider budget (shared through
    provider_shares, re-split as processes are killed and come back)."""
    assert report.budget_ok, (
        f"provider budget exceeded across processes: peak {report.peak_calls_per_second}"
        f" calls in 1 s > {report.budget_allowance:g} allowed"
    )


def test_peak_in_window() -> None:
    assert peak_in_window([]) == 0
    assert peak_in_window([0.0, 0.5, 0.99, 1.0, 1.2, 5.0]) == 4  # [0.5, 1.5)
    assert peak_in_window([0.0, 1.0, 2.0]) == 1  # half-open windows


async def test_three_processes_sigkill_and_sigterm(tmp_path: Path, server_dsn: str) -> None:
    report = await run_process_soak(tmp_path, server_dsn, processes=3, jobs=12, seed=3)
    _assert_clean(report)
    assert report.jobs >= 6  # commands to a shard whose process was down are not acked
    _assert_budget(report)


@pytest.mark.slow
async def test_three_processes_long(tmp_path: Path, server_dsn: str) -> None:
    report = await run_process_soak(
        tmp_path, server_dsn, processes=3, jobs=60, seed=60, settle_timeout=240
    )
    _assert_clean(report)
    _assert_budget(report)
