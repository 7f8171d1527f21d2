"""`/videoadmin usage show|export`, `/videoadmin queue` and `/jobs` jump links, through the
fake Discord with the real bot: the chart is a decodable PNG of the stated size that
changes with the data, its numbers are the ledger's, the CSV parses and matches, the queue
lists unfinished jobs and its Cancel refunds like the job's own Cancel."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from PIL import Image, ImageChops

import bot.client
from bot import reports
from bot.db import utcnow

USAGE_SHOW = "videoadmin usage show"
USAGE_EXPORT = "videoadmin usage export"


async def admin_answer(v: Any, name: str, options: dict[str, Any] | None = None) -> Any:
    inter = await v.command(options or {}, name=name, user_id=v.world.admin_id)
    msg = await inter.wait_for_original(lambda m: bool(m.embeds or m.attachments), 20)
    assert msg.ephemeral
    return msg


async def ledger_totals(v: Any) -> tuple[float, float]:
    """(net spend, settled video seconds) of the guild, straight from the quota ledger."""
    spend = await v.bot.db.fetchone(
        "SELECT COALESCE(SUM(cost_usd), 0) FROM quota_ledger WHERE guild_id = ?",
        (v.world.guild_id,),
    )
    notes = await v.bot.db.fetchall("SELECT note FROM quota_ledger WHERE kind = 'settle'")
    seconds = sum(json.loads(r["note"])["final_seconds"] for r in notes)
    return float(spend[0]), float(seconds)


def png_of(msg: Any) -> Image.Image:
    data = msg.attachment("usage.png").data
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image


@pytest.fixture
def failing_volcano(monkeypatch: pytest.MonkeyPatch) -> None:
    real = bot.client.build_providers

    def failing(*args: Any, **kwargs: Any) -> Any:
        providers = real(*args, **kwargs)
        providers["simulator"].fail_prompts_containing = "volcano"
        return providers

    monkeypatch.setattr(bot.client, "build_providers", failing)


async def test_usage_chart_and_csv_match_the_ledger(video_bot: Any, failing_volcano: None) -> None:
    async with video_bot(simulator_delay_seconds=0.2) as v:
        w = v.world
        empty = await admin_answer(v, USAGE_SHOW)
        before = png_of(empty)
        assert before.size == (reports.WIDTH_PX, reports.HEIGHT_PX)
        assert "0 clip(s)" in empty.embeds[0]["description"]

        await v.private(
            await v.command({"usd": 40.0}, name="videoadmin allowance budget", user_id=w.admin_id)
        )
        blockword = {"term": "forbidden"}
        await v.private(
            await v.command(blockword, name="videoadmin blockword add", user_id=w.admin_id)
        )
        for prompt, duration in (("a red kite", 4), ("a blue boat", 6)):
            await v.status(await v.command({"prompt": prompt, "duration": duration}))
        await v.refusal({"prompt": "a forbidden dance", "duration": 4})
        for job_id in (1, 2):  # (a member may run two at once)
            await v.wait_job(job_id, "delivered")
        await v.status(await v.command({"prompt": "a volcano", "duration": 4}))
        await v.wait_job(3, "failed")

        shown = await admin_answer(v, USAGE_SHOW, {"days": 7})
        after = png_of(shown)
        assert after.size == (reports.WIDTH_PX, reports.HEIGHT_PX)
        assert ImageChops.difference(before.convert("RGB"), after.convert("RGB")).getbbox()
        embed = shown.embeds[0]
        assert embed["image"]["url"] == "attachment://usage.png"

        spend, seconds = await ledger_totals(v)
        assert seconds == 10.0 and spend > 0
        report = await reports.usage_report(v.bot.db, w.guild_id, days=7, now=utcnow())
        assert (report.clips, report.failures, report.refusals) == (2, 1, 1)
        assert report.seconds == pytest.approx(seconds)
        assert report.spend_usd == pytest.approx(spend)
        assert report.failure_rate == pytest.approx(1 / 3)
        assert report.days[-1].seconds_by_provider == {"simulator": seconds}
        # The answer states those numbers, and who used the budget.
        text = embed["description"]
        assert "2 clip(s)" in text and "10 s of video" in text and f"${spend:,.2f} spent" in text
        assert "failure rate 33%" in text and "1 refused" in text
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert f"<@{w.user_id}> — 10 s (2 clip(s))" in fields["Top members by seconds"]
        assert "of $40.00 this month" in fields["Monthly budget"]

        exported = await v.command({"days": 7}, name=USAGE_EXPORT, user_id=w.admin_id)
        msg = await exported.wait_for_original(lambda m: bool(m.attachments), 20)
        assert msg.ephemeral
        (attachment,) = msg.attachments
        assert attachment.filename.endswith(".csv")
        rows = list(csv.DictReader(io.StringIO(attachment.data.decode())))
        assert len(rows) == 7 and rows[-1]["day"] == utcnow().date().isoformat()
        today = rows[-1]
        assert (int(today["clips"]), float(today["seconds"])) == (2, seconds)
        assert float(today["spend_usd"]) == pytest.approx(spend, abs=1e-4)
        assert (int(today["failures"]), int(today["refusals"])) == (1, 1)
        assert float(today["seconds_simulator"]) == seconds
        assert all(int(r["clips"]) == 0 for r in rows[:-1])

        # One member: somebody who made nothing has an empty chart and table.
        other = v.fake.add_member(w.guild_id, username="quiet").id
        theirs = await admin_answer(v, USAGE_SHOW, {"member": other})
        assert "0 clip(s)" in theirs.embeds[0]["description"]
        assert png_of(theirs).size == (reports.WIDTH_PX, reports.HEIGHT_PX)


async def test_jobs_links_each_delivered_clip(video_bot: Any) -> None:
    async with video_bot() as v:
        w = v.world
        await v.status(await v.command({"prompt": "a lighthouse", "duration": 4}))
        result = await v.result()
        await v.wait_job(1, "delivered")
        inter = await v.command(name="jobs")
        answer = await inter.wait_for_original(lambda m: bool(m.embeds))
        link = f"https://discord.com/channels/{w.guild_id}/{w.channel_id}/{result.id}"
        assert f"[open the clip]({link})" in answer.embeds[0]["description"]


async def test_queue_lists_unfinished_jobs_and_cancel_refunds(video_bot: Any) -> None:
    async with video_bot(simulator_delay_seconds=60) as v:
        w = v.world
        second = v.fake.add_member(w.guild_id, username="second").id
        await v.status(await v.command({"prompt": "a slow sunrise", "duration": 4}))
        await v.status(await v.command({"prompt": "a slow sunset", "duration": 6}, user_id=second))
        await v.wait_job(1, "submitted", "running")
        await v.wait_job(2, "submitted", "running")

        queue = await admin_answer(v, "videoadmin queue")
        description = queue.embeds[0]["description"]
        assert f"**#1** <@{w.user_id}>" in description
        assert f"**#2** <@{second}>" in description and "simulator" in description
        assert "6 s clip" in description
        assert {"ltx:cancel:1", "ltx:cancel:2", "ltx:queue:refresh"} <= set(queue.custom_ids())

        press = await v.press(queue, "ltx:cancel:2", user_id=w.admin_id)
        assert "cancelled" in await v.reply(press)
        cancelled = await v.wait_job(2, "cancelled")
        assert cancelled.failure_reason == "stopped by a moderator"
        entries = [(k, s) for j, k, s, _ in await v.ledger() if j == 2]
        assert [k for k, _ in entries] == ["reserve", "refund"]
        assert sum(s for _, s in entries) == 0  # the member got their seconds back
        assert [r["actor_id"] for r in await v.audit("cancel")] == [w.admin_id]

        refresh = await v.press(queue, "ltx:queue:refresh", user_id=w.admin_id)
        assert refresh.callback is not None and refresh.callback.type == 7  # message updated
        fresh = v.fake.message(queue.id)
        text = fresh.embeds[0]["description"]
        assert "**#1**" in text and "**#2**" not in text
        assert "ltx:cancel:2" not in fresh.custom_ids()

        # A member without Manage Server cannot refresh someone's queue view either.
        denied = await v.press(queue, "ltx:queue:refresh", user_id=second)
        assert denied.callback is not None and denied.callback.type == 4
        assert "Manage Server" in (denied.callback.data or {}).get("content", "")
