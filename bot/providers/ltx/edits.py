"""Negotiation for what only the LTX API does, before anything is spent (PROVIDERS.md C.4,
C.10): audio-to-video, extend and retake, and the long-clip rule of text/image-to-video.

Every change from what the member asked is an `Adjustment`; the quote is what the spec
bills: audio-to-video per second of the soundtrack, retake per second of the input clip,
extend the new part plus the context frames it is given (sent explicitly, so the bill is
known: at most 505 frames, context at most 20 s).
"""

from __future__ import annotations

import math

from bot.negotiation import aspect_label
from bot.pricing import ltx_price_per_second
from bot.providers.base import (
    Adjustment,
    EditSpec,
    InputVideo,
    InvalidRequestError,
    Mode,
    NegotiatedRequest,
    Operation,
    VideoRequest,
)
from bot.providers.ltx.limits import (
    EDIT_MAX_SIZE,
    EDIT_MIN_FRAMES,
    EDIT_MODEL,
    EXTEND_MAX_CONTEXT_SECONDS,
    EXTEND_MAX_FRAMES,
    EXTEND_SECONDS,
    LONG_CLIP_FPS,
    LONG_CLIP_SECONDS,
    LONG_CLIP_SIZES,
    RETAKE_MIN_SECONDS,
    SOUNDTRACK_FPS,
    SOUNDTRACK_SECONDS,
)

LABEL = "LTX"
PROVIDER = "ltx"
ASPECTS = ("16:9", "9:16")


def fit_long_clip(req: NegotiatedRequest) -> NegotiatedRequest:
    """More than 10 s only at 1080p and 24/25 fps: keep the length, change size and rate."""
    if req.duration <= LONG_CLIP_SECONDS:
        return req
    changes: list[Adjustment] = []
    reason = f"{LABEL} makes clips over {LONG_CLIP_SECONDS} s only at 1080p, 24 or 25 fps"
    fps, width, height = req.fps, req.width, req.height
    if fps not in LONG_CLIP_FPS:
        fps = 25 if fps > 25 else 24
        changes.append(Adjustment(field="fps", requested=req.fps, actual=fps, reason=reason))
    if (width, height) not in LONG_CLIP_SIZES:
        width, height = LONG_CLIP_SIZES[0] if width >= height else LONG_CLIP_SIZES[1]
        changes.append(
            Adjustment(
                field="resolution",
                requested=req.resolution,
                actual=f"{width}x{height}",
                reason=reason,
            )
        )
    if not changes:
        return req
    kept = [a for a in req.adjustments if a.field not in {c.field for c in changes}]
    merged = []
    for change in changes:
        earlier = next((a for a in req.adjustments if a.field == change.field), None)
        if earlier is not None:
            change = change.model_copy(update={"requested": earlier.requested})
        if change.requested != change.actual:
            merged.append(change)
    rate = ltx_price_per_second(width, height, model=req.model)
    return req.model_copy(
        update={
            "fps": fps,
            "width": width,
            "height": height,
            "adjustments": kept + merged,
            "cost_usd": round(rate * req.duration, 4),
        }
    )


def _orientation_size(landscape: bool) -> tuple[int, int]:
    return (1920, 1080) if landscape else (1080, 1920)


def negotiate_soundtrack(request: VideoRequest) -> NegotiatedRequest:
    """Audio-to-video: the clip lasts as long as the soundtrack, 1080p, 25 fps, pro."""
    audio = request.soundtrack
    assert audio is not None
    low, high = SOUNDTRACK_SECONDS
    if not low <= audio.duration_s <= high:
        raise InvalidRequestError(
            f"The soundtrack is {audio.duration_s:.1f} s long; {LABEL} takes {low:g}–{high:g} s. "
            "Trim it and attach it again."
        )
    changes: list[Adjustment] = []
    seconds = math.ceil(audio.duration_s - 1e-6)
    if request.duration is not None and request.duration != seconds:
        changes.append(
            Adjustment(
                field="duration",
                requested=request.duration,
                actual=seconds,
                reason="the clip is as long as the soundtrack",
            )
        )
    if request.fps is not None and request.fps != SOUNDTRACK_FPS:
        changes.append(
            Adjustment(
                field="fps",
                requested=request.fps,
                actual=SOUNDTRACK_FPS,
                reason=f"{LABEL} makes soundtrack clips at {SOUNDTRACK_FPS} fps",
            )
        )
    if request.size is not None:
        landscape = request.size[0] >= request.size[1]
    elif request.aspect_ratio is not None:
        landscape = request.aspect_ratio != "9:16" and not request.aspect_ratio.startswith(
            ("3:4", "4:5")
        )
    elif request.image is not None:
        landscape = request.image.width >= request.image.height
    else:
        landscape = True
    width, height = _orientation_size(landscape)
    asked = request.resolution or request.aspect_ratio
    actual = f"{width}x{height}" if request.resolution else aspect_label(width, height, ASPECTS)
    if asked is not None and asked != actual:
        changes.append(
            Adjustment(
                field="resolution" if request.resolution else "aspect_ratio",
                requested=asked,
                actual=actual,
                reason=f"{LABEL} makes soundtrack clips at 1920x1080 or 1080x1920",
            )
        )
    if not request.audio:
        changes.append(
            Adjustment(
                field="audio",
                requested=False,
                actual=True,
                reason="the soundtrack is the clip's sound",
            )
        )
    rate = ltx_price_per_second(width, height, model=EDIT_MODEL, edit=True)
    return NegotiatedRequest(
        prompt=request.prompt,
        provider=PROVIDER,
        model=EDIT_MODEL,
        mode=request.mode,
        operation=Operation.AUDIO,
        duration=seconds,
        width=width,
        height=height,
        fps=SOUNDTRACK_FPS,
        aspect_ratio=aspect_label(width, height, ASPECTS),
        audio=True,
        image=request.image,
        soundtrack=audio,
        adjustments=changes,
        # Billed per second of input audio.
        cost_usd=round(rate * audio.duration_s, 4),
        extra={"billed_seconds": round(audio.duration_s, 3)},
    )


def _check_source(source: InputVideo, *, extend: bool) -> None:
    if source.frames < EDIT_MIN_FRAMES:
        raise InvalidRequestError(
            f"That clip has {source.frames} frames; {LABEL} edits clips of at least "
            f"{EDIT_MIN_FRAMES} frames (about 3 s). Make a longer clip first."
        )
    long_edge, short_edge = max(source.width, source.height), min(source.width, source.height)
    if long_edge > EDIT_MAX_SIZE[0] or short_edge > EDIT_MAX_SIZE[1]:
        raise InvalidRequestError(f"{LABEL} edits clips up to 3840x2160 only.")
    ratio = source.width / source.height
    if extend and not any(abs(ratio / r - 1) < 0.03 for r in (16 / 9, 9 / 16)):
        raise InvalidRequestError(f"{LABEL} extends 16:9 and 9:16 clips only.")


def negotiate_edit(request: VideoRequest) -> NegotiatedRequest:
    edit = request.edit
    assert edit is not None
    _check_source(edit.source, extend=edit.kind == "extend")
    if edit.kind == "extend":
        return _extend(request, edit)
    return _retake(request, edit)


def _extend(request: VideoRequest, edit: EditSpec) -> NegotiatedRequest:
    source = edit.source
    fps = source.fps or 24.0
    changes: list[Adjustment] = []
    low, high = EXTEND_SECONDS
    # Context + extension ≤ 505 frames of the input: keep at least one second of context.
    most = min(high, math.floor(EXTEND_MAX_FRAMES / fps - 1.0))
    seconds = int(min(max(round(edit.seconds), low), most))
    if seconds < low:
        raise InvalidRequestError(f"{LABEL} cannot extend a clip of {fps:g} fps.")
    if seconds != edit.seconds:
        changes.append(
            Adjustment(
                field="duration",
                requested=edit.seconds,
                actual=seconds,
                reason=f"{LABEL} adds {low}–{most} s to a {fps:g} fps clip",
            )
        )
    room = EXTEND_MAX_FRAMES / fps - seconds
    context = math.floor(min(source.duration_s, EXTEND_MAX_CONTEXT_SECONDS, room) * 100) / 100
    billed = min(seconds + context, EXTEND_MAX_FRAMES / fps)
    rate = ltx_price_per_second(source.width, source.height, model=EDIT_MODEL, edit=True)
    return NegotiatedRequest(
        prompt=request.prompt,
        provider=PROVIDER,
        model=EDIT_MODEL,
        mode=Mode.TEXT,
        operation=Operation.EXTEND,
        duration=seconds,
        width=source.width,  # "the output video preserves the input video's resolution"
        height=source.height,
        fps=round(fps),
        aspect_ratio=aspect_label(source.width, source.height, ASPECTS),
        audio=True,
        edit=edit.model_copy(update={"seconds": float(seconds)}),
        adjustments=changes,
        cost_usd=round(rate * billed, 4),
        extra={"context_seconds": context, "billed_seconds": round(billed, 3)},
    )


def _retake(request: VideoRequest, edit: EditSpec) -> NegotiatedRequest:
    source = edit.source
    length = source.duration_s
    changes: list[Adjustment] = []
    if length < RETAKE_MIN_SECONDS:
        raise InvalidRequestError(f"{LABEL} retakes at least {RETAKE_MIN_SECONDS:g} s.")
    start = edit.start
    if start > length - RETAKE_MIN_SECONDS:
        raise InvalidRequestError(
            f"The clip is {length:.1f} s long: start the retake at "
            f"{length - RETAKE_MIN_SECONDS:.1f} s or earlier."
        )
    seconds = edit.seconds
    if seconds < RETAKE_MIN_SECONDS:
        raise InvalidRequestError(
            f"{LABEL} retakes sections of at least {RETAKE_MIN_SECONDS:g} s; widen the range."
        )
    if start + seconds > length + 0.01:
        new = math.floor((length - start) * 100) / 100
        changes.append(
            Adjustment(
                field="retake_end",
                requested=round(start + seconds, 2),
                actual=round(start + new, 2),
                reason=f"the clip ends at {length:.2f} s",
            )
        )
        seconds = new
    width, height = _orientation_size(source.width >= source.height)
    rate = ltx_price_per_second(width, height, model=EDIT_MODEL, edit=True)
    return NegotiatedRequest(
        prompt=request.prompt,
        provider=PROVIDER,
        model=EDIT_MODEL,
        mode=Mode.TEXT,
        operation=Operation.RETAKE,
        duration=max(1, math.ceil(seconds - 1e-6)),
        width=width,
        height=height,
        fps=round(source.fps or 24),
        aspect_ratio=aspect_label(width, height, ASPECTS),
        audio=True,
        edit=edit.model_copy(update={"seconds": seconds}),
        adjustments=changes,
        # Billed per second of the input clip.
        cost_usd=round(rate * length, 4),
        extra={"billed_seconds": round(length, 3)},
    )
