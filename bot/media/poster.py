"""A clip's poster frame: a small JPEG of the frame about one second in (PyAV + Pillow).

Made while the clip is on disk anyway (right after it was posted); the mod-log shows it as
the generation entry's embed image. Short clips (under `at_seconds`) use their last frame.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
from PIL import Image

from bot.media.errors import MediaError
from bot.media.video import _open_input

POSTER_AT_SECONDS = 1.0
POSTER_MAX_EDGE = 320  # longest side, pixels: small enough for a mod-log embed
POSTER_QUALITY = 80


def _frame_at(container: Any, at_seconds: float) -> Image.Image:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    chosen: Image.Image | None = None
    for frame in container.decode(stream):
        chosen = frame.to_image()
        if frame.time is not None and frame.time >= at_seconds:
            break
    if chosen is None:
        raise MediaError("the clip has no video frames")
    return chosen


def poster_jpeg(
    clip: Path,
    *,
    at_seconds: float = POSTER_AT_SECONDS,
    max_edge: int = POSTER_MAX_EDGE,
    quality: int = POSTER_QUALITY,
) -> bytes:
    """The JPEG bytes of the frame at `at_seconds` (or the last one), scaled so its longest
    side is at most `max_edge`. Raises MediaError for an unreadable clip."""
    with _open_input(clip) as container:
        if not container.streams.video:
            raise MediaError("the clip has no video stream")
        try:
            image = _frame_at(container, at_seconds)
        except av.FFmpegError as exc:
            raise MediaError(f"the clip could not be decoded ({type(exc).__name__})") from None
    image = image.convert("RGB")
    image.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()
