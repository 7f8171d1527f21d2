"""Text shown to members for a job: summary line, progress, result, endings.

Pure functions (no Discord calls) so the wording is tested in one place. Everything here
respects Discord's limits; the prompt echo is shortened, never the request itself.
"""

from __future__ import annotations

from datetime import datetime

import discord

from bot.providers.base import Mode, NegotiatedRequest

CONTENT_LIMIT = 2000
PROMPT_ECHO_LIMIT = 600

MODE_WORDS = {
    Mode.TEXT: "text-to-video",
    Mode.IMAGE: "image-to-video",
    Mode.FRAMES: "frame-to-video",
}


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def echo_prompt(prompt: str, limit: int = PROMPT_ECHO_LIMIT) -> str:
    """The member's prompt made inert for display: markdown escaped, mentions neutralised."""
    safe = discord.utils.escape_mentions(discord.utils.escape_markdown(shorten(prompt, limit)))
    return safe


def settings_line(req: NegotiatedRequest) -> str:
    parts = [
        MODE_WORDS.get(req.mode, str(req.mode)),
        f"{req.duration} s",
        f"{req.width}×{req.height}",
        f"{req.fps} fps",
        f"{req.provider} ({req.model})",
        "audio" if req.audio else "no audio",
    ]
    if req.seed is not None:
        parts.append(f"seed {req.seed}")
    return " · ".join(parts)


def allowance_words(left: float | None) -> str:
    if left is None:
        return "unlimited allowance"
    return f"{max(0, round(left))} s of your allowance left"


def public_header(req: NegotiatedRequest, *, job_id: int, user_id: int) -> str:
    """The public status message's first lines (no allowance figures: those are private)."""
    lines = [f"🎬 <@{user_id}> · **job {job_id}** · {settings_line(req)} · ${req.cost_usd:.2f}"]
    if req.adjustments:
        lines.append("Adjusted: " + "; ".join(a.describe() for a in req.adjustments))
    lines.append(f"> {echo_prompt(req.prompt, 300)}")
    return shorten_block("\n".join(lines))


def summary(
    req: NegotiatedRequest, *, job_id: int, allowance_left: float | None, position: int | None
) -> str:
    lines = [
        f"🎬 **Job {job_id}** — {settings_line(req)} · ${req.cost_usd:.2f} · "
        f"{allowance_words(allowance_left)}",
    ]
    if req.adjustments:
        lines.append("Adjusted: " + "; ".join(a.describe() for a in req.adjustments))
    lines.append(f"> {echo_prompt(req.prompt, 300)}")
    if position is not None and position > 0:
        lines.append(f"⏳ Queued — position {position}")
    else:
        lines.append("⏳ Starting…")
    return shorten_block("\n".join(lines))


def progress_line(
    *,
    state: str,
    elapsed_s: float,
    progress: float | None,
    eta_s: float | None,
    position: int | None = None,
) -> str:
    if position is not None and position > 0:
        return f"⏳ Queued — position {position} · {fmt_duration(elapsed_s)} elapsed"
    text = f"⚙️ {state} · {fmt_duration(elapsed_s)} elapsed"
    if progress is not None:
        text += f" · {progress * 100:.0f}%"
    if eta_s is not None and eta_s > 0:
        text += f" · about {fmt_duration(eta_s)} left"
    return text


def fmt_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def result_text(
    req: NegotiatedRequest, *, user_id: int, job_id: int, cost_usd: float, reencoded: bool
) -> str:
    lines = [
        f"<@{user_id}> your video is ready (job {job_id}).",
        f"> {echo_prompt(req.prompt)}",
        f"{settings_line(req)} · ${cost_usd:.2f}",
    ]
    if reencoded:
        lines.append("_Re-encoded to fit Discord's upload limit._")
    return shorten_block("\n".join(lines))


def ended_text(*, job_id: int, outcome: str, reason: str, refunded: bool) -> str:
    icon = {"cancelled": "🛑", "expired": "⌛"}.get(outcome, "❌")
    word = {"cancelled": "was cancelled", "expired": "expired"}.get(outcome, "failed")
    text = f"{icon} Job {job_id} {word}: {reason}"
    if refunded:
        text += " Your allowance was refunded."
    return shorten_block(text)


def shorten_block(text: str) -> str:
    return text if len(text) <= CONTENT_LIMIT else text[: CONTENT_LIMIT - 1] + "…"


def timestamp(dt: datetime, style: str = "R") -> str:
    return f"<t:{int(dt.timestamp())}:{style}>"
