"""The `/videoadmin queue` message (pure parts): lines, limits, buttons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.providers.base import Mode
from bot.store.jobs import JobRecord, Status
from cogs.admin.queue import JOBS_WITH_BUTTONS, queue_embed, queue_line, queue_view
from tests.unit.test_tracker_support import make_request

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def job(job_id: int, status: Status, *, age_s: float = 90, progress: float | None = None):
    created = NOW - timedelta(seconds=age_s)
    return JobRecord(
        id=job_id,
        guild_id=1,
        channel_id=2,
        user_id=100 + job_id,
        provider="bytecompute",
        model="m",
        mode=Mode.TEXT,
        prompt="p",
        status=status,
        params_json=make_request().model_dump_json(),
        seconds=5,
        cost_usd=0.3,
        progress=progress,
        created_at=created,
        updated_at=created,
    )


def test_lines_say_state_place_or_progress_and_age() -> None:
    waiting = queue_line(job(1, Status.PENDING, age_s=30), 3, NOW)
    assert waiting.startswith("**#1** <@101> · waiting, #3 in line · bytecompute · 5 s clip")
    assert "30 s old" in waiting and "<t:" in waiting
    running = queue_line(job(2, Status.RUNNING, age_s=7300, progress=0.42), None, NOW)
    assert "rendering, 42%" in running and "2 h 01 min old" in running
    assert "posting the clip" in queue_line(job(3, Status.DELIVERING), None, NOW)


def test_buttons_fit_discords_limits_and_skip_jobs_being_posted() -> None:
    items = [(job(i, Status.RUNNING), None) for i in range(1, 31)]
    items.insert(0, (job(99, Status.DELIVERING), None))
    view = queue_view(items)
    ids = [item.custom_id for item in view.children]  # type: ignore[attr-defined]
    assert len(ids) == JOBS_WITH_BUTTONS + 1 <= 25
    assert "ltx:cancel:99" not in ids and ids[0] == "ltx:cancel:1"
    assert ids[-1] == "ltx:queue:refresh"
    assert view.children[0].item.label == "Cancel #1"  # type: ignore[attr-defined]
    rows = [item.row for item in view.children]
    assert max(rows) == 4 and rows.count(4) == 1  # Refresh alone on the last row
    embed = queue_embed(items, NOW)
    assert embed.description is not None and len(embed.description) <= 4096
    assert "31 unfinished job(s)" in (embed.footer.text or "")


def test_an_empty_queue() -> None:
    embed = queue_embed([], NOW)
    assert embed.description == "No unfinished jobs in this server."
    assert [i.custom_id for i in queue_view([]).children] == ["ltx:queue:refresh"]  # type: ignore[attr-defined]
