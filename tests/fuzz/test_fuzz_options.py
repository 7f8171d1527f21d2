"""Slash-command options fuzzed through `VideoService.build_request` and every provider's
negotiation (via `VideoService.prepare`): the outcome is a request the provider accepts as
it is, or a refusal whose message a member can act on. Never another exception."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from bot.jobs.service import Requester, RequestRefused, VideoService
from bot.providers.base import (
    InputImage,
    Mode,
    NegotiatedRequest,
    Provider,
    VideoRequest,
    parse_resolution,
)
from bot.providers.bytecompute import ByteComputeProvider
from bot.providers.leonardo import LeonardoProvider
from bot.providers.simulator import SimulatorProvider
from tests.fuzz import strategies as s
from tests.fuzz.budget import fuzz

# Words that only appear when a Python error leaked into a member-facing message.
LEAK_MARKERS = (
    "Traceback",
    "invalid literal",
    "Exceeds the limit",
    "object has no attribute",
    "NoneType",
    "unsupported operand",
    "codec can't",
    "For further information",
    "pydantic",
)


def _providers() -> dict[str, Provider]:
    # Negotiation never touches the network: a transport that fails every request.
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"negotiation made a request: {request.url}")

    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    return {
        "bytecompute": ByteComputeProvider(
            client, api_key="k", base_url="https://api.bytecompute.test"
        ),
        "leonardo": LeonardoProvider(client, api_key="k", base_url="https://leo.test/api/rest"),
        "leonardo-pro": LeonardoProvider(
            client, api_key="k", base_url="https://leo.test/api/rest", model="ltxv-2.3-pro"
        ),
        "simulator": SimulatorProvider(Path("/nonexistent-sim-dir")),
    }


PROVIDERS = _providers()
# `leonardo-pro` is reachable by name only here (the bot has one Leonardo model at a time).
SERVICE = VideoService(
    None,  # type: ignore[arg-type]  # build_request/prepare without a guild use no DB
    PROVIDERS,
    None,  # type: ignore[arg-type]
    data_dir=Path("/nonexistent-data-dir"),
    default_provider="simulator",
    default_quota_seconds=60,
    max_active_per_member=2,
)
CLI = Requester(user_id=1)  # no guild: no moderation lookups, no audit rows


def image(width: int, height: int, name: str) -> InputImage:
    return InputImage(
        path=Path(f"/nonexistent/{name}.png"),
        mime="image/png",
        width=width,
        height=height,
        sha256="0" * 64,
        filename=f"{name}.png",
    )


edges = st.integers(1, 12_000)
images = st.one_of(
    st.just({}),
    st.builds(lambda w, h: {"image": image(w, h, "image")}, edges, edges),
    st.builds(lambda w, h: {"first_frame": image(w, h, "first_frame")}, edges, edges),
    st.builds(
        lambda w, h: {
            "first_frame": image(w, h, "first_frame"),
            "last_frame": image(h, w, "last_frame"),
        },
        edges,
        edges,
    ),
    st.just({"last_frame": image(640, 480, "last_frame")}),
    st.just({"image": image(640, 480, "image"), "first_frame": image(640, 480, "first_frame")}),
)

options = st.fixed_dictionaries(
    {
        "prompt": s.mostly(st.text(min_size=1, max_size=300), s.prompts, 50),
        # Mostly valid names and in-range numbers (each branch about equally likely), so
        # that many examples get through to negotiation.
        "provider": s.mostly(st.sampled_from([None, *sorted(PROVIDERS)]), s.provider_names),
        "duration": s.mostly(st.one_of(st.none(), st.integers(1, 20)), s.big_ints),
        "resolution": s.mostly(st.none(), s.resolution_texts, 40),
        "aspect_ratio": s.aspect_ratios,
        "fps": s.mostly(st.one_of(st.none(), st.integers(1, 120)), s.big_ints),
        "seed": s.mostly(st.one_of(st.none(), st.integers(0, 2**32 - 1)), s.big_ints),
        "audio": st.one_of(st.none(), st.booleans()),
    }
)


def assert_clear(message: str) -> None:
    assert isinstance(message, str) and message.strip(), "a refusal must say something"
    assert len(message) < 1500, message
    for marker in LEAK_MARKERS:
        assert marker not in message, f"internal error text in a member message: {message!r}"


def sizes_ok(provider: Provider, width: int, height: int) -> bool:
    limits = provider.limits
    if limits.sizes:
        return (width, height) in limits.sizes
    long_box = max(limits.max_width, limits.max_height)
    short_box = min(limits.max_width, limits.max_height)
    in_box = max(width, height) <= long_box and min(width, height) <= short_box
    m = max(limits.size_multiple, 1)
    on_grid = (width % m == 0 and height % m == 0) or (width, height) in limits.named_sizes
    return in_box and on_grid and min(width, height) >= limits.min_edge


def assert_valid_for(provider: Provider, asked: VideoRequest, got: NegotiatedRequest) -> None:
    """`got` is what `provider` accepts unchanged, and every change from `asked` is listed."""
    limits = provider.limits
    assert got.provider == provider.name and got.model in limits.models
    assert got.prompt == asked.prompt and 0 < len(got.prompt) <= limits.max_prompt_chars
    assert got.mode is asked.mode
    assert got.duration in limits.durations_by_model.get(got.model, limits.durations)
    assert got.fps in limits.fps_options
    assert sizes_ok(provider, got.width, got.height), got.resolution
    if limits.max_pixel_frames:
        assert got.width * got.height * got.fps * got.duration <= limits.max_pixel_frames
    assert got.aspect_ratio is None or got.aspect_ratio in limits.aspect_ratios
    if not limits.supports_seed:
        assert got.seed is None
    else:
        assert got.seed == asked.seed
    assert got.audio is (asked.audio or not limits.supports_audio_toggle)
    assert math.isfinite(got.cost_usd) and got.cost_usd >= 0
    assert {k: getattr(got, k) for k in ("image", "first_frame", "last_frame")} == {
        k: getattr(asked, k) for k in ("image", "first_frame", "last_frame")
    }
    # Every adjustment is a real change, listed once per field, in member words.
    fields = [a.field for a in got.adjustments]
    assert len(fields) == len(set(fields)), fields
    for adj in got.adjustments:
        assert adj.requested != adj.actual and adj.reason, adj
    by_field = {a.field: a for a in got.adjustments}
    for name, wanted, actual in (
        ("fps", asked.fps, got.fps),
        ("duration", asked.duration, got.duration),
        ("resolution", asked.resolution, got.resolution),
    ):
        if wanted is None:
            continue  # the provider's default: changing it is not an adjustment
        if wanted == actual:
            assert name not in by_field, by_field[name]
        else:
            assert name in by_field, f"{name} {wanted} → {actual} is not listed"
            assert by_field[name].actual == actual


def run_pipeline(opts: dict[str, Any], imgs: dict[str, InputImage]) -> None:
    values = {k: v for k, v in opts.items() if k not in ("prompt", "provider")}
    try:
        request = SERVICE.build_request(
            prompt=opts["prompt"], provider=opts["provider"], **values, **imgs
        )
    except RequestRefused as exc:
        event(f"refused by build_request: {exc.message.split(' ')[0]}")
        assert_clear(exc.message)
        return
    assert request.prompt == opts["prompt"].strip()
    provider = PROVIDERS[request.provider]
    try:
        negotiated = asyncio.run(SERVICE.prepare(CLI, request))
    except RequestRefused as exc:
        event("refused by negotiation")
        assert_clear(exc.message)
        return
    event(f"negotiated for {provider.name}")
    assert_valid_for(provider, request, negotiated)


@fuzz(400)
@given(opts=options, imgs=images)
@example(
    opts={"prompt": "a cat", "provider": None, "duration": None, "resolution": "²x720",
          "aspect_ratio": None, "fps": None, "seed": None, "audio": None},
    imgs={},
)  # fmt: skip
@example(
    opts={"prompt": "a cat", "provider": "bytecompute", "duration": 7, "resolution": None,
          "aspect_ratio": "²:1", "fps": 50, "seed": 3, "audio": False},
    imgs={},
)  # fmt: skip
@example(
    opts={"prompt": "a cat", "provider": "leonardo", "duration": 3, "resolution": None,
          "aspect_ratio": "9" * 5000 + ":1", "fps": None, "seed": None, "audio": None},
    imgs={},
)  # fmt: skip
def test_options_build_and_negotiate(opts: dict[str, Any], imgs: dict[str, InputImage]) -> None:
    run_pipeline(opts, imgs)


@fuzz(150)
@given(
    name=st.sampled_from(sorted(PROVIDERS)),
    width=st.integers(16, 8192),
    height=st.integers(16, 8192),
    duration=st.integers(1, 60),
    fps=st.integers(1, 120),
    mode=st.sampled_from(list(Mode)),
)
def test_every_valid_request_negotiates(
    name: str, width: int, height: int, duration: int, fps: int, mode: Mode
) -> None:
    """In-range values from the slash command never get refused for their size or length:
    negotiation adjusts them (providers here accept images and frames)."""
    imgs: dict[str, InputImage] = {}
    if mode is Mode.IMAGE:
        imgs = {"image": image(width, height, "image")}
    elif mode is Mode.FRAMES:
        imgs = {"first_frame": image(width, height, "f"), "last_frame": image(width, height, "l")}
    request = SERVICE.build_request(
        prompt="a lighthouse at dusk",
        provider=name,
        resolution=f"{width}x{height}",
        duration=duration,
        fps=fps,
        **imgs,
    )
    negotiated = asyncio.run(SERVICE.prepare(CLI, request))
    assert_valid_for(PROVIDERS[name], request, negotiated)


@fuzz(200)
@given(
    provider=st.one_of(st.none(), st.sampled_from(sorted(PROVIDERS)), s.nasty_text),
    aspect=s.aspect_ratios,
    typed=st.one_of(s.resolution_texts, s.nasty_text),
)
@example(provider=None, aspect=None, typed="²x720")
@example(provider="bytecompute", aspect="²:1", typed="")
def test_resolution_autocomplete(provider: str | None, aspect: str | None, typed: str) -> None:
    """The `/video resolution` autocomplete: at most 25 sizes, each one the provider makes."""
    labels = SERVICE.resolution_choices(provider, aspect, typed)
    assert len(labels) <= 25
    prov = PROVIDERS.get(provider or SERVICE.default_provider)
    if prov is None:
        assert labels == []
        return
    for label in labels:
        size = parse_resolution(label)
        assert size is not None and sizes_ok(prov, *size), label


@pytest.mark.parametrize(
    ("resolution", "fragment"),
    [
        ("²x720", "resolution"),
        ("9" * 5000 + "x720", "resolution"),
        ("1280x720x3", "resolution"),
        ("0x0", "resolution"),
    ],
)
def test_bad_resolution_refusal_names_the_option(resolution: str, fragment: str) -> None:
    with pytest.raises(RequestRefused) as info:
        SERVICE.build_request(prompt="a cat", resolution=resolution)
    assert fragment in info.value.message and "1280x720" in info.value.message
    assert_clear(info.value.message)
