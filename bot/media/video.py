"""Finished clips: `probe` describes a video file (PyAV); `fit_to_size` copies it, or
re-encodes it (lower bitrate, then smaller picture) until it fits an upload limit;
`save_source_clip` keeps a delivered clip to edit as an `InputVideo`."""

from __future__ import annotations

import hashlib
import math
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from bot.media.errors import MediaError
from bot.media.output import AUDIO_RATE, encoder_threads, temp_beside
from bot.providers.base import InputVideo


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
        vout.codec_context.thread_count = encoder_threads()
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
        with temp_beside(dest) as tmp:
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


def save_source_clip(data: bytes, dest_dir: Path, name: str = "source") -> InputVideo:
    """A delivered clip to edit (Extend / Retake), written to `dest_dir/<name>.mp4` and
    probed by decoding it; MediaError when it is not a readable video."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{name}.mp4"
    path.write_bytes(data)
    try:
        info = probe(path)
    except MediaError:
        path.unlink(missing_ok=True)
        raise
    if info.frames <= 0 or info.fps <= 0:
        path.unlink(missing_ok=True)
        raise MediaError("the clip could not be read as a video")
    return InputVideo(
        path=path,
        width=info.width,
        height=info.height,
        fps=info.fps,
        frames=info.frames,
        duration_s=round(info.duration_s, 3),
        sha256=hashlib.sha256(data).hexdigest(),
        filename=path.name,
    )


def sample_frames(
    path: Path, *, per_second: float = 1.0, max_frames: int = 120, max_edge: int = 640
) -> list[Any]:
    """About `per_second` decoded frames per second of the clip (the first at 0 s), as BGR
    `numpy` arrays no larger than `max_edge` (aspect kept); at most `max_frames` of them.

    For the output safety check (`bot.safety`): frames are picked by their presentation
    time, so a variable frame rate or a clip without an index still gives one per second.
    """
    step = 1.0 / per_second
    frames: list[Any] = []
    with _open_input(path) as container:
        if not container.streams.video:
            raise MediaError("the clip has no video stream")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        due = 0.0
        for frame in container.decode(vs):
            moment = frame.time if frame.time is not None else due
            if moment + 1e-6 < due:
                continue
            scale = min(1.0, max_edge / max(frame.width, frame.height))
            picture = frame.reformat(
                width=_even(frame.width * scale), height=_even(frame.height * scale), format="bgr24"
            )
            frames.append(picture.to_ndarray())
            if len(frames) >= max_frames:
                break
            due = (math.floor(moment / step + 1e-6) + 1) * step
    if not frames:
        raise MediaError("the clip has no decodable video frames")
    return frames
