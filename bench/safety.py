"""CPU cost of the output safety check per clip: `python bench/safety.py [--runs 5]`.

Renders real 5 s clips with the simulator (bot.media.render_clip, 1280x720 and 768x512,
24 fps), then times what the bot does before posting one: sample ~1 frame per second
(PyAV) and score the frames with NudeNet's bundled model (one onnxruntime thread).
Reports model load time once, and per clip the process CPU time (all threads) and wall time
of sampling and of scoring, as median / max over `--runs`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bot import media
from bot.safety import load_classifier, score_frames


def timed(fn):  # type: ignore[no-untyped-def]
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return value, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    classifier, load_cpu, load_wall = timed(load_classifier)
    print(f"model load: {load_cpu:.2f} CPU-s, {load_wall:.2f} s wall")
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in ((1280, 720), (768, 512)):
            clip = Path(tmp) / f"{width}x{height}.mp4"
            media.render_clip(
                clip,
                prompt="a calm lake",
                width=width,
                height=height,
                fps=24,
                duration=5,
                audio=True,
                seed=1,
            )
            rows: dict[str, list[float]] = {k: [] for k in ("s_cpu", "s_wall", "c_cpu", "c_wall")}
            frames_n = 0
            top = 0.0
            for _ in range(args.runs):
                frames, s_cpu, s_wall = timed(lambda c=clip: media.sample_frames(c))
                scored, c_cpu, c_wall = timed(
                    lambda f=frames: score_frames(classifier, f)  # type: ignore[misc]
                )
                frames_n, top = len(frames), max(top, scored.score)
                for key, value in zip(rows, (s_cpu, s_wall, c_cpu, c_wall), strict=True):
                    rows[key].append(value)

            def fmt(values: list[float]) -> str:
                return f"{statistics.median(values):.2f} / {max(values):.2f}"

            total = [a + b for a, b in zip(rows["s_cpu"], rows["c_cpu"], strict=True)]
            print(
                f"5 s clip {width}x{height}: {frames_n} frames, max score {top:.3f}; "
                f"sampling CPU-s {fmt(rows['s_cpu'])} (wall {fmt(rows['s_wall'])}); "
                f"scoring CPU-s {fmt(rows['c_cpu'])} (wall {fmt(rows['c_wall'])}); "
                f"total CPU-s {fmt(total)} (median / max of {args.runs})"
            )


if __name__ == "__main__":
    main()
