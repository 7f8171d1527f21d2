"""What Leonardo's LTX-2.3 models offer (`LIMITS`, `limits_for`): models, sizes, durations,
rate limits."""

from __future__ import annotations

from dataclasses import replace

from bot.pricing import LEONARDO_FAST, LEONARDO_PRO
from bot.providers.base import ProviderLimits

MODELS = (LEONARDO_PRO, LEONARDO_FAST)
SIZES: tuple[tuple[int, int], ...] = (
    (1920, 1080),
    (1080, 1920),
    (2560, 1440),
    (1440, 2560),
    (3840, 2160),
    (2160, 3840),
)
DURATIONS = {LEONARDO_PRO: (6, 8, 10), LEONARDO_FAST: tuple(range(6, 21, 2))}

LIMITS = ProviderLimits(
    models=MODELS,
    default_model=LEONARDO_FAST,
    durations=DURATIONS[LEONARDO_FAST],
    default_duration=8,  # the guide's default; always sent explicitly (the schema says 6)
    # Leonardo takes no fps; LTX-2.3 clips come out at a fixed rate, which we take as 25.
    fps_options=(25,),
    default_fps=25,
    aspect_ratios=("16:9", "9:16"),
    default_aspect_ratio="16:9",
    sizes=SIZES,
    aspect_sizes={"16:9": (1920, 1080), "9:16": (1080, 1920)},
    supports_image=True,
    supports_frames=True,
    supports_seed=True,
    supports_audio_toggle=True,
    max_prompt_chars=5000,
    job_expiry=None,  # outputs do not expire
    # Published defaults: 2000 requests/min over all endpoints, 100/min on create endpoints.
    # Video concurrency is not published; `check()` reports the key's real apiConcurrencySlots.
    requests_per_minute=2000,
    submits_per_minute=100,
    max_concurrency=5,
    durations_by_model=DURATIONS,
)


def limits_for(model: str) -> ProviderLimits:
    if model not in MODELS:
        raise ValueError(f"unknown Leonardo model {model!r}; use one of {', '.join(MODELS)}")
    return replace(LIMITS, default_model=model, durations=DURATIONS[model])
