from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.negotiation import aspect_label, merge_adjustments, negotiate
from bot.pricing import (
    LEONARDO_FAST,
    LEONARDO_PRO,
    bytecompute_price_per_second,
    leonardo_price_per_second,
)
from bot.providers import bytecompute, leonardo
from bot.providers.base import (
    Adjustment,
    InputImage,
    InvalidRequestError,
    Mode,
    NegotiatedRequest,
    ProviderLimits,
    VideoRequest,
)

BC = bytecompute.LIMITS
BC_NAMED = {(1920, 1080), (1080, 1920), (1280, 720), (720, 1280)}
LEO_SIZES = {(1920, 1080), (1080, 1920), (2560, 1440), (1440, 2560), (3840, 2160), (2160, 3840)}


def bc(**kw: Any) -> NegotiatedRequest:
    request = VideoRequest(prompt=kw.pop("prompt", "a cat"), provider="bytecompute", **kw)
    return negotiate(
        request, BC, provider="bytecompute", price_per_second=bytecompute_price_per_second
    )


def leo(model: str = LEONARDO_FAST, **kw: Any) -> NegotiatedRequest:
    request = VideoRequest(prompt=kw.pop("prompt", "a cat"), provider="leonardo", **kw)

    def price(w: int, h: int) -> float:
        return leonardo_price_per_second(w, h, model=model)

    return negotiate(
        request, leonardo.limits_for(model), provider="leonardo", price_per_second=price
    )


def image(width: int, height: int) -> InputImage:
    return InputImage(
        path=Path("/nonexistent.png"), mime="image/png", width=width, height=height, sha256="0"
    )


def changed(result: NegotiatedRequest) -> dict[str, tuple[Any, Any]]:
    return {a.field: (a.requested, a.actual) for a in result.adjustments}


# ----- ByteCompute ---------------------------------------------------------------------


def test_defaults_are_the_cheap_sd_clip() -> None:
    result = bc()
    assert (result.width, result.height, result.fps, result.duration) == (1280, 720, 25, 5)
    assert result.aspect_ratio == "16:9"
    assert result.model == "Lightricks/LTX-2.3"
    assert result.mode is Mode.TEXT
    assert result.adjustments == []
    assert result.cost_usd == pytest.approx(0.10)


def test_largest_documented_clip_at_25_fps_fits_the_budget() -> None:
    result = bc(resolution="1920x1080", fps=25, duration=10)
    assert (result.resolution, result.fps, result.duration) == ("1920x1080", 25, 10)
    assert result.adjustments == []
    assert result.cost_usd == pytest.approx(0.40)


def test_50_fps_at_1080p_for_10s_drops_to_25_fps_first() -> None:
    result = bc(resolution="1920x1080", fps=50, duration=10)
    assert (result.resolution, result.fps, result.duration) == ("1920x1080", 25, 10)
    [adjustment] = result.adjustments
    assert (adjustment.field, adjustment.requested, adjustment.actual) == ("fps", 50, 25)
    assert adjustment.reason == "50 fps needs too much GPU time at this size and length"
    assert adjustment.source == "negotiation"
    assert adjustment.describe().startswith("fps 50 → 25 (50 fps needs")


@pytest.mark.parametrize(
    ("resolution", "duration"), [("1920x1080", 5), ("1280x720", 10), ("1080x1920", 4)]
)
def test_50_fps_survives_for_smaller_or_shorter_clips(resolution: str, duration: int) -> None:
    result = bc(resolution=resolution, fps=50, duration=duration)
    assert (result.resolution, result.fps, result.duration) == (resolution, 50, duration)
    assert result.adjustments == []


def test_budget_order_fps_then_duration_then_resolution() -> None:
    tight = dataclasses.replace(BC, max_pixel_frames=1280 * 720 * 25 * 4)
    request = VideoRequest(
        prompt="x", provider="bytecompute", resolution="1920x1080", fps=50, duration=10
    )
    result = negotiate(
        request, tight, provider="bytecompute", price_per_second=bytecompute_price_per_second
    )
    assert [a.field for a in result.adjustments] == ["fps", "duration", "resolution"]
    assert (result.fps, result.duration) == (25, 4)
    assert result.width * result.height * 25 * 4 <= tight.max_pixel_frames
    assert result.resolution == "1280x720"  # the named SD size is exactly on budget
    assert abs(math.log(result.width / result.height / (16 / 9))) < 0.05
    assert changed(result)["resolution"] == ("1920x1080", result.resolution)
    assert "GPU time" in result.adjustments[2].reason


def test_budget_shortens_before_touching_the_size() -> None:
    tight = dataclasses.replace(BC, max_pixel_frames=1920 * 1080 * 25 * 6)
    request = VideoRequest(prompt="x", provider="bytecompute", resolution="1920x1080", duration=10)
    result = negotiate(
        request, tight, provider="bytecompute", price_per_second=bytecompute_price_per_second
    )
    assert changed(result) == {"duration": (10, 6)}
    assert result.resolution == "1920x1080"
    assert result.cost_usd == pytest.approx(0.24)


@pytest.mark.parametrize(
    ("requested", "expected", "reason"),
    [
        ("3840x2160", "1920x1080", "at most 1920x1080"),
        ("2160x3840", "1080x1920", "at most 1920x1080"),
        ("4000x3000", "1408x1056", "at most 1920x1080"),
        ("300x200", "768x512", "at least 512 px"),
        ("1000x1000", "992x992", "multiples of 32"),
        ("1080x1080", "1056x1056", "multiples of 32"),
    ],
)
def test_sizes_are_fitted_and_snapped(requested: str, expected: str, reason: str) -> None:
    result = bc(resolution=requested)
    assert result.resolution == expected
    [adjustment] = [a for a in result.adjustments if a.field == "resolution"]
    assert (adjustment.requested, adjustment.actual) == (requested, expected)
    assert reason in adjustment.reason


@pytest.mark.parametrize("size", ["1920x1080", "1080x1920", "1280x720", "720x1280", "1024x576"])
def test_valid_sizes_are_kept(size: str) -> None:
    assert bc(resolution=size).resolution == size
    assert bc(resolution=size).adjustments == []


@pytest.mark.parametrize(
    ("aspect", "size"),
    [
        ("16:9", (1280, 720)),
        ("4:3", (1024, 768)),
        ("1:1", (960, 960)),
        ("3:4", (768, 1024)),
        ("4:5", (768, 960)),
        ("9:16", (720, 1280)),
    ],
)
def test_aspect_presets(aspect: str, size: tuple[int, int]) -> None:
    result = bc(aspect_ratio=aspect)
    assert (result.width, result.height) == size
    assert result.aspect_ratio == aspect
    assert result.adjustments == []
    assert result.cost_usd == pytest.approx(0.10)  # every preset size is SD-priced


def test_resolution_takes_priority_over_aspect_ratio() -> None:
    result = bc(resolution="1920x1080", aspect_ratio="1:1")
    assert result.resolution == "1920x1080"
    assert changed(result) == {"aspect_ratio": ("1:1", "16:9")}
    assert result.adjustments[0].reason == "resolution takes priority over aspect_ratio"


def test_unknown_aspect_snaps_to_the_nearest_preset() -> None:
    result = bc(aspect_ratio="21:9")
    assert result.aspect_ratio == "16:9"
    assert changed(result) == {"aspect_ratio": ("21:9", "16:9")}


def test_malformed_aspect_is_a_member_error() -> None:
    with pytest.raises(InvalidRequestError, match="16:9"):
        bc(aspect_ratio="wide")


def test_seed_and_silent_clips_are_not_offered() -> None:
    result = bc(seed=42, audio=False)
    assert result.seed is None and result.audio is True
    assert changed(result) == {"seed": (42, None), "audio": (False, True)}


def test_fps_and_duration_snap_to_what_is_offered() -> None:
    result = bc(fps=30, duration=12)
    assert (result.fps, result.duration) == (25, 10)
    assert changed(result) == {"fps": (30, 25), "duration": (12, 10)}
    assert "4–10 s" in result.adjustments[1].reason
    assert bc(fps=40).fps == 50  # nearer to 50
    assert bc(duration=2).duration == 4


def test_image_orientation_picks_the_preset_when_nothing_is_asked() -> None:
    portrait = bc(image=image(900, 1600))
    assert portrait.mode is Mode.IMAGE
    assert (portrait.width, portrait.height) == (720, 1280)
    assert portrait.adjustments == []
    frames = bc(first_frame=image(1000, 1000), last_frame=image(1000, 1000))
    assert frames.mode is Mode.FRAMES
    assert (frames.width, frames.height) == (960, 960)


def test_what_no_adjustment_can_fix_is_refused() -> None:
    short = dataclasses.replace(BC, max_prompt_chars=10)
    request = VideoRequest(prompt="x" * 11, provider="bytecompute")
    with pytest.raises(InvalidRequestError, match="at most 10"):
        negotiate(request, short, provider="bytecompute", price_per_second=lambda w, h: 0.0)
    no_images = dataclasses.replace(BC, supports_image=False, supports_frames=False)
    with pytest.raises(InvalidRequestError, match="image"):
        negotiate(
            VideoRequest(prompt="x", provider="bytecompute", image=image(64, 64)),
            no_images,
            provider="bytecompute",
            price_per_second=lambda w, h: 0.0,
        )
    with pytest.raises(InvalidRequestError, match="frames"):
        negotiate(
            VideoRequest(prompt="x", provider="bytecompute", first_frame=image(64, 64)),
            no_images,
            provider="bytecompute",
            price_per_second=lambda w, h: 0.0,
        )


# ----- Leonardo ------------------------------------------------------------------------


def test_leonardo_defaults() -> None:
    result = leo()
    assert (result.resolution, result.duration, result.fps) == ("1920x1080", 8, 25)
    assert result.model == LEONARDO_FAST
    assert result.adjustments == []
    assert result.cost_usd == pytest.approx(8 * 0.06)


@pytest.mark.parametrize(
    ("model", "asked", "got"),
    [
        (LEONARDO_PRO, 7, 6),  # tie: the shorter (cheaper) one
        (LEONARDO_PRO, 9, 8),
        (LEONARDO_PRO, 12, 10),
        (LEONARDO_PRO, 4, 6),
        (LEONARDO_FAST, 20, 20),
        (LEONARDO_FAST, 21, 20),
        (LEONARDO_FAST, 13, 12),
        (LEONARDO_FAST, 5, 6),
    ],
)
def test_leonardo_durations_per_model(model: str, asked: int, got: int) -> None:
    result = leo(model, duration=asked)
    assert result.duration == got
    assert result.model == model
    if asked != got:
        [adjustment] = result.adjustments
        assert (adjustment.field, adjustment.requested, adjustment.actual) == (
            "duration",
            asked,
            got,
        )
        assert model in adjustment.reason
    else:
        assert result.adjustments == []


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("1280x720", "1920x1080"),
        ("2560x1440", "2560x1440"),
        ("1000x2000", "1080x1920"),
        ("3000x1700", "2560x1440"),
        ("4000x2250", "3840x2160"),
        ("1024x1024", "1920x1080"),
    ],
)
def test_leonardo_sizes_snap_to_the_allowed_pairs(requested: str, expected: str) -> None:
    result = leo(resolution=requested)
    assert result.resolution == expected
    if requested != expected:
        assert changed(result)["resolution"] == (requested, expected)


def test_leonardo_fixed_fps_and_aspects() -> None:
    result = leo(fps=50, aspect_ratio="4:5")
    assert (result.fps, result.resolution, result.aspect_ratio) == (25, "1080x1920", "9:16")
    assert changed(result) == {"fps": (50, 25), "aspect_ratio": ("4:5", "9:16")}
    assert "25 fps only" in result.adjustments[0].reason


def test_leonardo_keeps_seed_and_audio_switch() -> None:
    result = leo(seed=7, audio=False)
    assert (result.seed, result.audio) == (7, False)
    assert result.adjustments == []


def test_leonardo_pro_price_at_2160p() -> None:
    result = leo(LEONARDO_PRO, resolution="3840x2160", duration=10)
    assert result.cost_usd == pytest.approx(10 * 0.08 * 4)


# ----- provider-reported adjustments ---------------------------------------------------


def test_merge_provider_adjustments_updates_values_and_cost() -> None:
    negotiated = bc(resolution="1920x1080", duration=10, seed=1)
    reported = [
        Adjustment(
            field="resolution",
            requested="1920x1080",
            actual="1280x720",
            reason="GPU",
            source="provider",
        ),
        Adjustment(field="duration", requested=10, actual="8", source="provider"),
    ]
    merged = merge_adjustments(negotiated, reported, price_per_second=bytecompute_price_per_second)
    assert (merged.width, merged.height, merged.duration) == (1280, 720, 8)
    assert merged.cost_usd == pytest.approx(8 * 0.02)
    assert [a.field for a in merged.adjustments] == ["seed", "resolution", "duration"]
    again = merge_adjustments(merged, reported)
    assert len(again.adjustments) == 3  # nothing listed twice


def test_aspect_label() -> None:
    assert aspect_label(1920, 1080, BC.aspect_ratios) == "16:9"
    assert aspect_label(1408, 1056, BC.aspect_ratios) == "4:3"
    assert aspect_label(768, 512, BC.aspect_ratios) == "3:2"


# ----- properties ----------------------------------------------------------------------

ASPECTS = ["16:9", "4:3", "1:1", "3:4", "4:5", "9:16", "21:9", "3:2", "2:1", "1:3"]
image_st = st.builds(image, st.integers(64, 4000), st.integers(64, 4000))


@st.composite
def requests(draw: st.DrawFn) -> VideoRequest:
    kind = draw(st.sampled_from(["text", "image", "frames", "first-only"]))
    images: dict[str, InputImage] = {}
    if kind == "image":
        images["image"] = draw(image_st)
    elif kind == "frames":
        images["first_frame"] = draw(image_st)
        images["last_frame"] = draw(image_st)
    elif kind == "first-only":
        images["first_frame"] = draw(image_st)
    size = draw(st.none() | st.tuples(st.integers(16, 8192), st.integers(16, 8192)))
    return VideoRequest(
        prompt=draw(st.text(min_size=1, max_size=40).filter(str.strip)),
        provider="any",
        duration=draw(st.none() | st.integers(1, 60)),
        resolution=f"{size[0]}x{size[1]}" if size else None,
        aspect_ratio=draw(st.none() | st.sampled_from(ASPECTS)),
        fps=draw(st.none() | st.integers(1, 120)),
        seed=draw(st.none() | st.integers(0, 2**32 - 1)),
        audio=draw(st.booleans()),
        **images,
    )


def assert_valid_bytecompute(result: NegotiatedRequest) -> None:
    w, h = result.width, result.height
    assert result.fps in (25, 50)
    assert 4 <= result.duration <= 10
    assert min(w, h) >= 512
    assert (w <= 1920 and h <= 1080) if w >= h else (w <= 1080 and h <= 1920)
    assert (w % 32 == 0 and h % 32 == 0) or (w, h) in BC_NAMED
    assert w * h * result.fps * result.duration <= 1920 * 1080 * 25 * 10
    assert result.seed is None and result.audio is True
    assert result.cost_usd == pytest.approx(bytecompute_price_per_second(w, h) * result.duration)


def assert_valid_leonardo(result: NegotiatedRequest, model: str) -> None:
    assert result.model == model
    assert result.fps == 25
    assert result.duration in leonardo.DURATIONS[model]
    assert (result.width, result.height) in LEO_SIZES
    price = leonardo_price_per_second(result.width, result.height, model=model)
    assert result.cost_usd == pytest.approx(price * result.duration)


def assert_adjustments_exact(request: VideoRequest, result: NegotiatedRequest, limits: Any) -> None:
    """Each adjustment is a real change, and each change of a member's value is listed."""
    fields = [a.field for a in result.adjustments]
    assert len(fields) == len(set(fields)), "one adjustment per field"
    by_field = {a.field: a for a in result.adjustments}
    final = {
        "fps": result.fps,
        "duration": result.duration,
        "resolution": result.resolution,
        "aspect_ratio": aspect_label(result.width, result.height, limits.aspect_ratios),
        "seed": result.seed,
        "audio": result.audio,
    }
    asked = {
        "fps": request.fps if request.fps is not None else limits.default_fps,
        "duration": request.duration,
        "resolution": request.resolution,
        "aspect_ratio": request.aspect_ratio,
        "seed": request.seed,
        "audio": request.audio,
    }
    assert set(by_field) <= set(final)
    for name, value in asked.items():
        adjustment = by_field.get(name)
        if adjustment is not None:
            assert adjustment.actual == final[name]
            assert adjustment.requested != adjustment.actual
            assert adjustment.reason
        if value is None:
            continue
        if value != final[name]:
            assert adjustment is not None, f"{name} changed {value} → {final[name]} unlisted"
            assert adjustment.requested == value
        else:
            assert adjustment is None, f"{name} listed but unchanged"


def renegotiate(result: NegotiatedRequest, negotiator: Any) -> NegotiatedRequest:
    """Asking for exactly what was negotiated must change nothing."""
    return negotiator(
        resolution=result.resolution,
        fps=result.fps,
        duration=result.duration,
        seed=result.seed,
        audio=result.audio,
    )


@settings(max_examples=300, deadline=None)
@given(requests())
def test_property_bytecompute(request: VideoRequest) -> None:
    result = negotiate(
        request, BC, provider="bytecompute", price_per_second=bytecompute_price_per_second
    )
    assert_valid_bytecompute(result)
    assert_adjustments_exact(request, result, BC)
    assert result.prompt == request.prompt
    assert result.mode is request.mode
    again = renegotiate(result, bc)
    assert again.adjustments == []
    assert (again.resolution, again.fps, again.duration) == (
        result.resolution,
        result.fps,
        result.duration,
    )


@settings(max_examples=300, deadline=None)
@given(requests(), st.sampled_from([LEONARDO_FAST, LEONARDO_PRO]))
def test_property_leonardo(request: VideoRequest, model: str) -> None:
    def price(w: int, h: int) -> float:
        return leonardo_price_per_second(w, h, model=model)

    limits: ProviderLimits = leonardo.limits_for(model)
    result = negotiate(request, limits, provider="leonardo", price_per_second=price)
    assert_valid_leonardo(result, model)
    assert_adjustments_exact(request, result, limits)
    again = renegotiate(result, lambda **kw: leo(model, **kw))
    assert again.adjustments == []


@settings(max_examples=200, deadline=None)
@given(
    st.integers(512 * 512 * 25 * 4, 1920 * 1080 * 25 * 10),
    st.tuples(st.integers(512, 4000), st.integers(512, 4000)),
    st.sampled_from([25, 50]),
    st.integers(4, 10),
)
def test_property_budget_always_met(
    budget: int, size: tuple[int, int], fps: int, duration: int
) -> None:
    limits = dataclasses.replace(BC, max_pixel_frames=budget)
    request = VideoRequest(
        prompt="x",
        provider="bytecompute",
        resolution=f"{size[0]}x{size[1]}",
        fps=fps,
        duration=duration,
    )
    result = negotiate(
        request, limits, provider="bytecompute", price_per_second=bytecompute_price_per_second
    )
    assert result.width * result.height * result.fps * result.duration <= budget
    cut = {a.field for a in result.adjustments if "GPU time" in a.reason}
    if cut & {"duration", "resolution"}:
        assert result.fps == 25  # the frame rate always goes first
    if "resolution" in cut:
        assert result.duration == 4  # then the length, all the way down
    if not cut:
        assert (result.fps, result.duration) == (fps, duration)
