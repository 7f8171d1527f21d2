"""The usage chart: a PNG drawn with matplotlib's Agg backend (no display, no pyplot).

Three panels over the report's days: seconds of delivered video stacked by provider;
spend per day with the month-to-date line against the guild's monthly budget; refusals
and failures per day. A fixed style (own rc settings, the colour-blind-safe Okabe-Ito
palette, the DejaVu Sans font matplotlib ships) and fixed size, and no metadata in the
file, so the same report always gives the same bytes. Blocking and CPU-bound: call it
with `asyncio.to_thread`; renders are serialised (matplotlib's settings are global).
"""

from __future__ import annotations

import io
import threading
import warnings
from datetime import UTC, datetime, time, timedelta
from typing import Any

from bot.reports.usage import UsageReport

WIDTH_PX, HEIGHT_PX = 1000, 750
DPI = 100
# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
SPEND_COLOUR = "#999999"
MONTH_COLOUR = "#0072B2"
BUDGET_COLOUR = "#D55E00"
FAILURE_COLOUR = "#D55E00"
REFUSAL_COLOUR = "#CC79A7"
STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": "#dddddd",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "legend.frameon": False,
    "legend.fontsize": 9,
    "path.simplify": False,
    "svg.hashsalt": "ltx",
}

_lock = threading.Lock()


def provider_colours(providers: list[str]) -> dict[str, str]:
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(providers)}


def render_usage_png(report: UsageReport, title: str) -> bytes:
    """The chart of `report` as PNG bytes, WIDTH_PX × HEIGHT_PX. `title` is drawn as
    plain text (no mathtext), so any member name is safe."""
    import matplotlib  # imported here: only the first chart pays for it, not the bot's start
    from matplotlib import dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with _lock, warnings.catch_warnings(), matplotlib.rc_context(STYLE):  # type: ignore[arg-type]
        # A server or member name with emoji: DejaVu Sans lacks them; draw boxes, don't warn.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        FigureCanvasAgg(fig)
        axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2.2, 1.3]})
        seconds_ax, spend_ax, events_ax = axes
        days = [datetime.combine(d.day, time(12), tzinfo=UTC) for d in report.days]
        width = 0.8 if len(days) <= 120 else 1.0

        bottom = [0.0] * len(days)
        colours = provider_colours(report.providers)
        for provider in report.providers:
            values = [d.seconds_by_provider.get(provider, 0.0) for d in report.days]
            seconds_ax.bar(
                days, values, width, bottom=bottom, color=colours[provider], label=provider
            )
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        seconds_ax.set_title("Seconds of video delivered per day, by provider", loc="left")
        seconds_ax.set_ylabel("seconds")
        if report.providers:
            seconds_ax.legend(loc="upper left", ncols=min(4, len(report.providers)))
        else:
            seconds_ax.text(
                0.5, 0.5, "no clips delivered", transform=seconds_ax.transAxes,
                ha="center", va="center", color="#777777", parse_math=False,
            )  # fmt: skip
        seconds_ax.set_ylim(bottom=0, top=max([*bottom, 1.0]) * 1.15)

        spend_ax.bar(
            days, [d.spend_usd for d in report.days], width, color=SPEND_COLOUR,
            label="spend that day",
        )  # fmt: skip
        spend_ax.step(
            days, [d.month_to_date_usd for d in report.days], where="mid",
            color=MONTH_COLOUR, linewidth=2, label="month to date",
        )  # fmt: skip
        top = max([0.01, *(d.month_to_date_usd for d in report.days)])
        if report.budget_usd is not None:
            spend_ax.axhline(
                report.budget_usd, color=BUDGET_COLOUR, linestyle="--", linewidth=1.5,
                label=f"monthly budget {report.budget_usd:,.2f} USD",
            )  # fmt: skip
            top = max(top, report.budget_usd)
        spend_ax.set_ylim(bottom=0, top=top * 1.2)
        spend_ax.set_title("Spend (USD)", loc="left")
        spend_ax.set_ylabel("USD")
        spend_ax.legend(loc="upper left", ncols=3)

        offset = timedelta(hours=5 if width < 1 else 6)
        events_ax.bar(
            [d - offset for d in days], [d.failures for d in report.days], width / 2,
            color=FAILURE_COLOUR, label="failed or expired", align="center",
        )  # fmt: skip
        events_ax.bar(
            [d + offset for d in days], [d.refusals for d in report.days], width / 2,
            color=REFUSAL_COLOUR, label="refused", align="center",
        )  # fmt: skip
        events = max([1, *(max(d.failures, d.refusals) for d in report.days)])
        events_ax.set_ylim(bottom=0, top=events * 1.3)
        events_ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
        events_ax.set_title("Failures and refusals", loc="left")
        events_ax.legend(loc="upper left", ncols=2)

        locator = mdates.AutoDateLocator(minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
        events_ax.xaxis.set_major_locator(locator)
        formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
        events_ax.xaxis.set_major_formatter(formatter)
        events_ax.set_xlim(days[0] - timedelta(days=1), days[-1] + timedelta(days=1))

        fig.suptitle(title, x=0.01, ha="left", fontsize=13, fontweight="bold", parse_math=False)
        fig.text(
            0.01, 0.005, report.summary(), fontsize=9, color="#333333", ha="left", va="bottom",
            parse_math=False,
        )  # fmt: skip
        fig.tight_layout(rect=(0, 0.03, 1, 0.97))
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()
