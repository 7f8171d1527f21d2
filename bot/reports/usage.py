"""Usage over the last N days: per day and provider, per member, and a one-line summary.

`build_report` is pure (rows in, report out); `usage_report` reads the rows
(`bot.store.reports`) and the guild's budget. Days are UTC calendar days ending today; a
job counts on the day it was admitted (as in the ledger and the monthly spend):

- seconds: seconds of video of the clips delivered (what their settle charged, unweighted);
- spend: the net of each job's ledger entries, so a refunded job counts only what the
  provider billed anyway; month-to-date restarts on the 1st (the budget's calendar month);
- failures: jobs that failed or expired; cancelled jobs are neither failures nor clips;
- failure rate: failures / (clips + failures); time to clip: admission → posted.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from bot.store import guilds as guild_store
from bot.store import reports as store
from bot.store._conn import DbOrConn
from bot.store.reports import JobUsageRow, RefusalRow

FAILED = frozenset({"failed", "expired"})
TOP_MEMBERS = 5
CSV_COLUMNS = (
    "day",
    "clips",
    "seconds",
    "spend_usd",
    "month_to_date_usd",
    "failures",
    "cancelled",
    "refusals",
)


@dataclass(frozen=True)
class DayUsage:
    day: date
    seconds_by_provider: dict[str, float]
    clips: int
    spend_usd: float
    month_to_date_usd: float
    failures: int
    cancelled: int
    refusals: int

    @property
    def seconds(self) -> float:
        return sum(self.seconds_by_provider.values())


@dataclass(frozen=True)
class MemberUsage:
    user_id: int
    clips: int
    seconds: float
    spend_usd: float


@dataclass(frozen=True)
class UsageReport:
    guild_id: int
    member_id: int | None
    first_day: date
    last_day: date
    days: list[DayUsage]
    providers: list[str]  # those with delivered seconds in the range, most seconds first
    budget_usd: float | None  # the guild's monthly budget (None: none set)
    top_by_seconds: list[MemberUsage] = field(default_factory=list)
    top_by_spend: list[MemberUsage] = field(default_factory=list)
    median_time_to_clip_s: float | None = None

    @property
    def clips(self) -> int:
        return sum(d.clips for d in self.days)

    @property
    def seconds(self) -> float:
        return sum(d.seconds for d in self.days)

    @property
    def spend_usd(self) -> float:
        return sum(d.spend_usd for d in self.days)

    @property
    def failures(self) -> int:
        return sum(d.failures for d in self.days)

    @property
    def refusals(self) -> int:
        return sum(d.refusals for d in self.days)

    @property
    def failure_rate(self) -> float | None:
        finished = self.clips + self.failures
        return self.failures / finished if finished else None

    def summary(self) -> str:
        """One line: clips, seconds, spend, failure rate, median time to clip."""
        rate = "no finished jobs" if self.failure_rate is None else f"{self.failure_rate:.0%}"
        median = self.median_time_to_clip_s
        parts = [
            f"{self.clips} clip(s)",
            f"{self.seconds:,.0f} s of video",
            f"${self.spend_usd:,.2f} spent",
            f"failure rate {rate}",
            "median time to clip " + ("—" if median is None else fmt_duration(median)),
        ]
        if self.refusals:
            parts.append(f"{self.refusals} refused")
        return " · ".join(parts)


def fmt_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def day_range(days: int, now: datetime) -> tuple[date, date]:
    """The first and last (today, UTC) day of a report over `days` days."""
    last = now.astimezone(UTC).date()
    return last - timedelta(days=days - 1), last


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def build_report(
    *,
    guild_id: int,
    member_id: int | None,
    first_day: date,
    last_day: date,
    jobs: Sequence[JobUsageRow],
    refusals: Sequence[RefusalRow],
    budget_usd: float | None,
) -> UsageReport:
    """Aggregate the rows. `jobs` may start before `first_day` (from the 1st of its month,
    for month-to-date spend); only days from `first_day` are reported."""
    by_day: dict[date, list[JobUsageRow]] = defaultdict(list)
    for job in jobs:
        by_day[job.created_at.astimezone(UTC).date()].append(job)
    refused: dict[date, int] = defaultdict(int)
    for row in refusals:
        refused[row.at.astimezone(UTC).date()] += 1

    month_spend: dict[tuple[int, int], float] = defaultdict(float)
    for day in sorted(d for d in by_day if d < first_day):
        month_spend[(day.year, day.month)] += sum(j.spend_usd for j in by_day[day])

    out: list[DayUsage] = []
    provider_seconds: dict[str, float] = defaultdict(float)
    members: dict[int, list[float]] = {}
    waits: list[float] = []
    day = first_day
    while day <= last_day:
        todays = by_day.get(day, [])
        seconds: dict[str, float] = defaultdict(float)
        clips = failures = cancelled = 0
        spend = 0.0
        for job in todays:
            spend += job.spend_usd
            totals = members.setdefault(job.user_id, [0, 0.0, 0.0])
            totals[2] += job.spend_usd
            if job.status == "delivered":
                clips += 1
                seconds[job.provider] += job.seconds
                provider_seconds[job.provider] += job.seconds
                totals[0] += 1
                totals[1] += job.seconds
                if job.finished_at is not None:
                    waits.append((job.finished_at - job.created_at).total_seconds())
            elif job.status in FAILED:
                failures += 1
            elif job.status == "cancelled":
                cancelled += 1
        month = (day.year, day.month)
        month_spend[month] += spend
        out.append(
            DayUsage(
                day=day,
                seconds_by_provider=dict(seconds),
                clips=clips,
                spend_usd=spend,
                month_to_date_usd=month_spend[month],
                failures=failures,
                cancelled=cancelled,
                refusals=refused.get(day, 0),
            )
        )
        day += timedelta(days=1)

    people = [
        MemberUsage(user_id=uid, clips=int(t[0]), seconds=t[1], spend_usd=t[2])
        for uid, t in members.items()
    ]
    return UsageReport(
        guild_id=guild_id,
        member_id=member_id,
        first_day=first_day,
        last_day=last_day,
        days=out,
        providers=sorted(provider_seconds, key=lambda p: (-provider_seconds[p], p)),
        budget_usd=budget_usd,
        top_by_seconds=sorted(
            (m for m in people if m.seconds > 0), key=lambda m: (-m.seconds, m.user_id)
        )[:TOP_MEMBERS],
        top_by_spend=sorted(
            (m for m in people if m.spend_usd > 0.005), key=lambda m: (-m.spend_usd, m.user_id)
        )[:TOP_MEMBERS],
        median_time_to_clip_s=statistics.median(waits) if waits else None,
    )


async def usage_report(
    db: DbOrConn, guild_id: int, *, days: int, now: datetime, member_id: int | None = None
) -> UsageReport:
    """The guild's (or one member's) usage over the last `days` days up to `now`."""
    first, last = day_range(days, now)
    month_start = first.replace(day=1)
    until = _start(last + timedelta(days=1))
    jobs = await store.job_usage(
        db, guild_id, since=_start(month_start), until=until, user_id=member_id
    )
    refused = await store.refusals(
        db, guild_id, since=_start(first), until=until, user_id=member_id
    )
    settings = await guild_store.get_guild_settings(db, guild_id)
    return build_report(
        guild_id=guild_id,
        member_id=member_id,
        first_day=first,
        last_day=last,
        jobs=jobs,
        refusals=refused,
        budget_usd=settings.monthly_budget_usd,
    )


def daily_csv(report: UsageReport) -> bytes:
    """The daily table as CSV (UTF-8, one row per day, one `seconds_<provider>` column per
    provider that delivered seconds). Only numbers and dates: nothing a spreadsheet runs."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"seconds_{p}" for p in report.providers)])
    for d in report.days:
        writer.writerow(
            [
                d.day.isoformat(),
                d.clips,
                f"{d.seconds:g}",
                f"{d.spend_usd:.4f}",
                f"{d.month_to_date_usd:.4f}",
                d.failures,
                d.cancelled,
                d.refusals,
                *(f"{d.seconds_by_provider.get(p, 0.0):g}" for p in report.providers),
            ]
        )
    return out.getvalue().encode()
