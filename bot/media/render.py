"""The simulator's clips: a real H.264/AAC MP4 drawn from the prompt (moving gradient, or
the input image zoomed/crossfaded), with the prompt written over every frame."""

from __future__ import annotations

import colorsys
import hashlib
import math
import textwrap
from array import array
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps

from bot.media.images import quiet_pillow
from bot.media.output import AUDIO_RATE, encoder_threads, temp_beside


def _palette(digest: bytes) -> list[tuple[int, int, int]]:
    """Three saturated colours derived from the hash (hue spread so they differ)."""
    base_hue = digest[0] / 255
    colours = []
    for k in range(3):
        hue = (base_hue + k * (0.18 + digest[1 + k] / 1275)) % 1.0
        sat = 0.55 + digest[4 + k] / 640
        val = 0.65 + digest[7 + k] / 900
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def _gradient_band(width: int, height: int, digest: bytes) -> Image.Image:
    """A horizontally periodic gradient (period `width`), `2 * width` wide, shaded top-down."""
    colours = _palette(digest)
    stops = [*colours, colours[0]]
    row = bytearray()
    for x in range(width):
        pos = x / width * 3
        i = min(int(pos), 2)
        t = pos - i
        a, b = stops[i], stops[i + 1]
        row += bytes(round(a[c] + (b[c] - a[c]) * t) for c in range(3))
    line = Image.frombytes("RGB", (width, 1), bytes(row) * 2)
    band = line.resize((2 * width, height), Image.Resampling.NEAREST)
    shade = Image.linear_gradient("L").resize((2 * width, height)).point(lambda v: 255 - v // 3)
    return ImageChops.multiply(band, Image.merge("RGB", (shade, shade, shade)))


def _cover(path: Path, width: int, height: int) -> Image.Image:
    """The image scaled and centre-cropped to exactly width×height."""
    with quiet_pillow(), Image.open(path) as src:
        img = ImageOps.exif_transpose(src).convert("RGB")
    return ImageOps.fit(img, (width, height), Image.Resampling.LANCZOS)


def _text_layer(prompt: str, width: int, height: int, *, small: bool) -> Image.Image:
    """The prompt (first 200 characters, wrapped, at most 4 lines) as an RGBA block."""
    text = " ".join(prompt.split())
    if len(text) > 200:
        text = text[:199].rstrip() + "…"
    size = max(12, min(width, height) // (22 if small else 14))
    font = ImageFont.load_default(size=size)
    avg = max(1.0, font.getlength("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ") / 37)
    chars = max(8, int(width * 0.86 / avg))
    lines = textwrap.wrap(text, chars) or [""]
    if len(lines) > 4:
        lines = [*lines[:3], textwrap.shorten(" ".join(lines[3:]), chars, placeholder="…")]
    body = "\n".join(lines)
    stroke = max(1, size // 12)
    measure = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    box = measure.multiline_textbbox((0, 0), body, font=font, align="center", stroke_width=stroke)
    left, top, right, bottom = (math.floor(box[0]), math.floor(box[1]), *map(math.ceil, box[2:]))
    pad = size // 3
    layer = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
    ImageDraw.Draw(layer).multiline_text(
        (pad - left, pad - top),
        body,
        font=font,
        fill=(255, 255, 255, 255),
        align="center",
        stroke_width=stroke,
        stroke_fill=(0, 0, 0, 255),
    )
    return layer


def _tone(seconds: int, digest: bytes) -> array[float]:
    """A soft chord whose pitch comes from the hash: fade in/out, slow 1 Hz swell.

    Every component is a whole number of hertz, so one second is computed and repeated.
    """
    semitone = digest[10] % 24
    freq = 2 * round(110 * 2 ** (semitone / 12))  # even, so freq * 1.5 is whole too
    second = array(
        "f",
        (
            0.22
            * (0.85 + 0.15 * math.sin(2 * math.pi * i / AUDIO_RATE))
            * (
                math.sin(2 * math.pi * freq * i / AUDIO_RATE)
                + 0.4 * math.sin(2 * math.pi * freq * 1.5 * i / AUDIO_RATE)
            )
            for i in range(AUDIO_RATE)
        ),
    )
    samples = second * seconds
    fade_in, fade_out = AUDIO_RATE * 3 // 10, AUDIO_RATE // 2
    total = len(samples)
    for i in range(min(fade_in, total)):
        samples[i] *= i / fade_in
    for i in range(min(fade_out, total)):
        samples[total - 1 - i] *= i / fade_out
    return samples


def _audio_frame(chunk: array[float], pts: int) -> av.AudioFrame:
    frame = av.AudioFrame(format="fltp", layout="stereo", samples=len(chunk))
    raw = chunk.tobytes()
    for plane in frame.planes:
        plane.update(raw + bytes(plane.buffer_size - len(raw)))
    frame.sample_rate = AUDIO_RATE
    frame.pts = pts
    frame.time_base = Fraction(1, AUDIO_RATE)
    return frame


def render_clip(
    dest: Path,
    *,
    prompt: str,
    width: int,
    height: int,
    fps: int,
    duration: int,
    audio: bool,
    seed: int | None,
    image: Path | None = None,
    first_frame: Path | None = None,
    last_frame: Path | None = None,
) -> None:
    """Write a real MP4 (H.264 yuv420p, AAC 48 kHz when `audio`) of `duration * fps` frames.

    Text-to-video: a moving colour gradient derived from prompt+seed. `image` (or a lone
    `first_frame`): the picture, cover-fitted, with a slow zoom and pan. `first_frame` and
    `last_frame`: a crossfade from one to the other. The prompt is drawn over every frame.
    """
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"render size must be positive and even, got {width}x{height}")
    if fps <= 0 or duration <= 0:
        raise ValueError("fps and duration must be positive")
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    total = fps * duration
    still = image or (first_frame if last_frame is None else None)

    band: Image.Image | None = None
    start: Image.Image | None = None
    end: Image.Image | None = None
    if still is not None:
        start = _cover(still, width, height)
    elif first_frame is not None and last_frame is not None:
        start = _cover(first_frame, width, height)
        end = _cover(last_frame, width, height)
    else:
        band = _gradient_band(width, height, digest)

    text = _text_layer(prompt, width, height, small=band is None)
    text_x = (width - text.width) // 2
    text_y = (
        (height - text.height) // 2 if band is not None else height - text.height - height // 12
    )
    bar_h = max(2, height // 120)
    # Pan direction for the zoom: towards one of the corners, chosen by the hash.
    pan_x, pan_y = (digest[11] / 255) - 0.5, (digest[12] / 255) - 0.5

    def frame_image(i: int) -> Image.Image:
        t = i / max(1, total - 1)
        if band is not None:
            offset = int(i * width / (4 * fps)) % width  # a quarter width per second
            img = band.crop((offset, 0, offset + width, height))
        elif end is None:
            assert start is not None
            zoom = 1 - 0.12 * t
            bw, bh = width * zoom, height * zoom
            cx = (width - bw) * (0.5 + pan_x * t)
            cy = (height - bh) * (0.5 + pan_y * t)
            img = (
                start.copy()
                if i == 0
                else start.resize(
                    (width, height), Image.Resampling.BILINEAR, box=(cx, cy, cx + bw, cy + bh)
                )
            )
        else:
            assert start is not None
            ease = t * t * (3 - 2 * t)
            img = Image.blend(start, end, ease)
        img.paste(text, (text_x, text_y), text)
        ImageDraw.Draw(img).rectangle(
            (0, height - bar_h, round(width * (i + 1) / total), height), fill=(255, 255, 255)
        )
        return img

    samples = _tone(duration, digest) if audio else None
    with temp_beside(dest) as tmp:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            video = out.add_stream("libx264", rate=fps)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            # ultrafast: the content is simple, speed matters more than a few hundred KB.
            # (Presets with mbtree gave run-to-run different output at some sizes.)
            video.options = {"preset": "ultrafast", "crf": "23"}
            video.codec_context.thread_count = encoder_threads()
            sound = None
            if samples is not None:
                sound = out.add_stream("aac", rate=AUDIO_RATE)
                sound.layout = "stereo"
                sound.bit_rate = 128_000
            sent = 0
            for i in range(total):
                frame = av.VideoFrame.from_image(frame_image(i))  # type: ignore[no-untyped-call]
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                out.mux(video.encode(frame))
                if sound is not None and samples is not None:
                    upto = min(len(samples), (i + 1) * AUDIO_RATE // fps)
                    if upto > sent:
                        out.mux(sound.encode(_audio_frame(samples[sent:upto], sent)))
                        sent = upto
            out.mux(video.encode(None))
            if sound is not None:
                out.mux(sound.encode(None))
        tmp.replace(dest)
