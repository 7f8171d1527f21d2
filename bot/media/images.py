"""Input images: check an uploaded PNG/JPEG/WebP (format by magic bytes, size, pixels,
damage) with Pillow and save it as an `InputImage`."""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bot.media.errors import MediaError
from bot.providers.base import InputImage

DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
DEFAULT_MIN_IMAGE_EDGE = 64
MAX_IMAGE_BYTES = DEFAULT_MAX_IMAGE_BYTES  # the default upload limit for input images
_MIME_BY_FORMAT = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_EXT_BY_MIME = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
# Errors Pillow raises on broken input, besides its own subclasses of OSError.
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)


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
def quiet_pillow() -> Iterator[None]:
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
        with quiet_pillow():
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
