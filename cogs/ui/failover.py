"""Text of provider failover and health: the summary line of a switched job, the offer of an
alternative provider, the refusal when none can, and `/videoadmin provider status`.

Pure functions (no Discord calls). Reasons come from `bot.jobs.health` (never a secret) and
are made inert; times are Discord timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.jobs.failover import NoProviderFound, Plan, Switch
from bot.jobs.health import ProviderHealth, Verdict
from cogs.ui import text as render
from cogs.ui.modlog import inert
from cogs.ui.timefmt import discord_time

REASON_LIMIT = 300


def failing_words(name: str, verdict: Verdict) -> str:
    """`` `bytecompute` is failing (its circuit breaker is open …, since <t:…:R>)``."""
    since = f", since {discord_time(verdict.since, 'R')}" if verdict.since is not None else ""
    return f"`{name}` is failing ({inert(verdict.reason, REASON_LIMIT)}{since})"


def switch_line(switch: Switch, provider: str) -> str:
    """The first line of a switched job's summary."""
    how = "the server's fallback order picked" if switch.automatic else "you accepted"
    return f"↪️ {failing_words(switch.asked, switch.verdict)}, so {how} `{provider}` for this clip."


def offer_text(plan: Plan) -> str:
    """The ephemeral offer: why, what the alternative would make and what it costs."""
    assert plan.switch is not None
    req = plan.request
    lines = [
        f"⚠️ {failing_words(plan.switch.asked, plan.switch.verdict)}, so your clip would "
        "not start for a while.",
        f"`{req.provider}` can make it now: {render.settings_line(req)} · **${req.cost_usd:.2f}**",
    ]
    adjusted = render.adjustments_line(req.adjustments)
    if adjusted:
        lines.append(adjusted)
    lines.append(render.quote(render.echo_prompt(req.prompt, render.HEADER_ECHO_LIMIT)))
    lines.append(
        f"Press **Use {req.provider}** to make it there, or **Cancel**. Nothing is reserved "
        "or charged until you accept."
    )
    return render.shorten_block("\n".join(lines))


def no_provider_text(found: NoProviderFound) -> str:
    """The refusal when the asked provider fails and no other can make the request."""
    lines = [
        f"{failing_words(found.asked, found.verdict)}, and no other provider here can make"
        " this clip right now. Try again later; nothing was charged."
    ]
    for skipped in found.skipped:
        if skipped.verdict is not None:
            lines.append(f"• {failing_words(skipped.provider, skipped.verdict)}")
        else:
            lines.append(f"• `{skipped.provider}`: {inert(skipped.reason, REASON_LIMIT)}")
    return render.shorten_block("\n".join(lines))


def health_line(item: ProviderHealth) -> str:
    """One provider in `/videoadmin provider status`."""
    if item.verdict.failing:
        head = f"🔴 **{item.name}** — {failing_words(item.name, item.verdict)}"
    else:
        head = f"🟢 **{item.name}** — healthy"
    parts = []
    if item.budget is not None:
        b = item.budget
        parts.append(
            f"budget: {b.calls_last_minute} calls in the last minute of "
            f"{b.calls_per_minute:g}/min · {b.slots_used}/{b.slots} job slots · {b.queued} queued"
        )
        if b.paused_seconds > 0:
            parts.append(f"calls paused for {b.paused_seconds:.0f} s more")
    else:
        parts.append("budget: the job tracker is not running")
    if item.latency_p50 is not None:
        jobs = f"{item.latency_jobs} job{'s' if item.latency_jobs != 1 else ''}"
        parts.append(
            f"latency p50 {render.fmt_duration(item.latency_p50)} (submit → result, last {jobs})"
        )
    else:
        parts.append("latency: no finished jobs in the last day")
    return head + "\n  " + " · ".join(parts)


def status_text(items: Sequence[ProviderHealth], order: Sequence[str]) -> str:
    fallback = " → ".join(f"`{n}`" for n in order) if order else "none (members are offered one)"
    lines = [f"**Providers** · fallback order: {fallback}"]
    lines.extend(health_line(item) for item in items)
    if not items:
        lines.append("No provider is configured.")
    return render.shorten_block("\n".join(lines))
