"""Media helpers: input-image checks (Pillow), clip rendering, probing and fit-to-size (PyAV).

Every function here is synchronous and CPU/disk bound; async callers run them with
`asyncio.to_thread`. Problems the member can fix raise `MediaError`, whose `message` says
what to change.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import os
import shutil
import struct
import tempfile
import textwrap
import warnings
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps

from bot.providers.base import InputImage

DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
DEFAULT_MIN_IMAGE_EDGE = 64
MAX_IMAGE_BYTES = DEFAULT_MAX_IMAGE_BYTES  # the default upload limit for input images

AUDIO_RATE = 48_000
_MIME_BY_FORMAT = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_EXT_BY_MIME = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
# Errors Pillow raises on broken input, besides its own subclasses of OSError.
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)


class MediaError(Exception):
    """A media problem; `message` is safe to show to the member and says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ----- input images --------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    mime: str  # image/png, image/jpeg or image/webp
    width: int  # as displayed (JPEG EXIF rotation applied)
    height: int

    @property
    def extension(self) -> str:
        return _EXT_BY_MIME[self.mime]


def _sniff(data: bytes) -> str | None:
    """The container format by magic bytes (never by file name)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heis", b"hevc"):
            return "HEIC"
        return "a video"
    if data[:4] == b"%PDF":
        return "PDF"
    head = data[:256].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml")):
        return "SVG/XML"
    return None


@contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Pillow warns about big images (our own pixel limit decides instead) and about damaged
    metadata it skips ("Corrupt EXIF data", "malformed MPO"): the picture itself is checked
    by decoding it, so these warnings say nothing the member must act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


def _fmt_bytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def check_image_bytes(
    data: bytes,
    *,
    option: str = "image",
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    min_edge: int = DEFAULT_MIN_IMAGE_EDGE,
) -> ImageInfo:
    """Check an uploaded image and describe it, or raise MediaError saying what to change.

    The format is decided by the bytes. Refused: anything but a still PNG, JPEG or WebP,
    truncated or corrupt files, files over `max_bytes`, more than `max_pixels` pixels (checked
    from the header, before decoding) and images whose short edge is under `min_edge`.
    """
    label = f"`{option}`"
    if not data:
        raise MediaError(f"{label} is empty; attach a PNG, JPEG or WebP image")
    if len(data) > max_bytes:
        raise MediaError(
            f"{label} is too large ({_fmt_bytes(len(data))}); "
            f"attach an image of at most {_fmt_bytes(max_bytes)}"
        )
    kind = _sniff(data)
    if kind not in _MIME_BY_FORMAT:
        got = f"got {kind}" if kind else "got a file that is not an image"
        raise MediaError(f"{label} must be a PNG, JPEG or WebP image ({got})")
    broken = MediaError(
        f"{label} is damaged or incomplete ({kind} could not be read); "
        "re-save the image and attach it again"
    )
    too_many = MediaError(
        f"{label} has too many pixels; attach an image of at most {max_pixels:,} pixels "
        "(for example 1920×1080)"
    )
    # Pillow's JPEG opener also reads MPO (multi-picture) files. There is no separate "MPO"
    # opener to ask for in Pillow 13: naming one raised KeyError for any unreadable JPEG.
    formats = [kind]
    try:
        with _quiet_pillow():
            with Image.open(io.BytesIO(data), formats=formats) as im:
                width, height = im.size  # from the header; nothing decoded yet
                if width * height > max_pixels:
                    raise too_many
                if kind != "JPEG" and getattr(im, "n_frames", 1) > 1:
                    raise MediaError(f"{label} is animated; attach a still PNG, JPEG or WebP image")
                orientation = im.getexif().get(0x0112, 1) if kind == "JPEG" else 1
                im.verify()
            with Image.open(io.BytesIO(data), formats=formats) as im:
                im.load()  # a full decode catches truncation that verify() misses
    except MediaError:
        raise
    except Image.DecompressionBombError:
        raise too_many from None
    except _PILLOW_ERRORS:
        raise broken from None
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    if min(width, height) < min_edge:
        raise MediaError(
            f"{label} is too small ({width}×{height}); attach an image at least "
            f"{min_edge} pixels on each side"
        )
    return ImageInfo(mime=_MIME_BY_FORMAT[kind], width=width, height=height)


def save_input_image(
    data: bytes,
    dest_dir: Path,
    option: str,
    *,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    min_edge: int = DEFAULT_MIN_IMAGE_EDGE,
) -> InputImage:
    """Check `data` and write it unchanged to `dest_dir/<option>.<ext>`."""
    info = check_image_bytes(
        data, option=option, max_bytes=max_bytes, max_pixels=max_pixels, min_edge=min_edge
    )
    dest_dir.mkdir(parents=True, exist_ok=True)
    filename = f"{option}.{info.extension}"
    path = dest_dir / filename
    path.write_bytes(data)
    return InputImage(
        path=path,
        mime=info.mime,
        width=info.width,
        height=info.height,
        sha256=hashlib.sha256(data).hexdigest(),
        filename=filename,
    )


# ----- rendering -----------------------------------------------------------------------


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@contextmanager
def _temp_beside(dest: Path) -> Iterator[Path]:
    """A temporary path next to `dest`, removed on exit unless the block moved it away."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part.mp4", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


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
    with _quiet_pillow(), Image.open(path) as src:
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
    with _temp_beside(dest) as tmp:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            video = out.add_stream("libx264", rate=fps)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            # ultrafast: the content is simple, speed matters more than a few hundred KB.
            # (Presets with mbtree gave run-to-run different output at some sizes.)
            video.options = {"preset": "ultrafast", "crf": "23"}
            video.codec_context.thread_count = _threads()
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


# ----- probing -------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    frames: int
    fps: float
    width: int
    height: int
    has_audio: bool
    video_codec: str
    audio_codec: str | None
    size_bytes: int


def _open_input(path: Path) -> Any:
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"the clip could not be read as a video ({type(exc).__name__})") from None


def probe(path: Path) -> VideoInfo:
    """Describe a video file. Frames come from the container index, else counted packets."""
    with _open_input(path) as container:
        if not container.streams.video:
            raise MediaError("the clip has no video stream")
        vs = container.streams.video[0]
        audio_streams = container.streams.audio
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else 0.0
        frames = int(vs.frames or 0)
        if frames <= 0:
            frames = sum(1 for p in container.demux(vs) if p.size > 0)
        if frames and fps:
            duration = frames / fps
        elif vs.duration is not None and vs.time_base is not None:
            duration = float(vs.duration * vs.time_base)
        else:
            duration = (container.duration or 0) / av.time_base
        return VideoInfo(
            duration_s=duration,
            frames=frames,
            fps=fps,
            width=vs.codec_context.width,
            height=vs.codec_context.height,
            has_audio=bool(audio_streams),
            video_codec=vs.codec_context.name,
            audio_codec=audio_streams[0].codec_context.name if audio_streams else None,
            size_bytes=path.stat().st_size,
        )


# ----- fit to size ---------------------------------------------------------------------

_CONTAINER_OVERHEAD = 0.03  # share of the budget kept for the MP4 index and headers
_MIN_BPP = 0.05  # below this many bits per pixel per frame, shrink the picture instead
_TARGET_BPP = 0.08
_MIN_SHORT_EDGE = 144
_MIN_VIDEO_BITRATE = 40_000


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _plan(info: VideoInfo, budget_bytes: int, audio_bps: int) -> tuple[int, int, int]:
    """Video bitrate and picture size for a byte budget (raise if it cannot work)."""
    seconds = max(info.duration_s, 0.1)
    usable = budget_bytes * 8 * (1 - _CONTAINER_OVERHEAD) - 16_000
    video_bps = int(usable / seconds) - (audio_bps if info.has_audio else 0)
    width, height = _even(info.width), _even(info.height)  # yuv420p needs even sizes
    fps = min(info.fps or 25.0, 30.0)  # high frame rates share detail between frames
    if video_bps < _MIN_BPP * width * height * fps:
        scale = math.sqrt(video_bps / (_TARGET_BPP * width * height * fps)) if video_bps > 0 else 0
        short = min(width, height)
        scale = max(scale, min(1.0, _MIN_SHORT_EDGE / short))
        width, height = _even(width * scale), _even(height * scale)
    if video_bps < _MIN_VIDEO_BITRATE:
        raise MediaError(
            "the clip is too large to upload even after re-encoding; "
            "ask for a shorter duration or a lower resolution"
        )
    return video_bps, width, height


def _reencode(
    src: Path, dest: Path, video_bps: int, width: int, height: int, audio_bps: int
) -> None:
    with (
        _open_input(src) as inp,
        av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        ain = inp.streams.audio[0] if inp.streams.audio else None
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.bit_rate = video_bps
        vout.options = {
            "preset": "veryfast",
            "maxrate": str(video_bps),
            "bufsize": str(video_bps),
        }
        vout.codec_context.thread_count = _threads()
        aout = None
        resampler = None
        if ain is not None:
            aout = out.add_stream("aac", rate=AUDIO_RATE)
            aout.layout = "stereo"
            aout.bit_rate = audio_bps
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        streams = [vin] if ain is None else [vin, ain]
        index = 0
        for packet in inp.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    scaled = frame.reformat(width=width, height=height, format="yuv420p")
                    scaled.pts = index
                    scaled.time_base = 1 / Fraction(rate)
                    index += 1
                    out.mux(vout.encode(scaled))
                elif aout is not None and resampler is not None:
                    frame.pts = None
                    for chunk in resampler.resample(frame):
                        out.mux(aout.encode(chunk))
        out.mux(vout.encode(None))
        if aout is not None and resampler is not None:
            for chunk in resampler.resample(None):
                out.mux(aout.encode(chunk))
            out.mux(aout.encode(None))


def fit_to_size(src: Path, dest: Path, max_bytes: int) -> VideoInfo:
    """Copy `src` to `dest` if it fits in `max_bytes`, else re-encode it until it does.

    The video bitrate is computed from the budget and the duration; when that leaves too
    few bits per pixel the picture is scaled down (aspect kept, even sizes). Audio is
    re-encoded to AAC at a modest bitrate. A few tries, each with a tighter budget.
    """
    info = probe(src)
    if info.size_bytes <= max_bytes:
        if src != dest:
            shutil.copyfile(src, dest)
        return probe(dest)
    audio_bps = 96_000 if max_bytes * 8 / max(info.duration_s, 0.1) > 1_000_000 else 48_000
    budget = max_bytes
    for _ in range(4):
        video_bps, width, height = _plan(info, budget, audio_bps)
        with _temp_beside(dest) as tmp:
            _reencode(src, tmp, video_bps, width, height, audio_bps)
            size = tmp.stat().st_size
            if size <= max_bytes:
                tmp.replace(dest)
                return probe(dest)
        # Aim lower by the overshoot plus a margin, then try again.
        budget = int(budget * max_bytes / size * 0.92)
    raise MediaError(
        "the clip is too large to upload even after re-encoding; "
        "ask for a shorter duration or a lower resolution"
    )
