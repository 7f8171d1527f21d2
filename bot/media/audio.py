"""Soundtracks for audio-to-video: `save_input_audio` checks a member's sound file by decoding
all of it with PyAV (the duration is measured from the decoded samples, never taken from a
header) and writes it unchanged as an `InputAudio`.

Accepted: MP3, WAV, OGG (Vorbis or Opus), FLAC and M4A/AAC, 2–20 s (the LTX API's range;
its input-formats page was not retrievable, so the list is the common formats PyAV decodes).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import av

from bot.media.errors import MediaError
from bot.providers.base import InputAudio

MAX_AUDIO_BYTES = 20 * 1024 * 1024
MIN_AUDIO_SECONDS = 2.0
MAX_AUDIO_SECONDS = 20.0
FORMATS = "MP3, WAV, OGG, FLAC or M4A"
# PyAV's container format name → (MIME type, file extension)
_KINDS = {
    "mp3": ("audio/mpeg", "mp3"),
    "wav": ("audio/wav", "wav"),
    "ogg": ("audio/ogg", "ogg"),
    "flac": ("audio/flac", "flac"),
    "mov,mp4,m4a,3gp,3g2,mj2": ("audio/mp4", "m4a"),
}


def measure_audio(path: Path) -> tuple[str, float]:
    """(PyAV format name, seconds of sound) of a file, by decoding every frame."""
    try:
        with av.open(str(path)) as container:
            if container.streams.video and not all(
                s.disposition & av.stream.Disposition.attached_pic for s in container.streams.video
            ):
                raise MediaError(f"`soundtrack` holds a video; attach a sound file ({FORMATS})")
            if not container.streams.audio:
                raise MediaError(f"`soundtrack` has no sound in it; attach {FORMATS}")
            stream = container.streams.audio[0]
            samples = 0
            rate = 0
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate or rate
            return container.format.name, samples / rate if rate else 0.0
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        raise MediaError(
            f"`soundtrack` could not be read as sound; attach {FORMATS} (2–20 s)"
        ) from None


def save_input_audio(
    data: bytes,
    dest_dir: Path,
    option: str = "soundtrack",
    *,
    max_bytes: int = MAX_AUDIO_BYTES,
    min_seconds: float = MIN_AUDIO_SECONDS,
    max_seconds: float = MAX_AUDIO_SECONDS,
) -> InputAudio:
    """Check `data` by decoding it and write it to `dest_dir/<option>.<ext>`."""
    if len(data) > max_bytes:
        raise MediaError(
            f"`{option}` is {len(data) / 2**20:.1f} MB; sound files must be at most "
            f"{max_bytes / 2**20:.0f} MB"
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest_dir, suffix=".probe", delete=False) as tmp:
        tmp.write(data)
        probe_path = Path(tmp.name)
    try:
        kind, seconds = measure_audio(probe_path)
    except BaseException:
        probe_path.unlink(missing_ok=True)
        raise
    if kind not in _KINDS:
        probe_path.unlink(missing_ok=True)
        raise MediaError(f"`{option}` is a {kind} file; attach {FORMATS}")
    if not min_seconds <= seconds <= max_seconds:
        probe_path.unlink(missing_ok=True)
        raise MediaError(
            f"`{option}` is {seconds:.1f} s long; it must be {min_seconds:g}–{max_seconds:g} s. "
            "Trim it and attach it again."
        )
    mime, extension = _KINDS[kind]
    filename = f"{option}.{extension}"
    path = dest_dir / filename
    probe_path.replace(path)
    return InputAudio(
        path=path,
        mime=mime,
        duration_s=round(seconds, 3),
        sha256=hashlib.sha256(data).hexdigest(),
        filename=filename,
    )
