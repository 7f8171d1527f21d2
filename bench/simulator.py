"""Time the simulator's clip renderer: 5 s, 1280x720, 25 fps, with audio.

Run: .venv/bin/python bench/simulator.py [--runs 3]
Prints one Markdown table row (paste it into bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from bot.media import probe, render_clip

PROMPT = "A red fox trots through fresh snow in a quiet birch forest at dawn, soft light"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image", type=Path, help="render image-to-video from this picture")
    args = parser.parse_args()

    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "clip.mp4"
        for run in range(args.runs):
            start = time.perf_counter()
            render_clip(
                dest,
                prompt=PROMPT,
                width=1280,
                height=720,
                fps=25,
                duration=5,
                audio=True,
                seed=run,
                image=args.image,
            )
            times.append(time.perf_counter() - start)
        info = probe(dest)

    assert info.frames == 125 and info.has_audio, info
    mode = "image-to-video" if args.image else "text-to-video"
    print(
        f"| simulator render_clip ({mode}, 5 s 1280x720 25 fps + AAC) "
        f"| min {min(times):.2f} s, median {statistics.median(times):.2f} s ({args.runs} runs) "
        f"| {info.size_bytes / 1e6:.2f} MB | {os.cpu_count()} CPU, {platform.machine()}, "
        f"Python {platform.python_version()} |"
    )


if __name__ == "__main__":
    main()
