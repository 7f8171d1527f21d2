"""What the LTX API's LTX-2.3 models offer (PROVIDERS.md C.2, C.4, C.9).

The model matrix at `docs.ltx.io/models` was not retrievable; resellers of the same model
agree on: 1080p / 1440p / 2160p in both orientations (plus 720p on the current price list),
24 / 25 / 48 / 50 fps, pro 6, 8 or 10 s, fast 6–20 s in even steps with more than 10 s only
at 1080p and 24/25 fps (`LONG_CLIP_*`, applied in `edits.fit_long_clip`). An unsupported
combination is a 400 from the server, whose message reaches the member.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.pricing import LTX_FAST, LTX_PRO
from bot.providers.base import Operation, ProviderLimits

MODELS = (LTX_FAST, LTX_PRO)
SIZES: tuple[tuple[int, int], ...] = (
    (1920, 1080),
    (1080, 1920),
    (1280, 720),
    (720, 1280),
    (2560, 1440),
    (1440, 2560),
    (3840, 2160),
    (2160, 3840),
)
DURATIONS = {LTX_PRO: (6, 8, 10), LTX_FAST: tuple(range(6, 21, 2))}
LONG_CLIP_SECONDS = 10  # longer clips only at the sizes and rates below
LONG_CLIP_SIZES = ((1920, 1080), (1080, 1920))
LONG_CLIP_FPS = (24, 25)

# Audio-to-video, extend and retake (C.4): pro only.
EDIT_MODEL = LTX_PRO
SOUNDTRACK_SECONDS = (2.0, 20.0)
SOUNDTRACK_SIZES = ((1920, 1080), (1080, 1920))
SOUNDTRACK_FPS = 25  # "output is 25 fps"
EXTEND_SECONDS = (2, 20)
RETAKE_MIN_SECONDS = 2.0
EDIT_MIN_FRAMES = 73  # input videos: at least 73 frames (about 3 s at 24 fps)
EDIT_MAX_SIZE = (3840, 2160)
EXTEND_MAX_FRAMES = 505  # context + extension, in frames of the input video
EXTEND_MAX_CONTEXT_SECONDS = 20.0

LIMITS = ProviderLimits(
    models=MODELS,
    default_model=LTX_FAST,
    durations=DURATIONS[LTX_FAST],
    default_duration=8,
    fps_options=(24, 25, 48, 50),
    default_fps=24,  # the spec's default
    aspect_ratios=("16:9", "9:16"),
    default_aspect_ratio="16:9",
    sizes=SIZES,
    aspect_sizes={"16:9": (1920, 1080), "9:16": (1080, 1920)},
    supports_image=True,
    supports_frames=True,  # last_frame_uri: ltx-2-3 models only
    supports_seed=False,  # no seed field in the spec
    supports_audio_toggle=True,  # generate_audio
    supports_soundtrack=True,
    edits=(Operation.EXTEND, Operation.RETAKE),
    max_prompt_chars=5000,
    # Status and output URLs live 24 h after the job ends (C.5).
    job_expiry=timedelta(hours=24),
    requests_per_minute=120,  # a request-rate limit exists, no number is published
    max_concurrency=2,  # "2 simultaneous generations by default"
    durations_by_model=DURATIONS,
)


def limits_for(model: str) -> ProviderLimits:
    if model not in MODELS:
        raise ValueError(f"unknown LTX model {model!r}; use one of {', '.join(MODELS)}")
    return replace(LIMITS, default_model=model, durations=DURATIONS[model])
