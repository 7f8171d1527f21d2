"""Text shown to members for a job: summary, status, progress, result, endings.

Pure functions (no Discord calls) so the wording is tested in one place. Everything here
respects Discord's limits (2,000 characters of content); the prompt echo is shortened,
never the request itself, and made inert (markdown escaped, mentions broken) — the
messages are also sent with `AllowedMentions` that allow at most the requester.
"""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.providers.base import Adjustment, Mode, NegotiatedRequest, Operation

CONTENT_LIMIT = 2000
PROMPT_ECHO_LIMIT = 600
HEADER_ECHO_LIMIT = 300

MODE_WORDS = {
    Mode.TEXT: "text-to-video",
    Mode.IMAGE: "image-to-video",
    Mode.FRAMES: "frame-to-video",
}
FIELD_WORDS = {"aspect_ratio": "aspect ratio", "fps": "frame rate"}
UNITS = {"duration": " s", "fps": " fps"}


def shorten(text: str, limit: int) -> str:
    """Whitespace collapsed, cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def shorten_block(text: str) -> str:
    """A whole message cut to Discord's content limit (line breaks kept)."""
    return text if len(text) <= CONTENT_LIMIT else text[: CONTENT_LIMIT - 1] + "…"


def echo_prompt(prompt: str, limit: int = PROMPT_ECHO_LIMIT) -> str:
    """The member's prompt made inert for display: markdown escaped, mentions neutralised."""
    short = shorten(prompt, limit)
    safe = discord.utils.escape_mentions(discord.utils.escape_markdown(short))
    # Escaping can lengthen the text a little; never break Discord's limits because of it.
    return safe if len(safe) <= limit + 50 else safe[: limit + 49] + "…"


def quote(text: str) -> str:
    return f"> {text}"


def operation_words(req: NegotiatedRequest) -> str:
    """`text-to-video`, `audio-to-video (image)`, `extend job 12 (+5 s at the end)`, ..."""
    mode = MODE_WORDS.get(req.mode, str(req.mode))
    edit = req.edit
    if req.operation is Operation.AUDIO:
        return "audio-to-video" + (" from an image" if req.image is not None else "")
    if edit is not None and req.operation is Operation.EXTEND:
        of = f" job {edit.source_job_id}" if edit.source_job_id else ""
        return f"extend{of} (+{edit.seconds:g} s at the {edit.where})"
    if edit is not None and req.operation is Operation.RETAKE:
        of = f" job {edit.source_job_id}" if edit.source_job_id else ""
        end = edit.start + edit.seconds
        return f"retake{of} ({edit.redo}, {edit.start:g}–{end:g} s)"
    return mode


def settings_line(req: NegotiatedRequest) -> str:
    """What will be (or was) made, e.g. `text-to-video · 5 s · 1280×720 · 25 fps · …`."""
    parts = [
        operation_words(req),
        f"{req.duration} s",
        f"{req.width}×{req.height}",
        f"{req.fps} fps",
        req.provider if req.model in ("", req.provider) else f"{req.provider} ({req.model})",
        "with sound" if req.audio else "no sound",
    ]
    if req.seed is not None:
        parts.append(f"seed {req.seed}")
    return " · ".join(parts)


def _value(name: str, value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, str) and "x" in value and name in ("resolution", "size"):
        return value.replace("x", "×")
    return f"{value}{UNITS.get(name, '')}"


def adjustment_words(adj: Adjustment) -> str:
    """One adjustment in plain words: `frame rate 50 fps → 25 fps (reason)`."""
    name = FIELD_WORDS.get(adj.field, adj.field)
    text = f"{name} {_value(adj.field, adj.requested)} → {_value(adj.field, adj.actual)}"
    return f"{text} ({adj.reason})" if adj.reason else text


def adjustments_line(adjustments: Sequence[Adjustment]) -> str | None:
    if not adjustments:
        return None
    return "Adjusted: " + "; ".join(adjustment_words(a) for a in adjustments)


def allowance_words(left: float | None) -> str:
    if left is None:
        return "unlimited allowance"
    return f"{max(0, round(left))} s of your allowance left"


def summary(req: NegotiatedRequest, *, job_id: int, allowance_left: float | None) -> str:
    """The private (ephemeral) confirmation: settings, adjustments, cost, allowance left."""
    lines = [
        f"🎬 **Job {job_id}** — {settings_line(req)} · ${req.cost_usd:.2f} · "
        f"{allowance_words(allowance_left)}",
    ]
    adjusted = adjustments_line(req.adjustments)
    if adjusted:
        lines.append(adjusted)
    lines.append(quote(echo_prompt(req.prompt, HEADER_ECHO_LIMIT)))
    lines.append("Progress and the video appear in this channel; **Cancel** stops it.")
    return shorten_block("\n".join(lines))


def ended_summary(
    req: NegotiatedRequest, *, job_id: int, outcome: str, allowance_left: float | None
) -> str:
    """The private confirmation once a job ended without a video (refund included)."""
    icon, word = _ENDINGS.get(outcome, _ENDINGS["failed"])
    return shorten_block(
        f"{icon} **Job {job_id}** {word} — {settings_line(req)}\n"
        f"Nothing was charged; {allowance_words(allowance_left)}."
    )


def public_header(
    req: NegotiatedRequest,
    *,
    job_id: int,
    user_id: int,
    adjustments: Sequence[Adjustment] | None = None,
    cost_usd: float | None = None,
) -> str:
    """The public status message's first lines (no allowance figures: those are private).

    `adjustments` / `cost_usd`: the job's current ones (a provider may report changes after
    submission); default: the negotiated request's.
    """
    cost = req.cost_usd if cost_usd is None else cost_usd
    lines = [f"🎬 <@{user_id}> · **job {job_id}** · {settings_line(req)} · ${cost:.2f}"]
    adjusted = adjustments_line(req.adjustments if adjustments is None else adjustments)
    if adjusted:
        lines.append(adjusted)
    lines.append(quote(echo_prompt(req.prompt, HEADER_ECHO_LIMIT)))
    return shorten_block("\n".join(lines))


def fmt_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def progress_line(
    *,
    state: str,
    elapsed_s: float,
    progress: float | None = None,
    eta_s: float | None = None,
    position: int | None = None,
) -> str:
    """`⏳ Queued — position 3 · 12s elapsed` or `⚙️ Rendering · 40% · about 20s left`."""
    if position is not None and position > 0:
        return f"⏳ Queued — position {position} · {fmt_duration(elapsed_s)} elapsed"
    text = f"⚙️ {state.capitalize()} · {fmt_duration(elapsed_s)} elapsed"
    if progress is not None and 0 < progress < 1:
        text += f" · {progress * 100:.0f}%"
    if eta_s is not None and eta_s >= 1:
        text += f" · about {fmt_duration(eta_s)} left"
    return text


def status_text(header: str, line: str) -> str:
    return shorten_block(f"{header}\n{line}" if header else line)


def result_text(
    req: NegotiatedRequest,
    *,
    user_id: int,
    job_id: int,
    cost_usd: float,
    reencoded: bool,
    seconds: float | None = None,
) -> str:
    """The message with the clip: requester mention, prompt, settings, seed, provider, cost."""
    if seconds is not None and abs(seconds - req.duration) >= 0.5:
        req = req.model_copy(update={"duration": round(seconds)})
    lines = [
        f"<@{user_id}> your video is ready (job {job_id}).",
        quote(echo_prompt(req.prompt)),
        f"{settings_line(req)} · ${cost_usd:.2f}",
    ]
    if reencoded:
        lines.append("-# Re-encoded to fit this server's upload limit.")
    return shorten_block("\n".join(lines))


_ENDINGS = {
    "cancelled": ("🛑", "was cancelled"),
    "expired": ("⌛", "expired"),
    "failed": ("❌", "failed"),
}


def ended_text(*, job_id: int, outcome: str, reason: str, refunded: bool) -> str:
    """`❌ Job 3 failed: <reason>. Nothing was charged: …` (public)."""
    icon, word = _ENDINGS.get(outcome, _ENDINGS["failed"])
    reason = discord.utils.escape_mentions(shorten(reason, 500)).rstrip(".")
    text = f"{icon} Job {job_id} {word}: {reason}." if reason else f"{icon} Job {job_id} {word}."
    if refunded:
        text += " Nothing was charged: its seconds are back in the allowance."
    return shorten_block(text)


def missing_permissions_text(missing: Sequence[str]) -> str:
    names = ", ".join(f"**{m}**" for m in missing)
    return (
        f"I can't post videos in this channel: I'm missing {names} here. "
        "Ask an admin to grant them, or use `/video` in another channel."
    )
