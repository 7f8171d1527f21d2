"""`negotiate()`: what a member asked for → what a provider will really make, before
anything is spent.

`negotiate()` is generic: it is driven only by the provider's `ProviderLimits`. Every value
that ends up different from what the member asked for is listed once as an `Adjustment`
(requested → actual, with the reasons in plain words), so the member sees the final
duration / fps / resolution and the cost up front.

Order of changes (ByteCompute documents this order for its own server-side negotiation, and
we apply the same order so our quote matches what the server would do):

1. values outside what the provider offers are snapped (fps, duration, size, aspect ratio);
2. if the clip needs more work than `limits.max_pixel_frames` (width × height × fps × seconds),
   lower the fps first, then shorten toward the shortest duration, then scale the size down
   keeping the aspect ratio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.negotiation.sizes import (
    aspect_label,
    aspect_size,
    fit_size,
    nearest_aspect,
    parse_aspect,
    scale_to_budget,
    size_reason,
    size_text,
)
from bot.providers.base import (
    Adjustment,
    InputImage,
    InvalidRequestError,
    Mode,
    NegotiatedRequest,
    ProviderLimits,
    VideoRequest,
)

PricePerSecond = Callable[[int, int], float]

_LABELS = {
    "bytecompute": "ByteCompute",
    "leonardo": "Leonardo",
    "ltx": "LTX",
    "simulator": "The simulator",
}


def provider_label(provider: str) -> str:
    return _LABELS.get(provider, provider)


@dataclass
class _Change:
    requested: Any
    actual: Any
    reasons: list[str] = field(default_factory=list)


class _Changes:
    """Collects changes per field; one Adjustment per field, first requested value kept."""

    def __init__(self) -> None:
        self._by_field: dict[str, _Change] = {}

    def change(self, name: str, requested: Any, actual: Any, reason: str) -> None:
        entry = self._by_field.get(name)
        if entry is None:
            entry = self._by_field[name] = _Change(requested, actual)
        entry.actual = actual
        if reason and reason not in entry.reasons:
            entry.reasons.append(reason)

    def adjustments(self) -> list[Adjustment]:
        return [
            Adjustment(
                field=name,
                requested=entry.requested,
                actual=entry.actual,
                reason="; ".join(entry.reasons),
            )
            for name, entry in self._by_field.items()
            if entry.requested != entry.actual
        ]


def negotiate(
    request: VideoRequest,
    limits: ProviderLimits,
    *,
    provider: str,
    price_per_second: PricePerSecond,
) -> NegotiatedRequest:
    """Map `request` onto `limits`; raise InvalidRequestError for what no adjustment can fix."""
    label = provider_label(provider)
    _check_inputs(request, limits, label)
    changes = _Changes()
    model = limits.default_model

    fps = _choose_fps(request, limits, label, changes)
    durations = limits.durations_by_model.get(model, limits.durations)
    duration = _choose_duration(request, limits, durations, model, label, changes)
    width, height = _choose_size(request, limits, label, changes)

    if limits.max_pixel_frames:
        fps, duration, (width, height) = _fit_budget(
            limits, durations, fps, duration, (width, height), changes
        )

    aspect = aspect_label(width, height, limits.aspect_ratios)
    if request.aspect_ratio is not None and request.aspect_ratio != aspect:
        if request.resolution is not None:
            reason = "resolution takes priority over aspect_ratio"
        elif request.aspect_ratio not in limits.aspect_ratios:
            reason = f"{label} offers only {', '.join(limits.aspect_ratios)}"
        else:
            reason = f"the size was rounded to what {label} accepts"
        changes.change("aspect_ratio", request.aspect_ratio, aspect, reason)

    seed = request.seed
    if seed is not None and not limits.supports_seed:
        changes.change("seed", seed, None, f"{label} does not take a seed")
        seed = None
    audio = request.audio
    if not audio and not limits.supports_audio_toggle:
        changes.change("audio", False, True, f"{label} always makes clips with sound")
        audio = True

    return NegotiatedRequest(
        prompt=request.prompt,
        provider=provider,
        model=model,
        mode=request.mode,
        duration=duration,
        width=width,
        height=height,
        fps=fps,
        aspect_ratio=aspect if aspect in limits.aspect_ratios else None,
        seed=seed,
        audio=audio,
        image=request.image,
        first_frame=request.first_frame,
        last_frame=request.last_frame,
        adjustments=changes.adjustments(),
        cost_usd=clip_cost(price_per_second, width, height, duration),
    )


def clip_cost(price_per_second: PricePerSecond, width: int, height: int, duration: int) -> float:
    return round(price_per_second(width, height) * duration, 4)


# ----- validation ----------------------------------------------------------------------


def _check_inputs(request: VideoRequest, limits: ProviderLimits, label: str) -> None:
    if len(request.prompt) > limits.max_prompt_chars:
        raise InvalidRequestError(
            f"The prompt is {len(request.prompt)} characters long; {label} takes at most "
            f"{limits.max_prompt_chars}. Shorten it."
        )
    if request.mode is Mode.IMAGE and not limits.supports_image:
        raise InvalidRequestError(
            f"{label} cannot start from an image. Remove `image` or pick another provider."
        )
    if request.mode is Mode.FRAMES and not limits.supports_frames:
        raise InvalidRequestError(
            f"{label} cannot use first/last frames. Remove them or pick another provider."
        )
    if request.soundtrack is not None and not limits.supports_soundtrack:
        raise InvalidRequestError(
            f"{label} cannot make a clip to a soundtrack. Remove `soundtrack` or pick a "
            "provider that can (`provider:ltx`)."
        )
    if request.edit is not None and request.operation not in limits.edits:
        raise InvalidRequestError(f"{label} cannot {request.operation.value} a clip.")


# ----- fps and duration ----------------------------------------------------------------


def _nearest(options: Sequence[int], value: int) -> int:
    """The option closest to `value`; on a tie the smaller (cheaper) one."""
    return min(sorted(options), key=lambda option: abs(option - value))


def _choose_fps(request: VideoRequest, limits: ProviderLimits, label: str, ch: _Changes) -> int:
    wanted = request.fps if request.fps is not None else limits.default_fps
    fps = _nearest(limits.fps_options, wanted)
    if fps != wanted:
        if len(limits.fps_options) == 1:
            reason = f"{label} makes clips at {fps} fps only"
        else:
            offered = " or ".join(str(f) for f in sorted(limits.fps_options))
            reason = f"{label} offers {offered} fps"
        ch.change("fps", wanted, fps, reason)
    return fps


def _describe_durations(durations: Sequence[int]) -> str:
    values = sorted(durations)
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]} s"
    return ", ".join(str(v) for v in values[:-1]) + f" or {values[-1]} s"


def _choose_duration(
    request: VideoRequest,
    limits: ProviderLimits,
    durations: Sequence[int],
    model: str,
    label: str,
    ch: _Changes,
) -> int:
    if request.duration is None:
        return _nearest(durations, limits.default_duration)
    wanted = request.duration
    duration = _nearest(durations, wanted)
    if duration != wanted:
        who = f"{label} {model}" if model in limits.durations_by_model else label
        ch.change(
            "duration", wanted, duration, f"{who} makes clips of {_describe_durations(durations)}"
        )
    return duration


# ----- size (the geometry is in sizes.py) ----------------------------------------------


def _choose_size(
    request: VideoRequest, limits: ProviderLimits, label: str, ch: _Changes
) -> tuple[int, int]:
    requested = request.size
    if requested is not None:
        size = fit_size(limits, requested, label)
        if size != requested:
            reason = size_reason(limits, requested, label)
            ch.change("resolution", size_text(requested), size_text(size), reason)
        return size

    aspect = request.aspect_ratio
    if aspect is None:
        image = _first_image(request)
        if image is not None:
            aspect = nearest_aspect(image.width / image.height, limits.aspect_ratios)
        else:
            aspect = limits.default_aspect_ratio
    elif aspect not in limits.aspect_ratios:
        ratio = parse_aspect(aspect)
        if ratio is None:
            raise InvalidRequestError(
                f"aspect_ratio must look like 16:9; {label} offers "
                f"{', '.join(limits.aspect_ratios)}."
            )
        aspect = nearest_aspect(ratio, limits.aspect_ratios)
    return aspect_size(limits, aspect)


def _first_image(request: VideoRequest) -> InputImage | None:
    return request.image or request.first_frame


# ----- work budget ---------------------------------------------------------------------


def _fit_budget(
    limits: ProviderLimits,
    durations: Sequence[int],
    fps: int,
    duration: int,
    size: tuple[int, int],
    ch: _Changes,
) -> tuple[int, int, tuple[int, int]]:
    budget = limits.max_pixel_frames
    width, height = size

    def work(f: int, d: int, w: int, h: int) -> int:
        return w * h * f * d

    if work(fps, duration, width, height) <= budget:
        return fps, duration, size

    # 1. Frame rate: step down through the offered rates.
    start_fps = fps
    for lower in sorted((f for f in limits.fps_options if f < fps), reverse=True):
        fps = lower
        if work(fps, duration, width, height) <= budget:
            break
    if fps != start_fps:
        ch.change(
            "fps",
            start_fps,
            fps,
            f"{start_fps} fps needs too much GPU time at this size and length",
        )
    if work(fps, duration, width, height) <= budget:
        return fps, duration, size

    # 2. Duration: the longest allowed one that fits, else the shortest.
    start_duration = duration
    fitting = [d for d in durations if d < duration and work(fps, d, width, height) <= budget]
    duration = max(fitting) if fitting else min(durations)
    if duration != start_duration:
        ch.change(
            "duration",
            start_duration,
            duration,
            f"a {start_duration} s clip needs too much GPU time at this size and frame rate",
        )
    if work(fps, duration, width, height) <= budget:
        return fps, duration, size

    # 3. Resolution: scale down keeping the aspect ratio.
    new_size = scale_to_budget(limits, size, budget / (fps * duration))
    if new_size is None or work(fps, duration, *new_size) > budget:
        raise InvalidRequestError(
            "No size, length and frame rate this provider offers fits its GPU limit. "
            "Ask for a shorter or smaller clip."
        )
    ch.change(
        "resolution",
        size_text(size),
        size_text(new_size),
        f"{size_text(size)} needs too much GPU time for a {duration} s clip at {fps} fps",
    )
    return fps, duration, new_size
