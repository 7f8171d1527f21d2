from __future__ import annotations

import hashlib
import io
import math
import random
import struct
import zlib
from array import array
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image, ImageStat

from bot.media import (
    MediaError,
    check_image_bytes,
    fit_to_size,
    probe,
    render_clip,
    save_input_image,
)

# ----- helpers -------------------------------------------------------------------------


def image_bytes(fmt: str, size=(200, 120), colour=(200, 30, 40), **save) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt, **save)
    return buf.getvalue()


def noisy_png(size=(256, 256)) -> bytes:
    rng = random.Random(1)
    img = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height (a decompression-bomb shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (128, 128), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def decoded_frames(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as c:
        return [f.to_image() for f in c.decode(video=0)]


def mean_rgb(img: Image.Image) -> tuple[float, float, float]:
    r, g, b = ImageStat.Stat(img.convert("RGB")).mean
    return r, g, b


def distance(a, b) -> float:
    return math.dist(a, b)


def audio_rms(path: Path) -> tuple[float, float, int]:
    """(rms, seconds, sample_rate) of the first channel of the first audio stream."""
    total = 0.0
    count = 0
    rate = 0
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            rate = frame.sample_rate
            assert frame.format.name == "fltp"
            samples = array("f", bytes(frame.planes[0]))[: frame.samples]
            total += sum(s * s for s in samples)
            count += len(samples)
    return math.sqrt(total / max(1, count)), count / max(1, rate), rate


# ----- check_image_bytes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_accepts_still_images(fmt, mime):
    info = check_image_bytes(image_bytes(fmt, (300, 150)))
    assert (info.mime, info.width, info.height) == (mime, 300, 150)


def test_jpeg_exif_rotation_reports_displayed_size():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: stored 300×150 is shown as 150×300
    info = check_image_bytes(image_bytes("JPEG", (300, 150), exif=exif.tobytes()))
    assert (info.width, info.height) == (150, 300)


def test_refuses_gif_by_content_with_option_name():
    with pytest.raises(MediaError) as err:
        check_image_bytes(image_bytes("GIF"), option="first_frame")
    assert err.value.message == "`first_frame` must be a PNG, JPEG or WebP image (got GIF)"


def test_refuses_text_file_whatever_its_name(tmp_path):
    with pytest.raises(MediaError, match="not an image") as err:
        save_input_image(b"just some text, named cat.png\n", tmp_path, "image")
    assert "`image`" in err.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_refuses_truncated_files(fmt):
    if fmt == "PNG":
        data = noisy_png()
    else:
        rng = random.Random(2)
        img = Image.frombytes("RGB", (256, 256), rng.randbytes(256 * 256 * 3))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=95)
        data = buf.getvalue()
    check_image_bytes(data)  # the whole file is fine
    with pytest.raises(MediaError, match="damaged or incomplete"):
        check_image_bytes(data[: len(data) // 2])


def test_refuses_corrupt_png_crc():
    data = bytearray(noisy_png())
    data[40] ^= 0xFF  # inside the first IDAT chunk
    with pytest.raises(MediaError, match="damaged"):
        check_image_bytes(bytes(data))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_refuses_animated_images(fmt):
    data = animated(fmt)
    with pytest.raises(MediaError, match="animated"):
        check_image_bytes(data, option="image")


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (50_000, 50_000),  # far past Pillow's own bomb error threshold
        (10_000, 10_000),  # between Pillow's warning and error thresholds
        (8_000, 6_000),  # over our limit, under Pillow's
    ],
)
def test_refuses_pixel_bombs_from_the_header(width, height):
    data = png_header_only(width, height)
    assert len(data) < 200
    with pytest.raises(MediaError, match="too many pixels"):
        check_image_bytes(data)


def test_pixel_limit_is_configurable():
    data = image_bytes("PNG", (400, 300))
    check_image_bytes(data, max_pixels=120_000)
    with pytest.raises(MediaError, match="too many pixels"):
        check_image_bytes(data, max_pixels=119_999)


def test_refuses_tiny_images():
    with pytest.raises(MediaError, match=r"too small \(32×40\).*64 pixels"):
        check_image_bytes(image_bytes("PNG", (32, 40)))


def test_refuses_too_many_bytes_and_empty():
    data = image_bytes("PNG")
    with pytest.raises(MediaError, match="too large"):
        check_image_bytes(data, max_bytes=len(data) - 1)
    check_image_bytes(data, max_bytes=len(data))
    with pytest.raises(MediaError, match="empty"):
        check_image_bytes(b"")


@pytest.mark.parametrize(("fmt", "ext"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_save_input_image(tmp_path, fmt, ext):
    data = image_bytes(fmt, (160, 90))
    img = save_input_image(data, tmp_path / "in", "last_frame")
    assert img.filename == f"last_frame.{ext}"
    assert img.path == tmp_path / "in" / f"last_frame.{ext}"
    assert img.path.read_bytes() == data
    assert img.sha256 == hashlib.sha256(data).hexdigest() == img.sha256_of(img.path)
    assert (img.width, img.height, img.extension) == (160, 90, ext)


# ----- render_clip + probe -------------------------------------------------------------


def test_render_and_probe(tmp_path):
    dest = tmp_path / "out" / "clip.mp4"
    render_clip(
        dest,
        prompt="a lighthouse in a storm",
        width=320,
        height=192,
        fps=25,
        duration=2,
        audio=True,
        seed=7,
    )
    info = probe(dest)
    assert info.frames == 50
    assert info.fps == 25
    assert info.duration_s == pytest.approx(2.0, abs=0.04)
    assert (info.width, info.height) == (320, 192)
    assert (info.video_codec, info.audio_codec, info.has_audio) == ("h264", "aac", True)
    assert info.size_bytes == dest.stat().st_size
    with av.open(str(dest)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert c.streams.audio[0].codec_context.sample_rate == 48_000
    frames = decoded_frames(dest)
    assert len(frames) == 50
    assert frames[0].tobytes() != frames[-1].tobytes()  # it moves
    rms, seconds, rate = audio_rms(dest)
    assert rate == 48_000
    assert seconds == pytest.approx(2.0, abs=0.05)
    assert rms > 0.05  # audible
    assert [p.name for p in dest.parent.iterdir()] == ["clip.mp4"]  # no temp files left


def test_render_without_audio_at_50_fps(tmp_path):
    dest = tmp_path / "clip.mp4"
    render_clip(dest, prompt="x", width=256, height=256, fps=50, duration=1, audio=False, seed=None)
    info = probe(dest)
    assert (info.frames, info.fps, info.has_audio, info.audio_codec) == (50, 50, False, None)
    assert info.duration_s == pytest.approx(1.0)


def test_render_depends_on_prompt_and_seed_and_is_deterministic(tmp_path):
    def first(prompt, seed, name):
        dest = tmp_path / name
        render_clip(
            dest,
            prompt=prompt,
            width=192,
            height=128,
            fps=25,
            duration=1,
            audio=False,
            seed=seed,
        )
        return decoded_frames(dest)[0]

    a = first("a cat", 1, "a.mp4")
    again = first("a cat", 1, "a2.mp4")
    other_seed = first("a cat", 2, "b.mp4")
    other_prompt = first("a dog", 1, "c.mp4")
    assert a.tobytes() == again.tobytes()
    assert a.tobytes() != other_seed.tobytes()
    assert a.tobytes() != other_prompt.tobytes()
    assert max(distance(mean_rgb(a), mean_rgb(x)) for x in (other_seed, other_prompt)) > 10


@pytest.mark.parametrize(
    "prompt",
    ["word " * 1000, "https://example.com/" + "a" * 300, "日本語 🦊🔥 مرحبا\x00\t\u200b", "   "],
)
def test_render_copes_with_any_prompt_text(tmp_path, prompt):
    dest = tmp_path / "clip.mp4"
    render_clip(dest, prompt=prompt, width=128, height=96, fps=25, duration=1, audio=False, seed=3)
    assert probe(dest).frames == 25


def test_render_image_and_frames(tmp_path):
    red = tmp_path / "red.png"
    blue = tmp_path / "blue.jpg"
    Image.new("RGB", (400, 400), (220, 30, 30)).save(red)
    Image.new("RGB", (300, 500), (30, 40, 220)).save(blue, quality=95)

    i2v = tmp_path / "i2v.mp4"
    render_clip(
        i2v,
        prompt="p",
        width=256,
        height=144,
        fps=25,
        duration=1,
        audio=True,
        seed=1,
        image=red,
    )
    frames = decoded_frames(i2v)
    assert distance(mean_rgb(frames[0]), (220, 30, 30)) < 40

    f2v = tmp_path / "f2v.mp4"
    render_clip(
        f2v,
        prompt="p",
        width=144,
        height=256,
        fps=25,
        duration=1,
        audio=True,
        seed=1,
        first_frame=red,
        last_frame=blue,
    )
    frames = decoded_frames(f2v)
    assert distance(mean_rgb(frames[0]), (220, 30, 30)) < 40
    assert distance(mean_rgb(frames[-1]), (30, 40, 220)) < 40


def test_render_refuses_odd_sizes(tmp_path):
    with pytest.raises(ValueError, match="even"):
        render_clip(
            tmp_path / "x.mp4",
            prompt="p",
            width=101,
            height=100,
            fps=25,
            duration=1,
            audio=False,
            seed=None,
        )
    assert not (tmp_path / "x.mp4").exists()


def test_probe_refuses_non_video(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(MediaError, match="could not be read"):
        probe(junk)


# ----- fit_to_size ---------------------------------------------------------------------


def noise_clip(
    path: Path, *, width: int, height: int, frames: int, fps: int = 25, audio: bool = True
) -> None:
    """A high-bitrate clip: random pixels at near-lossless quality, plus a tone."""
    rng = random.Random(5)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"preset": "ultrafast", "crf": "8"}
        a = out.add_stream("aac", rate=48_000) if audio else None
        if a is not None:
            a.layout = "mono"
        for i in range(frames):
            img = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
            frame = av.VideoFrame.from_image(img)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is None:
            return
        n = 48_000 * frames // fps
        pcm = array("f", (0.3 * math.sin(2 * math.pi * 330 * k / 48_000) for k in range(n)))
        af = av.AudioFrame(format="fltp", layout="mono", samples=n)
        af.planes[0].update(pcm.tobytes())
        af.sample_rate, af.pts, af.time_base = 48_000, 0, Fraction(1, 48_000)
        out.mux(a.encode(af))
        out.mux(a.encode(None))


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fit") / "big.mp4"
    noise_clip(path, width=320, height=180, frames=50)
    return path


def test_fit_copies_when_it_fits(tmp_path, big_clip):
    dest = tmp_path / "same.mp4"
    info = fit_to_size(big_clip, dest, big_clip.stat().st_size)
    assert dest.read_bytes() == big_clip.read_bytes()
    assert info == probe(big_clip)


def test_fit_reencodes_to_budget(tmp_path, big_clip):
    src = probe(big_clip)
    assert src.size_bytes > 2 * 1024 * 1024
    dest = tmp_path / "fit.mp4"
    info = fit_to_size(big_clip, dest, 1024 * 1024)
    assert info.size_bytes == dest.stat().st_size <= 1024 * 1024
    assert (info.width, info.height) == (320, 180)  # plenty of bits per pixel: no rescale
    assert info.has_audio and info.audio_codec == "aac"
    assert abs(info.frames - src.frames) <= 1
    assert info.duration_s == pytest.approx(src.duration_s, abs=1 / 25 + 1e-6)
    assert len(decoded_frames(dest)) == info.frames
    rms, seconds, _ = audio_rms(dest)
    assert rms > 0.05 and seconds == pytest.approx(2.0, abs=0.1)


def test_fit_scales_down_when_the_budget_is_tight(tmp_path):
    src_path = tmp_path / "wide.mp4"
    noise_clip(src_path, width=640, height=360, frames=25)
    dest = tmp_path / "small.mp4"
    info = fit_to_size(src_path, dest, 40_000)
    assert info.size_bytes <= 40_000
    assert info.width < 640 and info.width % 2 == 0 and info.height % 2 == 0
    assert info.width / info.height == pytest.approx(640 / 360, rel=0.03)
    assert info.frames == 25 and info.has_audio


def test_fit_without_audio(tmp_path):
    src = tmp_path / "silent.mp4"
    noise_clip(src, width=320, height=180, frames=20, audio=False)
    info = fit_to_size(src, tmp_path / "fit.mp4", src.stat().st_size // 4)
    assert info.size_bytes <= src.stat().st_size // 4
    assert (info.frames, info.has_audio) == (20, False)


def test_fit_gives_up_with_a_clear_message(tmp_path, big_clip):
    dest = tmp_path / "never.mp4"
    with pytest.raises(MediaError, match="too large to upload even after re-encoding"):
        fit_to_size(big_clip, dest, 5_000)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == []
