"""ByteCompute client against the fake ByteCompute server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import psutil
import pytest
from PIL import Image

from bot.providers.base import (
    AuthenticationError,
    InputImage,
    InvalidRequestError,
    JobNotFoundError,
    JobState,
    JobStatus,
    Mode,
    NegotiatedRequest,
    NotReadyError,
    ProviderJob,
    RateLimitedError,
    TransientError,
    VideoRequest,
)
from bot.providers.bytecompute import ByteComputeProvider
from bot.providers.http import DownloadError, UnsafeURLError
from tests.fakes.bytecompute_server import ByteComputeVariant, FakeByteCompute
from tests.fakes.provider_fake import pattern_sha256


@pytest.fixture
async def fake() -> AsyncIterator[FakeByteCompute]:
    async with FakeByteCompute(job_seconds=0.05) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


def make(fake: FakeByteCompute, client: httpx.AsyncClient, **kw: Any) -> ByteComputeProvider:
    return ByteComputeProvider(client, api_key=fake.api_key, base_url=fake.base_url + "/v1", **kw)


async def finish(provider: ByteComputeProvider, job: ProviderJob) -> JobStatus:
    for _ in range(500):
        status = await provider.status(job)
        if status.state not in (JobState.QUEUED, JobState.RUNNING):
            return status
        await asyncio.sleep(0.01)
    raise AssertionError("job never finished")


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def probe(path: Path) -> tuple[int, bool]:
    """(decoded video frames, has an audio stream) of an MP4."""
    with av.open(str(path)) as container:
        has_audio = bool(container.streams.audio)
        frames = sum(1 for _ in container.decode(video=0))
    return frames, has_audio


async def submit_text(provider: ByteComputeProvider, **kw: Any) -> ProviderJob:
    request = provider.negotiate(VideoRequest(prompt="a lighthouse", provider="bytecompute", **kw))
    return await provider.submit(request)


async def test_text_to_video_end_to_end(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    provider = make(fake, client)
    job = await submit_text(provider, resolution="1920x1080", duration=6)
    status = await finish(provider, job)
    assert status.state is JobState.COMPLETED
    dest = tmp_path / "clip.mp4"
    await provider.download(job, dest)
    frames, has_audio = probe(dest)
    assert frames > 0 and has_audio
    assert not (tmp_path / "clip.mp4.part").exists()

    generate = fake.requests_to("/v1/generate")[0]
    assert generate.form == {
        "model": "Lightricks/LTX-2.3",
        "prompt": "a lighthouse",
        "duration": "6",
        "resolution": "1920x1080",
        "fps": "25",
    }
    assert generate.authorization == f"Bearer {fake.api_key}"
    assert {r.method for r in fake.requests_to("/v1/jobs/")} == {"POST"}
    fake_job = fake.jobs[job.job_id]
    assert fake_job.status == "completed" and fake_job.done_at is not None
    assert fake_job.done_at >= fake_job.created_at
    assert fake.request_count("/v1/generate") == 1


async def test_image_and_frames_are_accepted(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "frame.png"
    Image.new("RGB", (640, 360), (200, 30, 30)).save(path)
    image = InputImage(
        path=path, mime="image/png", width=640, height=360, sha256=InputImage.sha256_of(path)
    )
    provider = make(fake, client)
    for kw in ({"image": image}, {"first_frame": image, "last_frame": image}):
        request = provider.negotiate(VideoRequest(prompt="zoom", provider="bytecompute", **kw))
        job = await provider.submit(request)
        assert (await finish(provider, job)).state is JobState.COMPLETED
    image_req, frames_req = fake.requests_to("/v1/generate")
    assert image_req.files["image"].size == path.stat().st_size
    assert image_req.files["image"].content_type == "image/png"
    assert set(frames_req.files) == {"first_frame", "last_frame"}
    modes = [fake.jobs[j].params["mode"] for j in fake.jobs]
    assert modes == ["image", "frames"]


@pytest.mark.parametrize("id_key", ["id", "job_id", "jobId"])
@pytest.mark.parametrize("family", ["plain", "alt", "upper"])
async def test_id_and_status_variants(
    fake: FakeByteCompute, client: httpx.AsyncClient, id_key: str, family: str
) -> None:
    fake.response_variant = ByteComputeVariant(id_key=id_key, status_family=family)
    provider = make(fake, client)
    job = await submit_text(provider)
    assert job.job_id in fake.jobs
    assert (await finish(provider, job)).state is JobState.COMPLETED


@pytest.mark.parametrize("family", ["plain", "alt", "upper"])
async def test_failed_job_in_each_family(
    fake: FakeByteCompute, client: httpx.AsyncClient, family: str, tmp_path: Path
) -> None:
    fake.response_variant = ByteComputeVariant(status_family=family)
    fake.job_seconds = 5
    provider = make(fake, client)
    job = await submit_text(provider)
    fake.fail_job(job.job_id, "GPU fell over")
    status = await provider.status(job)
    assert status.state is JobState.FAILED
    assert status.failure_reason == "GPU fell over"
    with pytest.raises(NotReadyError):
        await provider.download(job, tmp_path / "x.mp4")


@pytest.mark.parametrize("shape", ["null", "list", "object", "absent"])
async def test_adjustment_shapes(
    fake: FakeByteCompute, client: httpx.AsyncClient, shape: str
) -> None:
    fake.response_variant = ByteComputeVariant(adjustments=shape)
    provider = make(fake, client)
    plain = await submit_text(provider)
    assert plain.adjustments == []

    # A request the server has to adjust itself (built by hand, past our own negotiation).
    raw = NegotiatedRequest(
        prompt="x",
        provider="bytecompute",
        model="Lightricks/LTX-2.3",
        mode=Mode.TEXT,
        duration=10,
        width=1920,
        height=1080,
        fps=50,
    )
    job = await provider.submit(raw)
    status = await finish(provider, job)
    reported = [(a.field, a.requested, a.actual, a.source) for a in job.adjustments]
    if shape in ("list", "object"):
        assert reported == [("fps", 50, 25, "provider")]
        assert [(a.field, a.actual) for a in status.adjustments] == [("fps", 25)]
    else:
        assert reported == []


async def test_download_variants(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    provider = make(fake, client)
    clip = fake.clip()
    for mode in ("bytes", "redirect", "json"):
        fake.response_variant = ByteComputeVariant(download=mode)
        job = await submit_text(provider)
        await finish(provider, job)
        dest = tmp_path / f"{mode}.mp4"
        await provider.download(job, dest)
        assert dest.read_bytes() == clip, mode
    assert fake.request_count("/files/") == 2  # redirect and JSON fetch the file URL


@pytest.mark.parametrize("code", [301, 302, 303])
async def test_redirect_turns_the_post_into_a_get(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path, code: int
) -> None:
    fake.response_variant = ByteComputeVariant(download="redirect", redirect_code=code)
    provider = make(fake, client)
    job = await submit_text(provider)
    await finish(provider, job)
    await provider.download(job, tmp_path / "c.mp4")
    [fetch] = fake.requests_to("/files/")
    assert fetch.method == "GET"


async def test_five_redirects_are_followed_six_are_not(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    provider = make(fake, client)
    fake.response_variant = ByteComputeVariant(download="redirect", redirect_hops=5)
    job = await submit_text(provider)
    await finish(provider, job)
    await provider.download(job, tmp_path / "five.mp4")
    assert (tmp_path / "five.mp4").read_bytes() == fake.clip()

    fake.response_variant = ByteComputeVariant(download="redirect", redirect_hops=6)
    with pytest.raises(DownloadError, match="too many redirects"):
        await provider.download(job, tmp_path / "six.mp4")
    assert leftovers(tmp_path) == ["five.mp4"]


async def test_redirect_loop_is_refused(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    provider = make(fake, client)
    job = await submit_text(provider)
    await finish(provider, job)
    fake.response_variant = ByteComputeVariant(
        download="redirect", download_url=f"{fake.base_url}/loop/0"
    )
    with pytest.raises(DownloadError, match="too many redirects"):
        await provider.download(job, tmp_path / "loop.mp4")
    assert fake.request_count("/loop/") == 5
    assert leftovers(tmp_path) == []


async def test_credentials_stay_on_the_provider_origin(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # "localhost" is another origin than 127.0.0.1 (trusted here only so the guard lets it by).
    provider = make(fake, client, trusted_hosts=("localhost",))
    job = await submit_text(provider)
    await finish(provider, job)
    fake.response_variant = ByteComputeVariant(download="redirect", redirect_host="localhost")
    await provider.download(job, tmp_path / "a.mp4")
    fake.response_variant = ByteComputeVariant(download="json", redirect_host="localhost")
    await provider.download(job, tmp_path / "b.mp4")
    fetches = fake.requests_to("/files/")
    assert len(fetches) == 2
    assert all(f.authorization is None for f in fetches)
    assert all(f.authorization for f in fake.requests_to("/v1/jobs/"))


@pytest.mark.parametrize(
    "url",
    [
        "http://10.255.255.1/clip.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:{port}/files/x.mp4",
        "file:///etc/passwd",
    ],
)
@pytest.mark.parametrize("mode", ["json", "redirect"])
async def test_private_urls_are_refused(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path, url: str, mode: str
) -> None:
    provider = make(fake, client)
    job = await submit_text(provider)
    await finish(provider, job)
    port = fake.base_url.rsplit(":", 1)[1]
    fake.response_variant = ByteComputeVariant(download=mode, download_url=url.format(port=port))
    before = fake.request_count("/files/")
    # A non-http URL inside JSON is not even taken for a URL; either way nothing is fetched.
    refusal = DownloadError if url.startswith("file") and mode == "json" else UnsafeURLError
    with pytest.raises(refusal):
        await provider.download(job, tmp_path / "x.mp4")
    assert fake.request_count("/files/") == before
    assert leftovers(tmp_path) == []


async def test_announced_size_over_the_cap_is_refused_up_front(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake.download_size = 3 * 2**20
    provider = make(fake, client, max_download_bytes=2**20)
    job = await submit_text(provider)
    await finish(provider, job)
    with pytest.raises(DownloadError, match="more than the 1048576-byte limit"):
        await provider.download(job, tmp_path / "big.mp4")
    assert leftovers(tmp_path) == []


async def test_unannounced_size_over_the_cap_stops_and_cleans_up(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake.download_size = 3 * 2**20
    fake.download_chunked = True
    provider = make(fake, client, max_download_bytes=2**20)
    job = await submit_text(provider)
    await finish(provider, job)
    with pytest.raises(DownloadError, match="larger than the 1048576-byte limit"):
        await provider.download(job, tmp_path / "big.mp4")
    assert leftovers(tmp_path) == []
    # exactly at the cap is fine
    fake.download_size = 2**20
    await provider.download(job, tmp_path / "ok.mp4")
    assert (tmp_path / "ok.mp4").stat().st_size == 2**20


async def test_download_before_completion_is_not_ready(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake.job_seconds = 30
    provider = make(fake, client)
    job = await submit_text(provider)
    assert (await provider.status(job)).state is JobState.QUEUED
    with pytest.raises(NotReadyError):
        await provider.download(job, tmp_path / "early.mp4")
    assert leftovers(tmp_path) == []


async def test_expired_jobs(fake: FakeByteCompute, client: httpx.AsyncClient) -> None:
    provider = make(fake, client)
    job = await submit_text(provider)
    fake.expire_job(job.job_id)
    with pytest.raises(JobNotFoundError):
        await provider.status(job)
    fake.response_variant = ByteComputeVariant(expired_as_status=True)
    assert (await provider.status(job)).state is JobState.EXPIRED
    with pytest.raises(JobNotFoundError):
        await provider.status(ProviderJob(provider="bytecompute", job_id="never-existed"))


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (400, None, InvalidRequestError, "injected HTTP 400"),
        (401, None, AuthenticationError, "rejected the API key"),
        (402, None, AuthenticationError, "out of credit"),
        (404, None, JobNotFoundError, "not found"),
        (409, None, NotReadyError, "not finished"),
        (500, None, TransientError, "server error"),
        (502, "<html><title>502 Bad Gateway</title></html>", TransientError, "502 Bad Gateway"),
        (504, "upstream timed out", TransientError, "upstream timed out"),
    ],
)
async def test_every_error_code(
    fake: FakeByteCompute,
    client: httpx.AsyncClient,
    status: int,
    body: str | None,
    error: type[Exception],
    text: str,
) -> None:
    provider = make(fake, client)
    job = await submit_text(provider)
    fake.fail_next(1, status, body, path_prefix="/v1/jobs/")
    with pytest.raises(error, match=text) as info:
        await provider.status(job)
    assert fake.api_key not in str(info.value)
    assert (await provider.status(job)).state in (
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.COMPLETED,
    )


async def test_malformed_json_is_transient(
    fake: FakeByteCompute, client: httpx.AsyncClient
) -> None:
    provider = make(fake, client)
    fake.fail_next(1, 200, "{half a body", path_prefix="/v1/generate")
    with pytest.raises(TransientError, match="malformed"):
        await submit_text(provider)


@pytest.mark.parametrize("http_date", [False, True])
async def test_429_with_retry_after(
    fake: FakeByteCompute, client: httpx.AsyncClient, http_date: bool
) -> None:
    provider = make(fake, client)
    fake.rate_limit_next(1, retry_after=3, http_date=http_date)
    with pytest.raises(RateLimitedError) as info:
        await submit_text(provider)
    assert info.value.retry_after is not None
    assert info.value.retry_after == pytest.approx(3, abs=1.5)
    assert fake.jobs == {}  # the refused submit made no job
    await submit_text(provider)
    assert len(fake.jobs) == 1


async def test_wrong_key(fake: FakeByteCompute, client: httpx.AsyncClient) -> None:
    provider = ByteComputeProvider(client, api_key="wrong-key-xyz", base_url=fake.base_url)
    with pytest.raises(AuthenticationError) as info:
        await submit_text(provider)
    assert "wrong-key-xyz" not in str(info.value)
    result = await provider.check()
    assert not result.ok and "wrong-key-xyz" not in result.detail
    good = await make(fake, client).check()
    assert good.ok and good.provider == "bytecompute"


async def test_connection_refused_is_transient(client: httpx.AsyncClient) -> None:
    async with FakeByteCompute() as gone:
        url = gone.base_url
    provider = ByteComputeProvider(client, api_key="k", base_url=url)
    with pytest.raises(TransientError):
        await submit_text(provider)
    assert not (await provider.check()).ok


async def test_200_mb_download_streams_with_bounded_memory(
    fake: FakeByteCompute, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    size = 200 * 2**20
    fake.download_size = size
    provider = make(fake, client)
    job = await submit_text(provider)
    await finish(provider, job)

    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, process.memory_info().rss)
            stop.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        await provider.download(job, tmp_path / "big.mp4")
    finally:
        stop.set()
        sampler.join()
    elapsed = time.perf_counter() - started

    assert (tmp_path / "big.mp4").stat().st_size == size
    digest = hashlib.sha256()
    with (tmp_path / "big.mp4").open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    assert digest.hexdigest() == pattern_sha256(size)
    growth = peak - baseline
    print(f"200 MiB download: {elapsed:.2f} s, peak RSS growth {growth / 2**20:.1f} MiB")
    assert growth < 32 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB"
