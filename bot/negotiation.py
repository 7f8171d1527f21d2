"""Turn what a member asked for into what a provider will really make, before anything is spent.

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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.providers.base import (
    Adjustment,
    InputImage,
    InvalidRequestError,
    Mode,
    NegotiatedRequest,
    ProviderLimits,
    VideoRequest,
    parse_resolution,
)

PricePerSecond = Callable[[int, int], float]

_LABELS = {"bytecompute": "ByteCompute", "leonardo": "Leonardo", "simulator": "The simulator"}
# Two sizes whose width/height ratios differ by less than this count as the same aspect preset.
_ASPECT_TOLERANCE = 0.03


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


# ----- size ----------------------------------------------------------------------------


def parse_aspect(text: str) -> float | None:
    parts = text.replace(" ", "").split(":")
    # isdecimal() and a length cap: int() reads every part that passes (see parse_resolution).
    if len(parts) != 2 or not all(p.isdecimal() and len(p) <= 10 and int(p) > 0 for p in parts):
        return None
    return int(parts[0]) / int(parts[1])


def aspect_label(width: int, height: int, presets: Sequence[str]) -> str:
    """The preset name matching a size (within 3 %), else the reduced ratio ("5:3")."""
    ratio = width / height
    best: tuple[float, str] | None = None
    for preset in presets:
        value = parse_aspect(preset)
        if value is None:
            continue
        distance = abs(math.log(ratio / value))
        if distance <= math.log1p(_ASPECT_TOLERANCE) and (best is None or distance < best[0]):
            best = (distance, preset)
    if best is not None:
        return best[1]
    g = math.gcd(width, height)
    return f"{width // g}:{height // g}"


def _nearest_aspect(ratio: float, presets: Sequence[str]) -> str:
    def distance(preset: str) -> float:
        value = parse_aspect(preset)
        return math.inf if value is None else abs(math.log(ratio / value))

    return min(presets, key=distance)


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _aspect_size(limits: ProviderLimits, aspect: str) -> tuple[int, int]:
    if aspect in limits.aspect_sizes:
        return limits.aspect_sizes[aspect]
    ratio = parse_aspect(aspect) or 16 / 9
    if limits.sizes:
        return min(limits.sizes, key=lambda s: abs(math.log(s[0] / s[1] / ratio)))
    # Rule-based: the largest grid size of this aspect inside the box.
    box_w, box_h = _box(limits, landscape=ratio >= 1)
    scale = min(box_w / ratio, box_h)
    return _snap(limits, ratio * scale, scale, landscape=ratio >= 1)


def _choose_size(
    request: VideoRequest, limits: ProviderLimits, label: str, ch: _Changes
) -> tuple[int, int]:
    requested = request.size
    if requested is not None:
        size = _fit_size(limits, requested, label)
        if size != requested:
            reason = _size_reason(limits, requested, label)
            ch.change("resolution", _size_text(requested), _size_text(size), reason)
        return size

    aspect = request.aspect_ratio
    if aspect is None:
        image = _first_image(request)
        if image is not None:
            aspect = _nearest_aspect(image.width / image.height, limits.aspect_ratios)
        else:
            aspect = limits.default_aspect_ratio
    elif aspect not in limits.aspect_ratios:
        ratio = parse_aspect(aspect)
        if ratio is None:
            raise InvalidRequestError(
                f"aspect_ratio must look like 16:9; {label} offers "
                f"{', '.join(limits.aspect_ratios)}."
            )
        aspect = _nearest_aspect(ratio, limits.aspect_ratios)
    return _aspect_size(limits, aspect)


def _first_image(request: VideoRequest) -> InputImage | None:
    return request.image or request.first_frame


def _box(limits: ProviderLimits, *, landscape: bool) -> tuple[int, int]:
    """The largest width × height for this orientation (the max box in either orientation)."""
    long_edge = max(limits.max_width, limits.max_height) or 1 << 16
    short_edge = min(limits.max_width, limits.max_height) or 1 << 16
    return (long_edge, short_edge) if landscape else (short_edge, long_edge)


def _edge_range(limits: ProviderLimits, box_edge: int) -> tuple[int, int]:
    m = max(limits.size_multiple, 1)
    low = math.ceil(max(limits.min_edge, m) / m) * m
    high = box_edge // m * m
    return low, high


def _snap(
    limits: ProviderLimits, width: float, height: float, *, landscape: bool, down: bool = False
) -> tuple[int, int]:
    """Round a size onto the provider's grid (named sizes kept as they are), inside the box."""
    rounded = (round(width), round(height))
    if rounded in limits.named_sizes:
        return rounded
    m = max(limits.size_multiple, 1)
    box = _box(limits, landscape=landscape)
    highs = [_edge_range(limits, edge)[1] for edge in box]
    rounding = math.floor if down else round
    if any(rounding(v / m) * m > hi for v, hi in zip((width, height), highs, strict=True)):
        # Rounding up would leave the box: shrink both edges instead of clamping one.
        scale = min(hi / v for v, hi in zip((width, height), highs, strict=True))
        width, height = width * scale, height * scale
        down = True
    out = []
    for value, box_edge in zip((width, height), box, strict=True):
        low, high = _edge_range(limits, box_edge)
        step = math.floor(value / m + 1e-9) if down else round(value / m)
        out.append(min(max(step * m, low), high))
    return out[0], out[1]


def _fit_size(limits: ProviderLimits, requested: tuple[int, int], label: str) -> tuple[int, int]:
    width, height = requested
    if limits.sizes:
        if requested in limits.sizes:
            return requested
        ratio = width / height
        pixels = width * height

        def distance(size: tuple[int, int]) -> tuple[float, float]:
            return (
                round(abs(math.log(size[0] / size[1] / ratio)), 6),
                abs(math.log(size[0] * size[1] / pixels)),
            )

        return min(limits.sizes, key=distance)

    landscape = width >= height
    box_w, box_h = _box(limits, landscape=landscape)
    w, h = float(width), float(height)
    if w > box_w or h > box_h:
        scale = min(box_w / w, box_h / h)
        fitted = (round(w * scale), round(h * scale))
        if fitted in limits.named_sizes:
            return fitted
        # Scale into the largest on-grid box, so rounding cannot bend the aspect ratio.
        m = max(limits.size_multiple, 1)
        scale = min(box_w // m * m / w, box_h // m * m / h)
        w, h = w * scale, h * scale
    if limits.min_edge and min(w, h) < limits.min_edge:
        scale = limits.min_edge / min(w, h)
        w, h = min(w * scale, box_w), min(h * scale, box_h)
    return _snap(limits, w, h, landscape=landscape)


def _size_reason(limits: ProviderLimits, requested: tuple[int, int], label: str) -> str:
    if limits.sizes:
        offered = ", ".join(_size_text(s) for s in limits.sizes)
        return f"{label} offers only {offered}"
    width, height = requested
    box_w, box_h = _box(limits, landscape=width >= height)
    reasons = []
    if width > box_w or height > box_h:
        reasons.append(f"{label} makes at most {limits.max_width}x{limits.max_height}")
    if limits.min_edge and min(width, height) < limits.min_edge:
        reasons.append(f"the shortest edge must be at least {limits.min_edge} px")
    if not reasons:
        reasons.append(f"{label} needs both edges to be multiples of {limits.size_multiple} px")
    return "; ".join(reasons)


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
    new_size = _scale_to_budget(limits, size, budget / (fps * duration))
    if new_size is None or work(fps, duration, *new_size) > budget:
        raise InvalidRequestError(
            "No size, length and frame rate this provider offers fits its GPU limit. "
            "Ask for a shorter or smaller clip."
        )
    ch.change(
        "resolution",
        _size_text(size),
        _size_text(new_size),
        f"{_size_text(size)} needs too much GPU time for a {duration} s clip at {fps} fps",
    )
    return fps, duration, new_size


def _scale_to_budget(
    limits: ProviderLimits, size: tuple[int, int], max_pixels: float
) -> tuple[int, int] | None:
    width, height = size
    landscape = width >= height
    if limits.sizes:
        same_side = [s for s in limits.sizes if (s[0] >= s[1]) == landscape]
        fitting = [s for s in same_side if s[0] * s[1] <= max_pixels]
        return max(fitting, key=lambda s: s[0] * s[1]) if fitting else None
    scale = math.sqrt(max_pixels / (width * height))
    snapped = _snap(limits, width * scale, height * scale, landscape=landscape, down=True)
    if snapped[0] * snapped[1] <= max_pixels:
        return snapped
    # Keeping the aspect ratio would cut the short edge below the minimum: keep the short
    # edge at the minimum and shorten the long edge (the clip gets closer to square).
    m = max(limits.size_multiple, 1)
    low, _ = _edge_range(limits, 1 << 16)
    long_edge = math.floor(max_pixels / low / m) * m
    if long_edge < low:
        return None
    return (long_edge, low) if landscape else (low, long_edge)


# ----- provider-reported adjustments ---------------------------------------------------


def merge_adjustments(
    request: NegotiatedRequest,
    reported: Sequence[Adjustment],
    *,
    price_per_second: PricePerSecond | None = None,
) -> NegotiatedRequest:
    """Fold adjustments a provider reported after submit into the request (and its cost).

    Recognised fields (fps, duration, resolution/size, width, height) update the values;
    every reported adjustment is appended unless the same field → value is already listed.
    """
    update: dict[str, Any] = {}
    for adj in reported:
        name = adj.field.lower()
        if name in ("fps", "duration"):
            number = _as_int(adj.actual)
            if number is not None and number > 0:
                update[name] = number
        elif name in ("resolution", "size"):
            parsed = parse_resolution(str(adj.actual)) if adj.actual is not None else None
            if parsed is not None:
                update["width"], update["height"] = parsed
        elif name in ("width", "height"):
            number = _as_int(adj.actual)
            if number is not None and number > 0:
                update[name] = number
    known = {(a.field, str(a.actual)) for a in request.adjustments}
    merged = list(request.adjustments)
    merged.extend(a for a in reported if (a.field, str(a.actual)) not in known)
    update["adjustments"] = merged
    result = request.model_copy(update=update)
    if price_per_second is not None:
        result = result.model_copy(
            update={
                "cost_usd": clip_cost(
                    price_per_second, result.width, result.height, result.duration
                )
            }
        )
    return result


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("fps").removesuffix("s").strip()
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number.is_integer() else None
    return None
