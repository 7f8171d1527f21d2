"""Attachment bytes fuzzed through `media.check_image_bytes` / `save_input_image`.

Every outcome is either a `MediaError` whose message names the option and says what to
attach, or an `InputImage` whose stored file is exactly the upload and re-opens (fully
decoded) as the declared type and size. Never another exception, never a warning (pytest
turns warnings into errors), and each check is quick.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from hypothesis import currently_in_test_context, event, example, given
from hypothesis import strategies as st
from PIL import Image, ImageOps

from bot import media
from bot.providers.base import InputImage
from tests.fuzz import images
from tests.fuzz.budget import fuzz

CORPUS = images.corpus()
NAMES = sorted(CORPUS)
FORMAT_OF_MIME = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
PER_CHECK_S = 2.0  # generous: a 10 MB upload decodes in well under this


def mutate(data: bytes, op: str, at: int, arg: bytes) -> bytes:
    """One byte-level change at relative position `at` (0..1000 → 0..len)."""
    i = at * len(data) // 1000
    if op == "truncate":
        return data[:i]
    if op == "flip":
        return data[:i] + bytes([(data[i] if i < len(data) else 0) ^ 0xFF]) + data[i + 1 :]
    if op == "overwrite":
        return data[:i] + arg + data[i + len(arg) :]
    if op == "insert":
        return data[:i] + arg + data[i:]
    if op == "delete":
        return data[:i] + data[i + max(1, len(arg)) :]
    if op == "append":
        return data + arg
    if op == "prepend":
        return arg + data
    return data


trailers = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([images.zip_bytes(), images.HTML, CORPUS["png-RGB"], CORPUS["gif"]]),
)
mutated = st.builds(
    mutate,
    st.sampled_from(NAMES).map(CORPUS.__getitem__),
    st.sampled_from(
        ["none", "truncate", "flip", "overwrite", "insert", "delete", "append", "prepend"]
    ),
    st.integers(0, 1000),
    trailers,
)
magic_then_noise = st.builds(
    lambda magic, noise: magic + noise,
    st.sampled_from(
        [
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8\xff",
            b"RIFF\x00\x00\x00\x00WEBPVP8 ",
            b"RIFF\xff\xff\xff\xffWEBPVP8X",
            b"GIF89a",
            b"\x00\x00\x00\x18ftypavif",
            b"<svg",
            b"%PDF",
        ]
    ),
    st.binary(max_size=512),
)
declared_sizes = st.builds(
    lambda kind, w, h: {
        "png": images.png_with_size,
        "jpeg": images.jpeg_with_size,
        "webp": images.webp_with_canvas,
    }[kind](w, h),
    st.sampled_from(["png", "jpeg", "webp"]),
    st.integers(0, 2**24),
    st.integers(0, 2**24),
)
uploads = st.one_of(mutated, mutated, st.binary(max_size=2048), magic_then_noise, declared_sizes)


@contextmanager
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fuzz-img-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def note(text: str) -> None:
    """A hypothesis statistics event (when called from a hypothesis test)."""
    if currently_in_test_context():
        event(text.split("(")[0].strip())


def displayed_size(im: Image.Image, mime: str) -> tuple[int, int]:
    if mime == "image/jpeg":
        return ImageOps.exif_transpose(im).size
    return im.size


def check_upload(data: bytes, option: str = "image") -> InputImage | None:
    with scratch() as tmp:
        started = time.perf_counter()
        try:
            saved = media.save_input_image(data, tmp, option)
        except media.MediaError as exc:
            elapsed = time.perf_counter() - started
            assert f"`{option}`" in exc.message, exc.message
            assert any(w in exc.message for w in ("attach", "re-save", "PNG, JPEG or WebP")), (
                exc.message
            )
            assert list(tmp.iterdir()) == [], "nothing is stored for a refused upload"
            note(f"refused: {exc.message.removeprefix(f'`{option}` ')[:40]}")
            assert elapsed < PER_CHECK_S, f"refusal took {elapsed:.2f}s"
            return None
        elapsed = time.perf_counter() - started
        assert elapsed < PER_CHECK_S, f"check took {elapsed:.2f}s"
        note(f"accepted {saved.mime}")
        assert saved.path.read_bytes() == data
        assert saved.path.name == f"{option}.{saved.extension}" == saved.filename
        assert saved.sha256 == InputImage.sha256_of(saved.path)
        with warnings.catch_warnings():
            # What the bot ignores too (bot.media): Pillow's notes on metadata it skips.
            # Set before opening: Image.open itself reads (and may warn about) EXIF.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            with Image.open(saved.path) as im:
                assert im.format in (FORMAT_OF_MIME[saved.mime], "MPO")
                assert getattr(im, "n_frames", 1) == 1 or im.format == "MPO"
                im.load()
                assert displayed_size(im, saved.mime) == (saved.width, saved.height)
        assert min(saved.width, saved.height) >= media.DEFAULT_MIN_IMAGE_EDGE
        assert saved.width * saved.height <= media.DEFAULT_MAX_IMAGE_PIXELS
        return saved


@fuzz(300)
@given(data=uploads, option=st.sampled_from(["image", "first_frame", "last_frame"]))
@example(data=CORPUS["png-RGB"] + images.zip_bytes(), option="image")  # PNG + zip polyglot
@example(data=CORPUS["jpeg-RGB"] + images.HTML, option="image")  # JPEG + HTML polyglot
@example(data=b"GIF89a" + CORPUS["png-RGB"][6:], option="image")  # GIF header, PNG body
@example(data=images.png_with_size(2**31 - 1, 2**31 - 1), option="image")
@example(data=CORPUS["jpeg-CMYK"], option="first_frame")
def test_uploads_are_accepted_whole_or_refused_clearly(data: bytes, option: str) -> None:
    check_upload(data, option)


@pytest.mark.parametrize("name", NAMES)
def test_every_corpus_image_has_a_clear_outcome(name: str) -> None:
    """The design: still PNG/JPEG/WebP in any mode are accepted (if 64 px or more), the
    rest is refused with the reason."""
    saved = check_upload(CORPUS[name])
    refused = {"apng", "webp-animated", "gif", "bmp", "tiff", "png-tiny"}
    assert (saved is None) == (name in refused), name


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("name", ["png-RGB", "jpeg-RGB", "webp-lossy", "webp-lossless"])
def test_truncated_images_are_refused(name: str, cut: float) -> None:
    data = CORPUS[name]
    assert check_upload(data[: int(len(data) * cut)]) is None


def test_polyglots_keep_the_declared_type() -> None:
    """A valid PNG with a zip/HTML tail is stored as the PNG it starts with, bytes unchanged
    (providers and Discord sniff the start); a GIF header over a PNG body is refused."""
    for tail in (images.zip_bytes(), images.HTML):
        saved = check_upload(CORPUS["png-RGB"] + tail)
        assert saved is not None and saved.mime == "image/png"
    assert check_upload(b"GIF89a" + CORPUS["png-RGB"][6:]) is None


@contextmanager
def peak_rss() -> Iterator[list[int]]:
    """Samples this process's RSS every 2 ms; yields [baseline, peak] (bytes)."""
    proc = psutil.Process()
    result = [proc.memory_info().rss, 0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            result[1] = max(result[1], proc.memory_info().rss)
            stop.wait(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize(
    ("width", "height", "accepted"),
    [(6000, 6000, True), (20_000, 20_000, False), (100_000, 500, False)],
)
def test_decompression_bombs_are_bounded(width: int, height: int, accepted: bool) -> None:
    """A tiny file declaring a huge picture: refused from the header before decoding when
    over the pixel limit; under it, decoding costs at most one picture of memory."""
    data = images.sparse_png(width, height)
    assert len(data) < 1_000_000
    started = time.perf_counter()
    with peak_rss() as rss:
        saved = check_upload(data)
    elapsed = time.perf_counter() - started
    grown = max(0, rss[1] - rss[0])
    assert (saved is not None) is accepted
    if accepted:
        # 36 M greyscale pixels decode to 36 MB (Pillow may hold a copy while verifying).
        assert grown < 200 * 2**20, f"peak RSS grew by {grown / 2**20:.0f} MiB"
        assert elapsed < 5.0
    else:
        assert grown < 20 * 2**20, f"a refused bomb grew RSS by {grown / 2**20:.0f} MiB"
        assert elapsed < 0.5


def test_an_image_over_the_byte_limit_is_refused_before_decoding() -> None:
    data = CORPUS["png-RGB"] + b"\x00" * (media.DEFAULT_MAX_IMAGE_BYTES)
    started = time.perf_counter()
    with pytest.raises(media.MediaError, match="too large"):
        media.check_image_bytes(data)
    assert time.perf_counter() - started < 0.5


def test_exif_rotation_is_reported_as_displayed() -> None:
    saved = check_upload(CORPUS["jpeg-exif-6"])
    assert saved is not None and (saved.width, saved.height) == (80, 120)
    with Image.open(io.BytesIO(CORPUS["jpeg-exif-6"])) as im:
        assert im.size == (120, 80)  # stored landscape, shown portrait
