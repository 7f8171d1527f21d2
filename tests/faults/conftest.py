"""Fixtures and checks shared by the fault matrix (provider side, Discord side, soak).

* `quick_tracker`: the fakes finish in a fraction of a second and faults are short, so the
  tracker's first poll, error backoff and provider pause are scaled down (the logic is the
  production logic; only the timing knobs change).
* `short_http_timeout`: the bot's shared HTTP client times out after `HTTP_TIMEOUT` s, so a
  slow provider answer is a timeout without making the suite slow.
* `check_job_outcomes` / `check_ledger`: the invariants every fault must leave behind.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import bot.client
import bot.jobs.tracker.settings
from bot.jobs.tracker import TrackerSettings

# Reuse the e2e harness (`make_bot`, `video_bot`) without duplicating it.
from tests.e2e.conftest import make_bot, video_bot  # noqa: F401

HTTP_TIMEOUT = 1.0
TERMINAL = ("delivered", "failed", "expired", "cancelled")

QUICK_TRACKER: dict[str, Any] = {
    "prior_base_seconds": 0.3,
    "prior_seconds_per_video_second": 0.0,
    "min_poll_interval_seconds": 0.2,
    "error_backoff_base_seconds": 0.1,
    "error_backoff_max_seconds": 0.5,
    "provider_pause_max_seconds": 1.0,
    "sweep_interval_seconds": 0.5,
    "download_attempts": 3,
    "delivery_attempts": 3,
}


@pytest.fixture
def quick_tracker(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = functools.partial(TrackerSettings, **QUICK_TRACKER)
    monkeypatch.setattr(bot.jobs.tracker.settings, "TrackerSettings", quick)


@pytest.fixture
def short_http_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    real = bot.client.make_http_client

    def make() -> httpx.AsyncClient:
        client = real()
        client.timeout = httpx.Timeout(HTTP_TIMEOUT, connect=HTTP_TIMEOUT)
        return client

    monkeypatch.setattr(bot.client, "make_http_client", make)


async def post_as_other_deployment(fake: Any, channel_id: int, filename: str) -> int:
    """Another deployment (own database, same bot token) posts a clip of its own job —
    with the same job number as one of ours. Returns the message id."""
    payload = {"content": "staging build", "attachments": [{"id": 0, "filename": filename}]}
    async with httpx.AsyncClient(base_url=fake.api_base) as client:
        answer = await client.post(
            f"/channels/{channel_id}/messages",
            headers={"Authorization": f"Bot {fake.token}"},
            files={
                "payload_json": (None, json.dumps(payload), "application/json"),
                "files[0]": (filename, b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
            },
        )
    answer.raise_for_status()
    return int(answer.json()["id"])


# ----- invariants -----------------------------------------------------------------------


@dataclass
class LedgerReport:
    jobs: int = 0
    mismatches: list[str] | None = None

    @property
    def ok(self) -> bool:
        return not self.mismatches


def check_ledger(
    jobs: Iterable[Mapping[str, Any]], entries: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Ledger rules per job; returns the list of mismatches (empty when it balances).

    * every job with a ledger entry has exactly one `reserve`, first;
    * a terminal job has exactly one closing entry (`settle` or `refund`), none for one
      still in flight (its reservation stays open while it may still deliver);
    * delivered: charged once, more than 0 and at most the reservation (HD seconds are
      weighted, so the sum is not the job's raw seconds);
    * failed / expired / cancelled: the seconds sum to 0 (refunded in full).
    """
    by_job: dict[int, list[Mapping[str, Any]]] = {}
    for entry in entries:
        if entry["job_id"] is not None:
            by_job.setdefault(int(entry["job_id"]), []).append(entry)
    problems: list[str] = []
    for job in jobs:
        job_id, status = int(job["id"]), str(job["status"])
        rows = by_job.pop(job_id, [])
        kinds = [str(r["kind"]) for r in rows]
        total = sum(float(r["seconds"]) for r in rows)
        closing = [k for k in kinds if k in ("settle", "refund")]
        if kinds.count("reserve") != 1 or kinds[0] != "reserve":
            problems.append(f"job {job_id} ({status}): entries {kinds}")
            continue
        if status in TERMINAL:
            if len(closing) != 1:
                problems.append(f"job {job_id} ({status}): closing entries {kinds}")
            elif status == "delivered" and (closing[0] != "settle" or total <= 0):
                problems.append(f"job {job_id} delivered: {kinds} sum {total}")
            elif status != "delivered" and (closing[0] != "refund" or abs(total) > 1e-9):
                problems.append(f"job {job_id} {status}: {kinds} sum {total}")
            elif status == "delivered" and total > float(rows[0]["seconds"]) + 1e-9:
                problems.append(f"job {job_id} delivered: charged {total} over its reservation")
        elif closing:
            problems.append(f"job {job_id} still {status}: closed early {kinds}")
    for job_id, rows in by_job.items():
        problems.append(f"ledger entries for unknown job {job_id}: {[r['kind'] for r in rows]}")
    return problems


async def ledger_problems(db: Any) -> list[str]:
    jobs = [dict(r) for r in await db.fetchall("SELECT id, status, seconds FROM jobs")]
    entries = [
        dict(r)
        for r in await db.fetchall("SELECT job_id, kind, seconds FROM quota_ledger ORDER BY id")
    ]
    return check_ledger(jobs, entries)
