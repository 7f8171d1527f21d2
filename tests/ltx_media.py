"""Real media for the LTX tests: a sound file and a source clip made with PyAV."""

from __future__ import annotations

import math
from array import array
from fractions import Fraction
from pathlib import Path

import av

from bot.media import render_clip


def make_sound(path: Path, seconds: float, *, rate: int = 16_000, fmt: str = "wav") -> bytes:
    """A `seconds`-long tone (WAV: pcm_s16le; mp3 also works) written with PyAV."""
    codec = {"wav": "pcm_s16le", "mp3": "libmp3lame"}[fmt]
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        total = int(seconds * rate)
        chunk = 1024
        pts = 0
        while pts < total:
            n = min(chunk, total - pts)
            tone = array("h", (int(8000 * math.sin(2 * math.pi * 440 * (pts + i) / rate))
                               for i in range(n)))  # fmt: skip
            frame = av.AudioFrame(format="s16", layout="mono", samples=n)
            frame.planes[0].update(tone.tobytes())
            frame.sample_rate = rate
            frame.pts, frame.time_base = pts, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
            pts += n
        for packet in stream.encode(None):
            container.mux(packet)
    return path.read_bytes()


def make_clip(path: Path, seconds: int = 4, *, fps: int = 24, size: tuple[int, int] = (192, 108)):
    render_clip(
        path, prompt="source", width=size[0], height=size[1], fps=fps, duration=seconds,
        audio=True, seed=3,
    )  # fmt: skip
    return path.read_bytes()
