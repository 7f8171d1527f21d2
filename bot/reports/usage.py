"""Usage over the last N days: per day and provider, per member, and a one-line summary.

`build_report` is pure (grouped rows in, report out); `usage_report` reads the groups
(`bot.store.reports`, grouped in SQL) and the guild's budget. Days are UTC calendar days
ending today; a job counts on the day it was admitted (as in the ledger and the monthly
spend):

- seconds: seconds of video of the clips delivered (what their settle charged, unweighted);
- spend: the net of each job's ledger entries, so a refunded job counts only what the
  provider billed anyway; month-to-date restarts on the 1st (the budget's calendar month);
- failures: jobs that failed or expired; cancelled jobs are neither failures nor clips;
- failure rate: failures / (clips + failures); time to clip: admission → posted.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from bot.store import guilds as guild_store
from bot.store import reports as store
from bot.store._conn import DbOrConn
from bot.store.reports import DayGroup, MemberGroup

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
    groups: Sequence[DayGroup],
    members: Sequence[MemberGroup],
    refusals: Mapping[date, int],
    median_time_to_clip_s: float | None,
    budget_usd: float | None,
) -> UsageReport:
    """Assemble the report. `groups` may start before `first_day` (from the 1st of its
    month, for month-to-date spend); only days from `first_day` are reported."""
    by_day: dict[date, list[DayGroup]] = defaultdict(list)
    for group in groups:
        by_day[group.day].append(group)
    month_spend: dict[tuple[int, int], float] = defaultdict(float)
    for day in sorted(d for d in by_day if d < first_day):
        month_spend[(day.year, day.month)] += sum(g.spend_usd for g in by_day[day])

    out: list[DayUsage] = []
    provider_seconds: dict[str, float] = defaultdict(float)
    day = first_day
    while day <= last_day:
        seconds: dict[str, float] = defaultdict(float)
        clips = failures = cancelled = 0
        spend = 0.0
        for g in by_day.get(day, []):
            spend += g.spend_usd
            if g.status == "delivered":
                clips += g.jobs
                seconds[g.provider] += g.seconds
                provider_seconds[g.provider] += g.seconds
            elif g.status in FAILED:
                failures += g.jobs
            elif g.status == "cancelled":
                cancelled += g.jobs
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
                refusals=refusals.get(day, 0),
            )
        )
        day += timedelta(days=1)

    people = [
        MemberUsage(user_id=m.user_id, clips=m.clips, seconds=m.seconds, spend_usd=m.spend_usd)
        for m in members
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
        median_time_to_clip_s=median_time_to_clip_s,
    )


async def usage_report(
    db: DbOrConn, guild_id: int, *, days: int, now: datetime, member_id: int | None = None
) -> UsageReport:
    """The guild's (or one member's) usage over the last `days` days up to `now`."""
    first, last = day_range(days, now)
    since, until = _start(first), _start(last + timedelta(days=1))
    u = member_id
    month_start = _start(first.replace(day=1))
    groups = await store.day_groups(db, guild_id, since=month_start, until=until, user_id=u)
    members = await store.member_groups(db, guild_id, since=since, until=until, user_id=u)
    median = await store.median_time_to_clip(db, guild_id, since=since, until=until, user_id=u)
    refused = await store.refusals_per_day(db, guild_id, since=since, until=until, user_id=u)
    settings = await guild_store.get_guild_settings(db, guild_id)
    return build_report(
        guild_id=guild_id,
        member_id=member_id,
        first_day=first,
        last_day=last,
        groups=groups,
        members=members,
        refusals=refused,
        median_time_to_clip_s=median,
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
