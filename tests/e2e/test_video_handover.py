"""Issue 13 item 5 end to end: after the job and its reservation are committed, a failing
hand-over to the tracker ends in a refunded job (and the member is told nothing was
charged), or, when even that fails, in a job that still runs (and the member is told so)."""

from __future__ import annotations

from typing import Any


async def test_a_failed_hand_over_is_refunded_and_the_member_told(video_bot, monkeypatch) -> None:
    async with video_bot() as v:

        async def broken(job_id: int) -> None:
            raise RuntimeError("tracker exploded")

        monkeypatch.setattr(v.bot.tracker, "enqueue", broken)
        msg = await v.refusal({"prompt": "a quiet harbour at dawn"})
        assert "cancelled and nothing was charged" in msg.content, msg.content
        (job,) = await v.jobs()
        assert job.status.value == "cancelled"
        kinds = [kind for job_id, kind, *_ in await v.ledger() if job_id == job.id]
        assert kinds == ["reserve", "refund"]
        assert v.submits() == 0


async def test_a_hand_over_that_cannot_be_undone_says_the_job_runs(video_bot, monkeypatch) -> None:
    async with video_bot() as v:

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("tracker exploded")

        monkeypatch.setattr(v.bot.tracker, "enqueue", broken)
        monkeypatch.setattr(v.bot.tracker, "cancel", broken)
        inter = await v.command({"prompt": "a quiet harbour at dawn"})
        note = await inter.wait_for_followup(
            lambda m: m.ephemeral and "will still be made" in m.content, 10
        )
        assert "charged only if it is delivered" in note.content
        (job,) = await v.jobs()
        assert job.status.value == "pending"
