"""A corpus of real images in many modes and containers, and byte-level mutations of them."""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib

from PIL import Image


def _save(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **params)
    return out.getvalue()


def _picture(mode: str, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A small picture with some structure (gradient and a block), in `mode`."""
    width, height = size
    base = Image.linear_gradient("L").resize(size)
    rgb = Image.merge("RGB", (base, base.rotate(90).resize(size), base.transpose(0)))
    rgb.paste((250, 30, 30), (width // 4, height // 4, width // 2, height // 2))
    if mode == "RGB":
        return rgb
    if mode == "P":
        return rgb.quantize(16)
    if mode == "PA":  # palette with a transparent index
        im = rgb.quantize(16)
        im.info["transparency"] = 0
        return im
    if mode == "I;16":
        return base.convert("I").point(lambda v: v * 250).convert("I;16")
    return rgb.convert(mode)


@functools.cache
def corpus() -> dict[str, bytes]:
    """name → bytes of a valid file (some of them refused by design: GIF, BMP, animations)."""
    out: dict[str, bytes] = {}
    for mode in ("RGB", "RGBA", "L", "LA", "1", "P", "PA", "I;16"):
        out[f"png-{mode}"] = _save(_picture(mode), "PNG")
    out["png-interlaced"] = _save(_picture("RGB"), "PNG", optimize=True)
    out["png-tiny"] = _save(_picture("RGB", (20, 300)), "PNG")
    for mode in ("RGB", "L", "CMYK"):
        out[f"jpeg-{mode}"] = _save(_picture(mode), "JPEG", quality=80)
    out["jpeg-progressive"] = _save(_picture("RGB"), "JPEG", progressive=True)
    for orientation in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        out[f"jpeg-exif-{orientation}"] = _save(_picture("RGB", (120, 80)), "JPEG", exif=exif)
    out["webp-lossy"] = _save(_picture("RGB"), "WEBP", quality=70)
    out["webp-lossless"] = _save(_picture("RGBA"), "WEBP", lossless=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    out["webp-exif"] = _save(_picture("RGB"), "WEBP", exif=exif)  # a VP8X container
    frames = [_picture("RGB"), _picture("RGB").rotate(180)]
    out["apng"] = _save(frames[0], "PNG", save_all=True, append_images=frames[1:])
    out["webp-animated"] = _save(frames[0], "WEBP", save_all=True, append_images=frames[1:])
    out["gif"] = _save(_picture("P"), "GIF")
    out["bmp"] = _save(_picture("RGB"), "BMP")
    out["tiff"] = _save(_picture("RGB"), "TIFF")
    return out


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.html", "<script>alert(1)</script>")
    return out.getvalue()


HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


def png_with_size(width: int, height: int, data: bytes | None = None) -> bytes:
    """A PNG whose IHDR declares `width`×`height` (valid CRC), with the body of `data`."""
    data = data or corpus()["png-RGB"]
    ihdr = bytearray(data[12:29])  # type + 13 bytes of data
    struct.pack_into(">II", ihdr, 4, width, height)
    crc = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return data[:12] + bytes(ihdr) + crc + data[33:]


def jpeg_with_size(width: int, height: int, data: bytes | None = None) -> bytes:
    """A JPEG whose SOF marker declares `width`×`height`."""
    data = bytearray(data or corpus()["jpeg-RGB"])
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            struct.pack_into(">HH", data, at + 5, height & 0xFFFF, width & 0xFFFF)
            break
    return bytes(data)


def webp_with_canvas(width: int, height: int) -> bytes:
    """A VP8X WebP whose canvas is declared `width`×`height` (24-bit fields, minus one)."""
    data = bytearray(corpus()["webp-exif"])
    at = data.find(b"VP8X")
    assert at >= 0
    data[at + 12 : at + 15] = (max(width, 1) - 1).to_bytes(3, "little")
    data[at + 15 : at + 18] = (max(height, 1) - 1).to_bytes(3, "little")
    return bytes(data)


def sparse_png(width: int, height: int) -> bytes:
    """A real, valid all-black PNG of `width`×`height` written row by row (tiny on disk):
    the decompression-bomb shape."""
    raw_row = b"\x00" + b"\x00" * width  # filter byte + one grey byte per pixel
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(raw_row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
