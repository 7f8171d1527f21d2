"""bot.reports: usage aggregation (pure and over a real migrated database), the daily CSV,
the chart (a PNG of the stated size, deterministic, changing with the data) and the README
sample-chart script."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from bot import quota, reports
from bot.db import Database
from bot.moderation.audit import audit_refusal
from bot.reports import build_report, daily_csv, render_usage_png
from bot.store import guilds as guild_store
from bot.store import jobs as job_store
from bot.store.jobs import Status
from bot.store.reports import DayGroup, MemberGroup
from tests.unit.test_tracker_support import make_request

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)

G = 1
ROOT = Path(__file__).resolve().parents[2]


def group(
    day: date,
    *,
    provider: str = "bytecompute",
    status: str = "delivered",
    jobs: int = 1,
    seconds: float = 5.0,
    spend: float = 0.3,
) -> DayGroup:
    return DayGroup(
        day=day, provider=provider, status=status, jobs=jobs, seconds=seconds, spend_usd=spend
    )


def d(day: int, month: int = 6) -> date:
    return date(2025, month, day)


def report_of(
    groups,
    members=(),
    refusals=None,
    *,
    first=date(2025, 6, 28),
    last=date(2025, 7, 2),
    budget=None,
    median=None,
):
    return build_report(
        guild_id=G,
        member_id=None,
        first_day=first,
        last_day=last,
        groups=groups,
        members=list(members),
        refusals=refusals or {},
        median_time_to_clip_s=median,
        budget_usd=budget,
    )


# ----- assembling the report (pure) -----------------------------------------------------


def test_days_providers_and_summary() -> None:
    groups = [
        group(d(28), provider="bytecompute", seconds=4, spend=0.24),
        group(d(28), provider="leonardo", seconds=6, spend=0.5),
        group(d(29), status="failed", spend=0.0),
        group(d(29), status="expired", spend=0.0),
        group(d(30), status="cancelled", spend=0.1),  # billed anyway
        group(d(30), jobs=2, seconds=10, spend=0.6),
    ]
    members = [
        MemberGroup(user_id=7, clips=3, seconds=14, spend_usd=0.84),
        MemberGroup(user_id=8, clips=1, seconds=6, spend_usd=0.5),
        MemberGroup(user_id=9, clips=0, seconds=0, spend_usd=0.1),
    ]
    r = report_of(groups, members, {d(29): 1}, median=90)
    assert [x.day for x in r.days] == [d(28) + timedelta(days=i) for i in range(5)]
    first = r.days[0]
    assert first.seconds_by_provider == {"bytecompute": 4, "leonardo": 6}
    assert (first.clips, first.spend_usd) == (2, pytest.approx(0.74))
    assert (r.days[1].failures, r.days[1].refusals, r.days[1].clips) == (2, 1, 0)
    assert (r.days[2].cancelled, r.days[2].failures, r.days[2].clips) == (1, 0, 2)
    assert r.providers == ["bytecompute", "leonardo"]  # most seconds first
    assert (r.clips, r.seconds, r.failures, r.refusals) == (4, 20, 2, 1)
    assert r.spend_usd == pytest.approx(1.44)
    assert r.failure_rate == pytest.approx(2 / 6)
    assert r.summary() == (
        "4 clip(s) · 20 s of video · $1.44 spent · failure rate 33% · "
        "median time to clip 1.5 min · 1 refused"
    )
    assert [m.user_id for m in r.top_by_seconds] == [7, 8]  # 9 made nothing
    assert [m.user_id for m in r.top_by_spend] == [7, 8, 9]


def test_month_to_date_counts_earlier_days_of_the_month_and_restarts_on_the_first() -> None:
    groups = [
        group(d(2), spend=5.0),  # before the range, same month: month-to-date only
        group(d(29), spend=1.0),
        group(d(1, 7), spend=2.0),
        group(d(2, 7), spend=0.5),
    ]
    r = report_of(groups, budget=10.0)
    mtd = [x.month_to_date_usd for x in r.days]
    assert mtd == pytest.approx([5.0, 6.0, 6.0, 2.0, 2.5])
    assert r.spend_usd == pytest.approx(3.5)  # the range only
    assert r.clips == 3


def test_an_empty_range() -> None:
    r = report_of([])
    assert r.clips == 0 and r.failure_rate is None and r.median_time_to_clip_s is None
    assert r.providers == [] and r.top_by_seconds == [] and r.top_by_spend == []
    assert "failure rate no finished jobs" in r.summary()


def test_daily_csv_parses_and_matches_the_report() -> None:
    groups = [group(d(28), seconds=4, spend=0.25), group(d(30), provider="leonardo")]
    r = report_of(groups, refusals={d(30): 1})
    rows = list(csv.DictReader(io.StringIO(daily_csv(r).decode())))
    assert list(rows[0]) == [*reports.CSV_COLUMNS, "seconds_leonardo", "seconds_bytecompute"]
    assert [x["day"] for x in rows] == [x.day.isoformat() for x in r.days]
    assert rows[0]["seconds_bytecompute"] == "4" and rows[0]["spend_usd"] == "0.2500"
    assert rows[2]["seconds_leonardo"] == "5" and rows[2]["refusals"] == "1"
    assert sum(float(x["spend_usd"]) for x in rows) == pytest.approx(r.spend_usd)


# ----- the chart ------------------------------------------------------------------------


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    image.load()
    return image.convert("RGB")


def test_chart_is_a_png_of_the_stated_size_deterministic_and_follows_the_data() -> None:
    base = report_of([group(d(28))], budget=2.0)
    more = report_of([group(d(28)), group(d(30), seconds=30, provider="leonardo")])
    a = render_usage_png(base, "Usage")
    assert render_usage_png(base, "Usage") == a  # same report, same bytes
    assert b"Software" not in a and b"tIME" not in a  # no version or timestamp chunks
    image = decode(a)
    assert image.size == (reports.WIDTH_PX, reports.HEIGHT_PX)
    assert ImageChops.difference(image, decode(render_usage_png(more, "Usage"))).getbbox()
    # A long range and a title a mathtext parser would choke on render too.
    year = report_of([group(d(28))], first=date(2024, 7, 3), last=date(2025, 7, 2))
    odd = render_usage_png(year, "Usage · $weird_{name} \\ 100% $ 🎬 名前")
    assert decode(odd).size == (reports.WIDTH_PX, reports.HEIGHT_PX)


def test_sample_chart_script_writes_the_readme_picture(tmp_path: Path) -> None:
    out = tmp_path / "sample.png"
    subprocess.run(
        [sys.executable, str(ROOT / "docs" / "make_sample_chart.py"), str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    assert decode(out.read_bytes()).size == (reports.WIDTH_PX, reports.HEIGHT_PX)
    committed = ROOT / "docs" / "usage-sample.png"
    assert decode(committed.read_bytes()).size == (reports.WIDTH_PX, reports.HEIGHT_PX)


# ----- over the real ledger ---------------------------------------------------------------


async def admit(db: Database, now: datetime, *, user: int, seconds: int, cost: float) -> int:
    request = make_request(duration=seconds, cost_usd=cost, width=640, height=512)
    async with db.transaction() as conn:
        job_id = await job_store.insert_job(
            conn, guild_id=G, channel_id=2, user_id=user, request=request, input_dir=None, now=now
        )
        await quota.reserve(
            conn, guild_id=G, user_id=user, job_id=job_id, seconds=float(seconds), width=640,
            height=512, cost_usd=cost, role_ids=[], now=now, default_seconds=10_000,
        )  # fmt: skip
    return job_id


async def finish(db: Database, job_id: int, status: Status, now: datetime, **kw: float) -> None:
    async with db.transaction() as conn:
        job = await job_store.get_job(conn, job_id)
        assert job is not None
        if status is Status.DELIVERED:
            for step in (Status.SUBMITTED, Status.DOWNLOADING, Status.DELIVERING, status):
                await job_store.transition(conn, job_id, step, reason="t", now=now)
            await quota.settle(conn, job_id, seconds=job.seconds, cost_usd=kw["cost"], now=now)
        else:
            await job_store.transition(conn, job_id, status, reason="t", now=now)
            await quota.refund(conn, job_id, reason="t", now=now, billed_usd=kw.get("billed", 0))


async def test_usage_report_reads_the_ledger(db: Database) -> None:
    now = datetime(2025, 7, 2, 18, tzinfo=UTC)
    day1 = now - timedelta(days=1)
    a = await admit(db, day1, user=7, seconds=4, cost=0.4)
    await finish(db, a, Status.DELIVERED, day1 + timedelta(minutes=2), cost=0.3)  # under quote
    b = await admit(db, day1 + timedelta(hours=1), user=8, seconds=6, cost=0.6)
    await finish(db, b, Status.CANCELLED, day1 + timedelta(hours=1), billed=0.6)
    c = await admit(db, now - timedelta(hours=2), user=7, seconds=5, cost=0.5)
    await finish(db, c, Status.FAILED, now - timedelta(hours=1))
    d = await admit(db, now - timedelta(hours=1), user=8, seconds=8, cost=0.8)  # running
    old = await admit(db, now - timedelta(days=40), user=7, seconds=4, cost=9.0)
    await finish(db, old, Status.DELIVERED, now - timedelta(days=40), cost=9.0)
    async with db.transaction() as conn:
        await guild_store.update_guild_settings(conn, G, monthly_budget_usd=25.0, now=now)
    for user, at in ((7, day1 + timedelta(hours=3)), (8, day1), (8, now - timedelta(days=30))):
        await audit_refusal(
            db, guild_id=G, user_id=user, channel_id=2, reason="blocked_word", message="no",
            prompt="p", now=at,
        )  # fmt: skip

    r = await reports.usage_report(db, G, days=7, now=now)
    assert (r.clips, r.failures, r.seconds) == (1, 1, 4.0)
    assert r.refusals == 2 and r.days[-2].refusals == 2  # the one 30 days ago is out of range
    assert r.budget_usd == 25.0
    ledger = await db.fetchall(
        "SELECT job_id, SUM(cost_usd) AS usd FROM quota_ledger GROUP BY job_id"
    )
    net = {x["job_id"]: x["usd"] for x in ledger}
    assert r.spend_usd == pytest.approx(net[a] + net[b] + net[c] + net[d])
    assert r.spend_usd == pytest.approx(0.3 + 0.6 + 0.0 + 0.8)
    assert r.median_time_to_clip_s == pytest.approx(120, abs=0.01)
    assert [(m.user_id, m.clips, m.seconds) for m in r.top_by_seconds] == [(7, 1, 4.0)]
    assert [m.user_id for m in r.top_by_spend] == [8, 7]  # 0.6 + 0.8 vs 0.3
    assert r.days[-2].seconds_by_provider == {"fake": 4.0}
    # Month to date is the ledger's monthly spend for the guild.
    spend = await db.fetchone(
        "SELECT cost_usd FROM quota_guild_spend WHERE guild_id = ? AND month = '2025-07'", (G,)
    )
    assert r.days[-1].month_to_date_usd == pytest.approx(spend[0])
    settled = await db.fetchall("SELECT note FROM quota_ledger WHERE kind = 'settle'")
    assert sum(json.loads(x["note"])["final_seconds"] for x in settled) == 4.0 + 4.0  # old too
    mine = await reports.usage_report(db, G, days=7, now=now, member_id=8)
    assert (mine.clips, mine.spend_usd, mine.refusals) == (0, pytest.approx(1.4), 1)
    assert [m.user_id for m in mine.top_by_spend] == [8]


async def test_median_time_to_clip_over_odd_and_even_counts(db: Database) -> None:
    now = datetime(2025, 7, 2, 18, tzinfo=UTC)
    waits = [300, 60, 120]
    for i, wait in enumerate(waits):
        start = now - timedelta(hours=i + 1)
        job = await admit(db, start, user=10 + i, seconds=4, cost=0.1)
        await finish(db, job, Status.DELIVERED, start + timedelta(seconds=wait), cost=0.1)
    r = await reports.usage_report(db, G, days=1, now=now)
    assert r.median_time_to_clip_s == pytest.approx(120, abs=0.01)
    start = now - timedelta(hours=5)
    job = await admit(db, start, user=20, seconds=4, cost=0.1)
    await finish(db, job, Status.DELIVERED, start + timedelta(seconds=200), cost=0.1)
    r = await reports.usage_report(db, G, days=1, now=now)
    assert r.median_time_to_clip_s == pytest.approx(160, abs=0.01)
    assert r.clips == 4 and len(r.top_by_seconds) == 4
