"""Failover between providers, end to end: the real bot against the fake Discord, with the
fake ByteCompute server failing (5xx until its circuit breaker opens, 401, 402) and the
fake Leonardo server healthy. Covers the guild's fallback order (automatic), the offer with
its Accept / Cancel buttons and its timeout, the nothing-healthy refusal, and
`/videoadmin provider status`; the quota ledger stays balanced (nothing charged twice)."""

# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import pytest

import bot.jobs.tracker.settings
from bot.jobs.tracker import TrackerSettings
from tests.e2e.conftest import VideoHarness, image_file
from tests.fakes.bytecompute_server import FakeByteCompute
from tests.fakes.discord_server import FakeInteraction, FakeMessage
from tests.fakes.leonardo_server import FakeLeonardo

LEONARDO_SUBMIT = "/api/rest/v2/generations"


@pytest.fixture(autouse=True)
def quick_tracker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes finish in a fraction of a second; retries and breaker pauses kept short."""
    quick = functools.partial(
        TrackerSettings,
        prior_base_seconds=0.2,
        prior_seconds_per_video_second=0.0,
        error_backoff_base_seconds=0.05,
        error_backoff_max_seconds=0.2,
        provider_pause_max_seconds=0.3,
    )
    monkeypatch.setattr(bot.jobs.tracker.settings, "TrackerSettings", quick)


def both(bc: FakeByteCompute, leo: FakeLeonardo) -> dict[str, Any]:
    return {
        "bytecompute_api_key": bc.api_key,
        "bytecompute_base_url": bc.base_url,
        "leonardo_api_key": leo.api_key,
        "leonardo_base_url": leo.rest_url,
        "simulator_enabled": False,
    }


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.02)


async def balanced(v: VideoHarness) -> dict[int, list[str]]:
    """Each job's ledger kinds: exactly one reserve and one settle or refund."""
    kinds: dict[int, list[str]] = {}
    for job_id, kind, _seconds, _user in await v.ledger():
        kinds.setdefault(job_id, []).append(kind)
    for job_id, entries in kinds.items():
        assert entries in (["reserve", "settle"], ["reserve", "refund"]), (job_id, entries)
    return kinds


async def offer_of(v: VideoHarness, inter: FakeInteraction) -> FakeMessage:
    return await inter.wait_for_original(lambda m: any("ltx-offer:" in c for c in m.custom_ids()))


def button(message: FakeMessage, action: str) -> str:
    (custom_id,) = [c for c in message.custom_ids() if c.startswith(f"ltx-offer:{action}:")]
    return custom_id


async def admin(v: VideoHarness, name: str, options: dict[str, Any] | None = None) -> str:
    inter = await v.command(options or {}, name=name, user_id=v.world.admin_id)
    return (await v.private(inter)).content


async def test_fallback_order_switches_automatically_and_never_moves_an_accepted_job(
    video_bot,
) -> None:
    async with (
        FakeByteCompute(job_seconds=0.4) as bc,
        FakeLeonardo(job_seconds=0.2) as leo,
        video_bot(**both(bc, leo)) as v,
    ):
        assert v.bot.service.default_provider == "bytecompute"
        done = await admin(v, "videoadmin provider order", {"providers": "leonardo, bytecompute"})
        assert "leonardo → bytecompute" in done
        # Job 1 is accepted by ByteCompute; then its status calls fail until the breaker opens.
        first = await v.command({"prompt": "first clip", "duration": 5})
        assert "bytecompute" in (await v.private(first)).content
        await v.wait_job(1, "submitted", "running")
        bc.fail_next(200, 500, path_prefix="/v1/jobs/")
        await until(lambda: v.bot.service.provider_verdict("bytecompute").failing)
        verdict = v.bot.service.provider_verdict("bytecompute")
        assert verdict.kind == "breaker" and verdict.since is not None

        status = await admin(v, "videoadmin provider status")
        assert "🔴 **bytecompute**" in status and "circuit breaker is open" in status
        assert "🟢 **leonardo** — healthy" in status
        assert "fallback order: `leonardo` → `bytecompute`" in status

        # Job 2 goes to Leonardo at once (the order), and the member's summary says so.
        second = await v.command({"prompt": "second clip", "duration": 5})
        summary = (await v.private(second)).content
        assert "`bytecompute` is failing" in summary
        assert "fallback order picked `leonardo`" in summary and "**Job 2**" in summary
        clip = await v.result(lambda m: "Job 2" in m.content or "second clip" in m.content)
        assert v.clip_info(clip).frames > 0
        job2 = await v.wait_job(2, "delivered")
        assert job2.provider == "leonardo"

        # Job 1 stayed with ByteCompute (never resubmitted to Leonardo) and finishes there.
        bc._faults.clear()
        job1 = await v.wait_job(1, "delivered", timeout=20)
        assert job1.provider == "bytecompute"
        assert [r.form["prompt"] for r in bc.requests_to("/v1/generate")] == ["first clip"]
        leo_prompts = [
            r.json.get("parameters", r.json)["prompt"] for r in leo.requests_to(LEONARDO_SUBMIT)
        ]
        assert leo_prompts == ["second clip"]
        assert await balanced(v) == {1: ["reserve", "settle"], 2: ["reserve", "settle"]}

        # Healthy again after a good answer; Leonardo's latency is shown.
        assert not v.bot.service.provider_verdict("bytecompute").failing
        status = await admin(v, "videoadmin provider status")
        assert "🟢 **bytecompute** — healthy" in status
        assert "latency p50" in status and "last 1 job)" in status
        (change,) = [r for r in await v.audit("admin") if "fallback order" in r["summary"]]
        assert change["actor_id"] == v.world.admin_id


async def test_offer_names_the_price_and_admits_only_on_accept(video_bot) -> None:
    async with (
        FakeByteCompute(job_seconds=0.2) as bc,
        FakeLeonardo(job_seconds=0.2) as leo,
        video_bot(**both(bc, leo)) as v,
    ):
        # The account runs dry: 402 on the first submission (that job is refunded).
        bc.fail_next(1, 402, path_prefix="/v1/generate")
        first = await v.command({"prompt": "first clip", "duration": 5})
        await v.private(first)
        await v.wait_job(1, "failed")
        assert v.bot.service.provider_verdict("bytecompute").kind == "credits"

        second = await v.command(
            {"prompt": "a heron takes off", "duration": 6},
            attachments={"image": image_file("heron.png", width=960, height=540)},
        )
        offer = await offer_of(v, second)
        offered = offer.content  # (the message object follows later edits)
        assert offer.ephemeral
        assert "`bytecompute` is failing" in offer.content and "out of credit" in offer.content
        assert "`leonardo` can make it now" in offer.content and "image-to-video" in offer.content
        assert "$" in offer.content and "Nothing is reserved" in offer.content
        # Nothing reserved, no job written, nothing sent anywhere while the member decides.
        assert len(await v.jobs()) == 1
        assert await balanced(v) == {1: ["reserve", "refund"]}
        assert leo.request_count(LEONARDO_SUBMIT) == 0

        pressed = await v.press(offer, button(offer, "accept"))
        assert pressed.callback is not None and pressed.callback.type == 6  # update, no message
        summary = await second.wait_for_original(lambda m: "**Job 2**" in m.content)
        assert "you accepted `leonardo`" in summary.content and not summary.custom_ids()
        job2 = await v.wait_job(2, "delivered")
        assert job2.provider == "leonardo" and job2.request.mode.value == "image-to-video"
        (quoted,) = [w for w in offered.split() if w.startswith("**$")]
        assert quoted == f"**${job2.request.cost_usd:.2f}**"
        assert leo.init_images, "the image went to Leonardo"
        assert bc.request_count("/v1/generate") == 1  # only the 402
        assert await balanced(v) == {1: ["reserve", "refund"], 2: ["reserve", "settle"]}


async def test_offer_cancel_and_timeout_leave_nothing_reserved(video_bot) -> None:
    async with (
        FakeByteCompute(job_seconds=0.2) as bc,
        FakeLeonardo(job_seconds=0.2) as leo,
        video_bot(**both(bc, leo)) as v,
    ):
        bc.fail_next(1, 401, path_prefix="/v1/generate")
        await v.private(await v.command({"prompt": "first clip"}))
        await v.wait_job(1, "failed")
        assert v.bot.service.provider_verdict("bytecompute").kind == "auth"
        inputs = v.bot.service.files.inputs_dir

        cancelled = await v.command(
            {"prompt": "cancel me"}, attachments={"image": image_file("a.png")}
        )
        offer = await offer_of(v, cancelled)
        assert "rejected the bot's API key" in offer.content
        await v.press(offer, button(offer, "cancel"))
        closed = await cancelled.wait_for_original(lambda m: "Cancelled" in m.content)
        assert "nothing was reserved or charged" in closed.content and not closed.custom_ids()

        v.bot.get_cog("VideoCog").offer_timeout = 0.3  # type: ignore[union-attr]
        ignored = await v.command(
            {"prompt": "ignore me"}, attachments={"image": image_file("b.png")}
        )
        await offer_of(v, ignored)
        expired = await ignored.wait_for_original(lambda m: "timed out" in m.content, 5)
        assert not expired.custom_ids()

        assert len(await v.jobs()) == 1 and await balanced(v) == {1: ["reserve", "refund"]}
        assert leo.request_count(LEONARDO_SUBMIT) == 0
        assert not any(inputs.iterdir()), "the offered requests' inputs were removed"


async def test_nothing_healthy_is_refused_and_nothing_charged(video_bot) -> None:
    async with (
        FakeByteCompute(job_seconds=0.2) as bc,
        FakeLeonardo(job_seconds=0.2) as leo,
        video_bot(**both(bc, leo)) as v,
    ):
        bc.fail_next(1, 401, path_prefix="/v1/generate")
        leo.fail_next(1, 402, path_prefix=LEONARDO_SUBMIT)
        await v.private(await v.command({"prompt": "one"}))
        await v.wait_job(1, "failed")
        await v.private(await v.command({"prompt": "two", "provider": "leonardo"}))
        await v.wait_job(2, "failed")

        refused = await v.refusal({"prompt": "three"})
        assert "`bytecompute` is failing" in refused.content
        assert "no other provider here can make this clip" in refused.content
        assert "`leonardo` is failing" in refused.content and "out of credit" in refused.content
        assert "nothing was charged" in refused.content and not refused.custom_ids()
        assert len(await v.jobs()) == 2
        assert await balanced(v) == {1: ["reserve", "refund"], 2: ["reserve", "refund"]}
        (refusal,) = [r for r in await v.audit("refusal") if "provider_failing" in r["summary"]]
        assert refusal["target_id"] == v.world.user_id

        status = await admin(v, "videoadmin provider status")
        assert status.count("🔴") == 2 and "fallback order: none" in status


async def test_order_refuses_unknown_names(video_bot) -> None:
    async with (
        FakeLeonardo(job_seconds=0.2) as leo,
        video_bot(
            leonardo_api_key=leo.api_key, leonardo_base_url=leo.rest_url, simulator_enabled=True
        ) as v,
    ):
        text = await admin(v, "videoadmin provider order", {"providers": "leonardo, sora"})
        assert "`sora` is not a configured provider" in text and "`simulator`" in text
        assert await v.bot.service.provider_order(v.world.guild_id) == []
        text = await admin(v, "videoadmin provider order", {"providers": "simulator leonardo"})
        assert "simulator → leonardo" in text
        assert await v.bot.service.provider_order(v.world.guild_id) == ["simulator", "leonardo"]
        text = await admin(v, "videoadmin provider order", {"providers": "none"})
        assert "→ none" in text
        # Members may not use it.
        member = await v.command({}, name="videoadmin provider status")
        assert "Manage Server" in (await v.private(member)).content
