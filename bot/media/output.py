"""How the MP4s of `bot.media` are written: a temporary file beside the destination, the
encoder thread count and the audio sample rate (shared by rendering and fit-to-size)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

AUDIO_RATE = 48_000


def encoder_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@contextmanager
def temp_beside(dest: Path) -> Iterator[Path]:
    """A temporary path next to `dest`, removed on exit unless the block moved it away."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part.mp4", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
