"""Provider-side fault matrix: the real bot (fake Discord) against each fake provider over
real HTTP on 127.0.0.1, one fault per case.

Every case must end in exactly one delivered clip, or in a clear public failure message with
the job's seconds refunded; never a hang (each wait is bounded), a crash or a lost job.
Already covered elsewhere and not repeated: a provider down for a while and a 429 storm at
the tracker level (tests/integration/test_tracker_providers.py), a plain provider failure of
the simulator (tests/e2e/test_video_delivery.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

import bot.client
from tests.fakes.bytecompute_server import FakeByteCompute
from tests.fakes.leonardo_server import FakeLeonardo
from tests.fakes.provider_fake import FakeJob
from tests.faults.conftest import HTTP_TIMEOUT, TERMINAL, ledger_problems

pytestmark = pytest.mark.usefixtures("quick_tracker", "short_http_timeout")

CAP = 1024 * 1024  # the bot's download cap in these tests (1 MiB)


@dataclass
class Rig:
    """One fake provider and the paths its faults target."""

    name: str
    server: Any
    submit: str
    status: str
    settings: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)

    def loop_download(self) -> None:
        if isinstance(self.server, FakeByteCompute):
            self.server.response_variant.download = "redirect"
            self.server.response_variant.download_url = f"{self.server.base_url}/loop/0"
        else:
            self.server.motion_url_override = f"{self.server.base_url}/loop/0"

    def expire(self, job: FakeJob) -> None:
        if isinstance(self.server, FakeByteCompute):
            self.server.expire_job(job.id)  # 404 from then on (documented)
        else:
            self.server.deleted.add(job.id)  # generations_by_pk: null from then on


@asynccontextmanager
async def provider_rig(name: str, job_seconds: float) -> AsyncIterator[Rig]:
    if name == "bytecompute":
        async with FakeByteCompute(job_seconds=job_seconds) as bc:
            yield Rig(
                name,
                bc,
                "/v1/generate",
                "/v1/jobs/",
                {"bytecompute_api_key": bc.api_key, "bytecompute_base_url": bc.base_url},
                {"duration": 4, "resolution": "640x512"},
            )
    else:
        async with FakeLeonardo(job_seconds=job_seconds) as leo:
            yield Rig(
                name,
                leo,
                "/api/rest/v2/generations",
                "/api/rest/v1/generations/",
                {"leonardo_api_key": leo.api_key, "leonardo_base_url": leo.rest_url},
                {"duration": 6},
            )


@dataclass(frozen=True)
class Case:
    arm: Callable[[Rig], None]  # before the command
    outcome: str  # delivered / failed / expired
    words: tuple[str, ...] = ("",)  # one of them is in the public ending message
    on_job: Callable[[Rig, FakeJob], None] | None = None  # once the provider has the job
    job_seconds: float = 0.3


def _big(r: Rig, *, announced: bool) -> None:
    r.server.download_size = 16 * CAP
    r.server.download_chunked = not announced


CASES: dict[str, Case] = {
    "http500_every_path": Case(lambda r: r.server.fail_next(4, 500), "delivered"),
    "http503_on_status": Case(
        lambda r: r.server.fail_next(3, 503, path_prefix=r.status), "delivered"
    ),
    "timeout_on_status": Case(
        lambda r: r.server.slow_next(1, HTTP_TIMEOUT * 2, path_prefix=r.status), "delivered"
    ),
    "timeout_on_submit": Case(
        lambda r: r.server.slow_next(1, HTTP_TIMEOUT * 2, path_prefix=r.submit), "delivered"
    ),
    "reset_on_status": Case(lambda r: r.server.reset_next(3, path_prefix=r.status), "delivered"),
    "reset_on_submit": Case(lambda r: r.server.reset_next(1, path_prefix=r.submit), "delivered"),
    "malformed_json_on_status": Case(
        lambda r: r.server.fail_next(2, 200, '{"status": "comp', path_prefix=r.status),
        "delivered",
    ),
    "malformed_json_on_submit": Case(
        lambda r: r.server.fail_next(1, 200, "<html>oops</html>", path_prefix=r.submit),
        "delivered",
    ),
    "http429_storm": Case(lambda r: r.server.rate_limit_next(5, 0.1), "delivered"),
    "http429_storm_http_date": Case(
        lambda r: r.server.rate_limit_next(1, 1.0, http_date=True), "delivered"
    ),
    "job_failed": Case(
        lambda r: None,
        "failed",
        # ByteCompute passes the provider's reason on; the fake Leonardo sends none.
        ("content filter said no", "Leonardo reported the generation failed"),
        on_job=lambda r, j: r.server.fail_job(j.id, "content filter said no"),
        job_seconds=2.0,
    ),
    "job_expired": Case(
        lambda r: None,
        "expired",
        ("no longer knows this job",),
        on_job=lambda r, j: r.expire(j),
        job_seconds=2.0,
    ),
    "download_truncated_then_whole": Case(
        lambda r: setattr(r.server, "truncate_downloads", 2), "delivered"
    ),
    "download_always_truncated": Case(
        lambda r: setattr(r.server, "truncate_downloads", 100),
        "failed",
        ("could not be downloaded",),
    ),
    "download_redirect_loop": Case(
        lambda r: r.loop_download(), "failed", ("could not be downloaded",)
    ),
    "download_far_larger_unannounced": Case(
        lambda r: _big(r, announced=False), "failed", ("could not be downloaded",)
    ),
    "download_far_larger_announced": Case(
        lambda r: _big(r, announced=True), "failed", ("could not be downloaded",)
    ),
}


@pytest.mark.parametrize("provider", ["bytecompute", "leonardo"])
@pytest.mark.parametrize("fault", list(CASES))
async def test_provider_fault(video_bot, monkeypatch, provider: str, fault: str) -> None:
    case = CASES[fault]
    real = bot.client.build_providers

    def capped(*args: Any, **kwargs: Any) -> Any:
        providers = real(*args, **kwargs)
        for p in providers.values():
            if hasattr(p, "_max_download_bytes"):
                p._max_download_bytes = CAP
            if hasattr(p, "_missing_grace"):
                p._missing_grace = 0.5  # Leonardo: how long a null generation is "not yet"
        return providers

    monkeypatch.setattr(bot.client, "build_providers", capped)
    async with provider_rig(provider, case.job_seconds) as rig:
        # A local fake takes 20 calls/s (ByteCompute's published 2/s would make the 429
        # cases wait tens of seconds after the tracker halves its rate per 429).
        settings = {
            **rig.settings,
            "simulator_enabled": False,
            "provider_requests_per_second": 20,
        }
        async with video_bot(**settings) as v:
            case.arm(rig)
            inter = await v.command(
                {"prompt": f"fault {fault}", "provider": provider, **rig.options}
            )
            status = await v.status(inter)
            if case.on_job is not None:
                await v.fake.wait_for(lambda: bool(rig.server.jobs), 10, "the provider's job")
                case.on_job(rig, next(iter(rig.server.jobs.values())))
            job = await v.wait_job(1, *TERMINAL, timeout=30)
            assert job.status.value == case.outcome, (job.status, job.failure_reason)
            await asyncio.sleep(0.3)  # anything duplicated would show by now
            results = v.results()
            if case.outcome == "delivered":
                assert len(results) == 1, "exactly one clip"
                assert v.clip_info(results[0]).frames > 0
                assert job.result_message_id == results[0].id
                await v.fake.wait_for(lambda: "Done" in status.content, 5, "final status")
            else:
                assert not results, "no clip after a failure"
                await v.fake.wait_for(
                    lambda: "Nothing was charged" in status.content, 5, "the ending"
                )
                assert any(w in status.content for w in case.words), status.content
                assert status.custom_ids() == [], "no buttons left on an ended job"
                await v.fake.wait_for(
                    lambda: "60 s of your allowance left" in inter.original.content,
                    5,
                    "the private refund",
                )
            assert await ledger_problems(v.bot.db) == []
            # Nothing of the job is left in the data dir once it ended.
            leftovers = [
                p for p in (v.tmp_path / "data").rglob("*") if p.is_file() and not _db_file(p)
            ]
            assert leftovers == [], leftovers


def _db_file(path: Any) -> bool:
    return path.name.startswith("bot.db")
