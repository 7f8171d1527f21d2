"""Discord-side faults through the fake Discord with the real bot (simulator provider).

Already covered precisely in tests/e2e/test_video_delivery.py and not repeated here: the
interaction token expiring mid-job (401 on the webhook → channel replies), a 413 on upload
(re-encoded, never the same file twice), a restart mid-job. Missing channel permissions at
command time: tests/e2e/test_video_errors.py.

Each case ends in exactly one delivered clip, or a clear message and a refund.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.faults.conftest import TERMINAL, ledger_problems

pytestmark = pytest.mark.usefixtures("quick_tracker")

OPTIONS = {"prompt": "a lighthouse", "duration": 4, "resolution": "512x512"}
UPLOAD = r"^/(webhooks|channels)/.+/messages$"  # posting the clip (webhook or channel)


@dataclass(frozen=True)
class Case:
    # Called once the job is running: (fake discord, interaction, status message).
    inject: Callable[[Any, Any, Any], Awaitable[None] | object]
    outcome: str = "delivered"


async def _disconnect(fake: Any, resumable: bool) -> None:
    await fake.disconnect_gateway(resumable=resumable)


CASES: dict[str, Case] = {
    "webhook_404_unknown_token": Case(
        lambda f, i, s: f.fail_next(404, path=r"^/webhooks/", times=50, code=10015)
    ),
    "upload_429_retry_after": Case(
        lambda f, i, s: f.fail_next(429, method="POST", path=UPLOAD, times=2, retry_after=0.3)
    ),
    "upload_500_then_ok": Case(lambda f, i, s: f.fail_next(500, method="POST", path=UPLOAD)),
    "upload_502_twice": Case(lambda f, i, s: f.fail_next(502, method="POST", path=UPLOAD, times=2)),
    "progress_edit_403": Case(lambda f, i, s: f.fail_next(403, method="PATCH", times=3)),
    "gateway_drop_resume": Case(lambda f, i, s: _disconnect(f, True)),
    "gateway_drop_invalid_session": Case(lambda f, i, s: _disconnect(f, False)),
    "status_message_deleted": Case(lambda f, i, s: f.delete_message(s.id)),
    "original_response_deleted": Case(lambda f, i, s: f.delete_message(i.original.id)),
}


@pytest.mark.parametrize("fault", list(CASES))
async def test_discord_fault(video_bot, fake_discord, fault: str) -> None:
    case = CASES[fault]
    async with video_bot(simulator_delay_seconds=1.5) as v:
        inter = await v.command(OPTIONS)
        status = await v.status(inter)
        await v.wait_job(1, "submitted", "running")
        maybe = case.inject(fake_discord, inter, status)
        if inspect.isawaitable(maybe):
            await maybe
        job = await v.wait_job(1, *TERMINAL, timeout=30)
        assert job.status.value == case.outcome, (job.status, job.failure_reason)
        await asyncio.sleep(0.5)
        results = v.results()
        assert len(results) == 1, "exactly one clip"
        assert results[0].id == job.result_message_id
        assert v.clip_info(results[0]).frames > 0
        assert await ledger_problems(v.bot.db) == []
        if not fault.startswith("gateway"):
            return
        # After the reconnect the bot still gets interactions: a second job goes through.
        await v.command({**OPTIONS, "prompt": "after the fault"})
        await v.fake.wait_for(lambda: len(v.results()) == 2, 30, "the second clip")
        second = await v.wait_job(2, *TERMINAL, timeout=30)
        assert second.status.value == "delivered"
        assert await ledger_problems(v.bot.db) == []


async def test_channel_deleted_mid_job_refunds(video_bot, fake_discord) -> None:
    w = fake_discord.world
    async with video_bot(simulator_delay_seconds=1.5) as v:
        inter = await v.command(OPTIONS)
        await v.status(inter)
        await v.wait_job(1, "submitted", "running")
        fake_discord.expire_interaction(inter)  # so the channel is the only way left
        fake_discord.delete_channel(w.channel_id)
        job = await v.wait_job(1, *TERMINAL, timeout=30)
        # Issue 13 item 6: stopped when the channel goes (CHANNEL_DELETE), not failed
        # later at the post after rendering on at the provider's cost.
        assert job.status.value == "cancelled", job.status
        assert job.failure_reason == "its channel was deleted"
        assert not [r for r in fake_discord.requests if r.files and r.status == 200]
        ledger = [(k, s) for j, k, s, _u in await v.ledger() if j == 1]
        assert [k for k, _ in ledger] == ["reserve", "refund"] and sum(s for _, s in ledger) == 0
        assert await ledger_problems(v.bot.db) == []
