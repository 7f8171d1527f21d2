"""Leonardo client against the fake Leonardo server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from bot.pricing import LEONARDO_PRO
from bot.providers.base import (
    AuthenticationError,
    InputImage,
    InvalidRequestError,
    JobNotFoundError,
    JobState,
    JobStatus,
    NotReadyError,
    ProviderJob,
    RateLimitedError,
    TransientError,
    VideoRequest,
)
from bot.providers.http import UnsafeURLError
from bot.providers.leonardo import LeonardoProvider
from tests.fakes.leonardo_server import FakeLeonardo


@pytest.fixture
async def fake() -> AsyncIterator[FakeLeonardo]:
    async with FakeLeonardo(job_seconds=0.05) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


def make(fake: FakeLeonardo, client: httpx.AsyncClient, **kw: Any) -> LeonardoProvider:
    return LeonardoProvider(client, api_key=fake.api_key, base_url=fake.rest_url, **kw)


async def finish(provider: LeonardoProvider, job: ProviderJob) -> JobStatus:
    for _ in range(500):
        status = await provider.status(job)
        if status.state not in (JobState.QUEUED, JobState.RUNNING):
            return status
        await asyncio.sleep(0.01)
    raise AssertionError("generation never finished")


def png(tmp_path: Path, name: str, size: tuple[int, int] = (1280, 720)) -> InputImage:
    path = tmp_path / f"{name}.png"
    Image.new("RGB", size, (10, 120, 200)).save(path)
    return InputImage(
        path=path,
        mime="image/png",
        width=size[0],
        height=size[1],
        sha256=InputImage.sha256_of(path),
        filename=f"{name}.png",
    )


def jpeg(tmp_path: Path, name: str) -> InputImage:
    path = tmp_path / f"{name}.jpg"
    Image.new("RGB", (720, 1280), (200, 120, 10)).save(path, "JPEG")
    return InputImage(
        path=path, mime="image/jpeg", width=720, height=1280, sha256="0", filename=f"{name}.jpg"
    )


async def submit(provider: LeonardoProvider, **kw: Any) -> ProviderJob:
    prompt = kw.pop("prompt", "a paper boat on a river")
    request = provider.negotiate(VideoRequest(prompt=prompt, provider="leonardo", **kw))
    return await provider.submit(request)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def decode(path: Path) -> tuple[int, bool]:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0)), bool(container.streams.audio)


async def test_text_to_video_end_to_end(
    fake: FakeLeonardo, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    provider = make(fake, client, model=LEONARDO_PRO)
    job = await submit(provider, duration=10, seed=3)
    assert job.cost_usd == pytest.approx(0.60)  # the fake's DOLLARS cost, read from the answer
    status = await finish(provider, job)
    assert status.state is JobState.COMPLETED
    assert status.result_url == f"{fake.base_url}/cdn/{job.job_id}.mp4"
    dest = tmp_path / "clip.mp4"
    await provider.download(job, dest)
    frames, has_audio = decode(dest)
    assert frames > 0 and has_audio

    [create] = fake.requests_to("/api/rest/v2/generations")
    assert create.json["model"] == "ltxv-2.3-pro"
    assert create.json["parameters"]["prompt"] == "a paper boat on a river"
    assert create.json["parameters"]["prompt_enhance"] == "OFF"
    assert create.authorization == f"Bearer {fake.api_key}"
    [cdn] = fake.requests_to("/cdn/")
    assert cdn.authorization is None  # the key never goes to the CDN
    assert all(r.method == "GET" for r in fake.requests_to("/api/rest/v1/generations/"))


async def test_image_to_video_uploads_through_the_presigned_post(
    fake: FakeLeonardo, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    provider = make(fake, client)
    image = png(tmp_path, "start")
    job = await submit(provider, image=image)
    assert (await finish(provider, job)).state is JobState.COMPLETED
    [upload] = fake.requests_to("/s3-upload")
    assert upload.authorization is None
    assert upload.part_order[-1] == "file"
    assert upload.files["file"].size == image.path.stat().st_size
    [init] = fake.init_images.values()
    assert init.uploaded and init.extension == "png"
    assert set(upload.form) == set(init.fields)
    params = fake.requests_to("/api/rest/v2/generations")[0].json["parameters"]
    assert params["guidances"] == {"start_frame": [{"image": {"id": init.id, "type": "UPLOADED"}}]}


async def test_frames_upload_two_images(
    fake: FakeLeonardo, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    provider = make(fake, client)
    job = await submit(provider, first_frame=jpeg(tmp_path, "a"), last_frame=jpeg(tmp_path, "b"))
    assert (await finish(provider, job)).state is JobState.COMPLETED
    assert len(fake.requests_to("/s3-upload")) == 2
    assert [i.extension for i in fake.init_images.values()] == ["jpg", "jpg"]
    params = fake.requests_to("/api/rest/v2/generations")[0].json["parameters"]
    assert set(params["guidances"]) == {"start_frame", "end_frame"}
    assert (params["width"], params["height"]) == (1080, 1920)  # portrait frames → 9:16


async def test_the_fake_rejects_an_authorized_upload(
    fake: FakeLeonardo, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The check the client must pass is real: with our key on it, the upload fails."""
    provider = make(fake, client)
    upload = await provider.request_init_image("png")
    image = png(tmp_path, "x")
    files: list[tuple[str, Any]] = [(k, (None, v)) for k, v in upload.fields.items()]
    files.append(("file", ("x.png", image.path.read_bytes(), "image/png")))
    answer = await client.post(
        upload.url, files=files, headers={"Authorization": f"Bearer {fake.api_key}"}
    )
    assert answer.status_code == 400 and b"auth mechanism" in answer.content
    answer = await client.post(upload.url, files=files[1:])  # a field missing
    assert answer.status_code == 403


async def test_audio_field_fallback(fake: FakeLeonardo, client: httpx.AsyncClient) -> None:
    fake.audio_field = "audio"
    provider = make(fake, client)
    job = await submit(provider, audio=False)
    bodies = [r.json["parameters"] for r in fake.requests_to("/api/rest/v2/generations")]
    assert [("motion_has_audio" in b, "audio" in b) for b in bodies] == [
        (True, False),
        (False, True),
    ]
    assert bodies[1]["audio"] is False
    assert job.data["audio_field"] == "audio"
    await submit(provider)
    assert fake.request_count("/api/rest/v2/generations") == 3  # remembered: no retry


async def test_seed_rejected_is_dropped(fake: FakeLeonardo, client: httpx.AsyncClient) -> None:
    fake.accept_seed = False
    provider = make(fake, client)
    job = await submit(provider, seed=1234)
    assert [(a.field, a.requested, a.actual) for a in job.adjustments] == [("seed", 1234, None)]
    assert (await finish(provider, job)).state is JobState.COMPLETED


@pytest.mark.parametrize("shape", ["generate", "top"])
async def test_submit_shapes(fake: FakeLeonardo, client: httpx.AsyncClient, shape: str) -> None:
    fake.submit_shape = shape
    provider = make(fake, client)
    job = await submit(provider)
    assert job.job_id in fake.jobs
    if shape == "generate":
        assert job.cost_usd == pytest.approx(8 * 0.06)
    else:
        assert job.cost_usd is None and job.data["cost"] == {"amount": 25.0, "unit": "CREDITS"}


async def test_null_generation_then_pending_then_complete(
    fake: FakeLeonardo, client: httpx.AsyncClient
) -> None:
    fake.null_seconds = 0.1
    fake.job_seconds = 0.2
    provider = make(fake, client)
    job = await submit(provider)
    states = []
    while True:
        status = await provider.status(job)
        states.append(status.state)
        if status.state is JobState.COMPLETED:
            break
        await asyncio.sleep(0.02)
    assert states[0] is JobState.QUEUED
    assert JobState.RUNNING in states
    assert states.index(JobState.RUNNING) > states.index(JobState.QUEUED)


async def test_complete_without_url_is_still_running_for_a_while(
    fake: FakeLeonardo, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake.url_lag_seconds = 0.15
    provider = make(fake, client)
    job = await submit(provider)
    await asyncio.sleep(0.06)
    early = await provider.status(job)
    assert early.state is JobState.RUNNING  # COMPLETE, but no motionMP4URL yet
    with pytest.raises(NotReadyError):
        await provider.download(job, tmp_path / "early.mp4")
    assert (await finish(provider, job)).state is JobState.COMPLETED


async def test_complete_without_url_for_too_long_fails(
    fake: FakeLeonardo, client: httpx.AsyncClient
) -> None:
    fake.url_lag_seconds = 60
    provider = make(fake, client, url_grace_seconds=0.1)
    job = await submit(provider)
    status = await finish(provider, job)
    assert status.state is JobState.FAILED
    assert "no video URL" in (status.failure_reason or "")


async def test_failed_generation(fake: FakeLeonardo, client: httpx.AsyncClient) -> None:
    fake.job_seconds = 10
    provider = make(fake, client)
    job = await submit(provider)
    fake.fail_job(job.job_id)
    status = await provider.status(job)
    assert status.state is JobState.FAILED and status.failure_reason


async def test_unknown_generation_after_grace(
    fake: FakeLeonardo, client: httpx.AsyncClient
) -> None:
    provider = make(fake, client, missing_grace_seconds=0)
    with pytest.raises(JobNotFoundError):
        await provider.status(ProviderJob(provider="leonardo", job_id="no-such-generation"))


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.7/v.mp4", "http://169.254.169.254/v.mp4", "http://localhost:{port}/cdn/x.mp4"],
)
async def test_private_motion_url_is_refused(
    fake: FakeLeonardo, client: httpx.AsyncClient, tmp_path: Path, url: str
) -> None:
    fake.motion_url_override = url.format(port=fake.base_url.rsplit(":", 1)[1])
    provider = make(fake, client)
    job = await submit(provider)
    await finish(provider, job)
    with pytest.raises(UnsafeURLError):
        await provider.download(job, tmp_path / "x.mp4")
    assert fake.request_count("/cdn/") == 0
    assert leftovers(tmp_path) == []


async def test_invalid_body_is_reported_to_the_member(
    fake: FakeLeonardo, client: httpx.AsyncClient
) -> None:
    provider = make(fake, client)
    request = provider.negotiate(VideoRequest(prompt="x", provider="leonardo"))
    bad = request.model_copy(update={"duration": 7})  # past negotiation: not a Leonardo value
    with pytest.raises(InvalidRequestError, match="duration 7 is not allowed"):
        await provider.submit(bad)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, JobNotFoundError),
        (500, TransientError),
        (503, TransientError),
    ],
)
async def test_error_codes(
    fake: FakeLeonardo, client: httpx.AsyncClient, status: int, error: type[Exception]
) -> None:
    provider = make(fake, client)
    fake.fail_next(1, status, path_prefix="/api/rest/v2/generations")
    with pytest.raises(error) as info:
        await submit(provider)
    assert fake.api_key not in str(info.value)
    assert fake.jobs == {}


async def test_429_with_retry_after(fake: FakeLeonardo, client: httpx.AsyncClient) -> None:
    provider = make(fake, client)
    job = await submit(provider)
    fake.rate_limit_next(1, retry_after=4, path_prefix="/api/rest/v1/generations/")
    with pytest.raises(RateLimitedError) as info:
        await provider.status(job)
    assert info.value.retry_after == 4.0


async def test_check(fake: FakeLeonardo, client: httpx.AsyncClient) -> None:
    good = await make(fake, client).check()
    assert good.ok
    assert "concurrency slots: 5" in good.detail and "API paid 12.4567" in good.detail
    bad = await LeonardoProvider(client, api_key="nope-key", base_url=fake.rest_url).check()
    assert not bad.ok and "rejected the API key" in bad.detail and "nope-key" not in bad.detail


async def test_fake_me_matches_the_published_shape(
    fake: FakeLeonardo, client: httpx.AsyncClient
) -> None:
    answer = await client.get(
        f"{fake.rest_url}/v1/me", headers={"Authorization": f"Bearer {fake.api_key}"}
    )
    details = answer.json()["user_details"][0]
    spec_keys = {
        "user",
        "tokenRenewalDate",
        "paidTokens",
        "subscriptionTokens",
        "subscriptionGptTokens",
        "subscriptionModelTokens",
        "apiConcurrencySlots",
        "apiPaidTokens",
        "apiSubscriptionTokens",
        "apiPlanTokenRenewalDate",
    }
    assert set(details) == spec_keys
    assert json.loads(json.dumps(details))["apiConcurrencySlots"] == 5
