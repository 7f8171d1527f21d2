"""Size geometry on a provider's grid: aspect presets, snapping a size onto the allowed
sizes or multiples inside the max box, and scaling a size down to a pixel budget."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bot.providers.base import ProviderLimits

# Two sizes whose width/height ratios differ by less than this count as the same aspect preset.
_ASPECT_TOLERANCE = 0.03


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


def nearest_aspect(ratio: float, presets: Sequence[str]) -> str:
    def distance(preset: str) -> float:
        value = parse_aspect(preset)
        return math.inf if value is None else abs(math.log(ratio / value))

    return min(presets, key=distance)


def size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def aspect_size(limits: ProviderLimits, aspect: str) -> tuple[int, int]:
    if aspect in limits.aspect_sizes:
        return limits.aspect_sizes[aspect]
    ratio = parse_aspect(aspect) or 16 / 9
    if limits.sizes:
        return min(limits.sizes, key=lambda s: abs(math.log(s[0] / s[1] / ratio)))
    # Rule-based: the largest grid size of this aspect inside the box.
    box_w, box_h = _box(limits, landscape=ratio >= 1)
    scale = min(box_w / ratio, box_h)
    return _snap(limits, ratio * scale, scale, landscape=ratio >= 1)


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


def fit_size(limits: ProviderLimits, requested: tuple[int, int], label: str) -> tuple[int, int]:
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


def size_reason(limits: ProviderLimits, requested: tuple[int, int], label: str) -> str:
    if limits.sizes:
        offered = ", ".join(size_text(s) for s in limits.sizes)
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


def scale_to_budget(
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
