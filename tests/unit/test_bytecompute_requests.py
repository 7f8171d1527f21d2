"""ByteCompute request shapes and answer parsing, against httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.providers.base import (
    AuthenticationError,
    InputImage,
    InvalidRequestError,
    JobNotFoundError,
    JobState,
    NotReadyError,
    OutcomeUnknownError,
    Provider,
    ProviderJob,
    RateLimitedError,
    TransientError,
    VideoRequest,
)
from bot.providers.bytecompute import ByteComputeProvider, parse_adjustments, parse_state

KEY = "bytecompute_secret_key_0123456789"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def multipart(request: httpx.Request) -> list[dict[str, Any]]:
    """The parts of a multipart body: name, filename, content type, raw bytes."""
    ctype = request.headers["content-type"]
    assert ctype.startswith("multipart/form-data; boundary=")
    message = BytesParser(policy=policy.default).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + request.content
    )
    parts = []
    for part in message.iter_parts():
        parts.append(
            {
                "name": part.get_param("name", header="content-disposition"),
                "filename": part.get_filename(),
                "content_type": part["content-type"],
                "data": part.get_payload(decode=True),
            }
        )
    return parts


class Recorder:
    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.respond(request)


def provider_with(
    respond: Callable[[httpx.Request], httpx.Response], base_url: str = "https://bc.example/v1/"
) -> tuple[ByteComputeProvider, Recorder, httpx.AsyncClient]:
    recorder = Recorder(respond)
    client = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return ByteComputeProvider(client, api_key=KEY, base_url=base_url), recorder, client


def ok(body: Any, status: int = 200, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body, headers=headers)


def input_image(tmp_path: Path, name: str, mime: str = "image/png") -> InputImage:
    path = tmp_path / f"{name}.bin"
    path.write_bytes(PNG + name.encode())
    return InputImage(
        path=path, mime=mime, width=800, height=600, sha256="0", filename=f"{name}.png"
    )


async def test_text_submit_sends_exactly_the_documented_fields() -> None:
    provider, rec, client = provider_with(ok({"id": "job-1", "status": "queued"}))
    async with client:
        assert isinstance(provider, Provider)
        request = provider.negotiate(
            VideoRequest(prompt="  a red fox  ", provider="bytecompute", fps=50, duration=6)
        )
        job = await provider.submit(request)
    [sent] = rec.requests
    assert sent.method == "POST"
    assert str(sent.url) == "https://bc.example/v1/generate"  # no doubled /v1
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    parts = multipart(sent)
    assert [p["name"] for p in parts] == ["model", "prompt", "duration", "resolution", "fps"]
    values = {p["name"]: p["data"].decode() for p in parts}
    assert values == {
        "model": "Lightricks/LTX-2.3",
        "prompt": "a red fox",
        "duration": "6",
        "resolution": "1280x720",
        "fps": "50",
    }
    assert all(p["filename"] is None and p["content_type"] is None for p in parts)
    assert job.job_id == "job-1"
    assert job.provider == "bytecompute"
    assert KEY not in json.dumps(job.data) and KEY not in repr(provider)


@pytest.mark.parametrize(
    ("kind", "names"),
    [("image", ["image"]), ("frames", ["first_frame", "last_frame"]), ("first", ["first_frame"])],
)
async def test_images_go_as_file_parts(tmp_path: Path, kind: str, names: list[str]) -> None:
    images: dict[str, InputImage] = {}
    if kind == "image":
        images["image"] = input_image(tmp_path, "image", "image/jpeg")
    else:
        images["first_frame"] = input_image(tmp_path, "first_frame")
        if kind == "frames":
            images["last_frame"] = input_image(tmp_path, "last_frame", "image/webp")
    provider, rec, client = provider_with(ok({"job_id": "j"}))
    async with client:
        request = provider.negotiate(VideoRequest(prompt="p", provider="bytecompute", **images))
        await provider.submit(request)
    parts = multipart(rec.requests[0])
    files = [p for p in parts if p["filename"] is not None]
    assert [p["name"] for p in files] == names
    for part in files:
        image = images[part["name"]]
        assert part["filename"] == image.filename
        assert part["content_type"] == image.mime
        assert part["data"] == image.path.read_bytes()
    text = {p["name"] for p in parts if p["filename"] is None}
    assert text == {"model", "prompt", "duration", "resolution", "fps"}


@pytest.mark.parametrize(
    ("body", "job_id"),
    [
        ({"id": "a"}, "a"),
        ({"job_id": "b"}, "b"),
        ({"jobId": "c"}, "c"),
        ({"id": 42}, "42"),
        ({"job": {"id": "nested"}}, "nested"),
    ],
)
async def test_job_id_variants(body: dict[str, Any], job_id: str) -> None:
    provider, _, client = provider_with(ok(body))
    async with client:
        request = provider.negotiate(VideoRequest(prompt="p", provider="bytecompute"))
        assert (await provider.submit(request)).job_id == job_id


async def test_submit_without_id_or_json_is_transient() -> None:
    for respond in (
        ok({"status": "queued"}),
        lambda r: httpx.Response(200, text="<html>oops</html>"),
    ):
        provider, _, client = provider_with(respond)
        async with client:
            request = provider.negotiate(VideoRequest(prompt="p", provider="bytecompute"))
            with pytest.raises(TransientError):
                await provider.submit(request)


async def test_submit_timeout_after_sending_is_outcome_unknown() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer")

    provider, _, client = provider_with(boom)
    async with client:
        request = provider.negotiate(VideoRequest(prompt="p", provider="bytecompute"))
        with pytest.raises(OutcomeUnknownError):
            await provider.submit(request)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ([], []),
        (
            [{"field": "fps", "from": 50, "to": 25, "reason": "GPU"}],
            [("fps", 50, 25, "GPU")],
        ),
        (
            [{"parameter": "duration", "original": 10, "adjusted": 8, "message": "too long"}],
            [("duration", 10, 8, "too long")],
        ),
        (
            {"resolution": {"requested": "1920x1080", "actual": "1280x720"}},
            [("resolution", "1920x1080", "1280x720", "")],
        ),
        ({"fps": 25, "duration": 4}, [("fps", None, 25, ""), ("duration", None, 4, "")]),
        ({"field": "fps", "old": 50, "new": 25}, [("fps", 50, 25, "")]),
        (["fps lowered to 25"], [("other", None, None, "fps lowered to 25")]),
        ("resolution reduced", [("other", None, None, "resolution reduced")]),
    ],
)
def test_adjustment_shapes(value: Any, expected: list[tuple[Any, ...]]) -> None:
    parsed = parse_adjustments(value)
    assert [(a.field, a.requested, a.actual, a.reason) for a in parsed] == expected
    assert all(a.source == "provider" for a in parsed)


async def test_submit_reports_provider_adjustments() -> None:
    body = {"id": "x", "adjustments": [{"field": "fps", "from": 50, "to": 25}]}
    provider, _, client = provider_with(ok(body))
    async with client:
        request = provider.negotiate(VideoRequest(prompt="p", provider="bytecompute"))
        job = await provider.submit(request)
    assert [(a.field, a.actual, a.source) for a in job.adjustments] == [("fps", 25, "provider")]


@pytest.mark.parametrize(
    ("words", "state"),
    [
        (["queued", "pending", "QUEUED", "waiting", "submitted"], JobState.QUEUED),
        (["processing", "running", "IN_PROGRESS", "in-progress", "started"], JobState.RUNNING),
        (["completed", "succeeded", "SUCCESS", "done", "Complete"], JobState.COMPLETED),
        (["failed", "error", "FAILED", "errored"], JobState.FAILED),
        (["cancelled", "canceled", "CANCELLED"], JobState.CANCELLED),
        (["expired", "EXPIRED"], JobState.EXPIRED),
        (["warming_up", "", None], JobState.RUNNING),
    ],
)
def test_status_word_families(words: list[Any], state: JobState) -> None:
    assert {parse_state(w) for w in words} == {state}


async def test_status_is_a_post_and_parsed_tolerantly() -> None:
    body = {"job_id": "j", "status": "running", "progress": 40, "eta": "12", "extra": {"a": 1}}
    provider, rec, client = provider_with(ok(body))
    async with client:
        status = await provider.status(ProviderJob(provider="bytecompute", job_id="j"))
    assert rec.requests[0].method == "POST"
    assert str(rec.requests[0].url) == "https://bc.example/v1/jobs/j"
    assert rec.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert status.state is JobState.RUNNING
    assert status.progress == pytest.approx(0.4)
    assert status.eta_seconds == 12.0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"status": "failed", "error": {"type": "x", "message": "GPU fell over"}}, "GPU fell over"),
        ({"status": "error", "error": "out of memory"}, "out of memory"),
        ({"status": "failed", "failure_reason": "nsfw"}, "nsfw"),
        ({"status": "failed"}, "ByteCompute reported the job as failed"),
    ],
)
async def test_failure_reasons(body: dict[str, Any], reason: str) -> None:
    provider, _, client = provider_with(ok(body))
    async with client:
        status = await provider.status(ProviderJob(provider="bytecompute", job_id="j"))
    assert status.state is JobState.FAILED
    assert status.failure_reason == reason


async def test_completed_status_may_carry_a_url_and_adjustments() -> None:
    body = {
        "status": "completed",
        "download_url": "https://cdn.example/j.mp4",
        "adjustments": {"fps": {"from": 50, "to": 25}},
    }
    provider, _, client = provider_with(ok(body))
    async with client:
        status = await provider.status(ProviderJob(provider="bytecompute", job_id="j"))
    assert status.state is JobState.COMPLETED
    assert status.result_url == "https://cdn.example/j.mp4"
    assert [(a.field, a.requested, a.actual) for a in status.adjustments] == [("fps", 50, 25)]


def envelope(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, envelope("invalid_request", "missing prompt"), InvalidRequestError),
        (401, envelope("authentication_error", f"bad key {KEY}"), AuthenticationError),
        (402, envelope("insufficient_funds", "top up"), AuthenticationError),
        (404, envelope("not_found", "Job 'j' not found"), JobNotFoundError),
        (409, envelope("conflict", "not done"), NotReadyError),
        (500, envelope("api_error", "boom"), TransientError),
    ],
)
async def test_error_codes(status: int, body: dict[str, Any], error: type[Exception]) -> None:
    provider, _, client = provider_with(ok(body, status))
    async with client:
        with pytest.raises(error) as info:
            await provider.status(ProviderJob(provider="bytecompute", job_id="j"))
    assert KEY not in str(info.value)
    if status == 400:
        assert "missing prompt" in str(info.value)


async def test_429_carries_retry_after() -> None:
    provider, _, client = provider_with(ok({"type": "error"}, 429, **{"Retry-After": "3"}))
    async with client:
        with pytest.raises(RateLimitedError) as info:
            await provider.status(ProviderJob(provider="bytecompute", job_id="j"))
    assert info.value.retry_after == 3.0


async def test_check_uses_a_job_that_cannot_exist() -> None:
    not_found = {"type": "error", "error": {"type": "not_found", "message": "no"}}
    for status, ok_expected in ((404, True), (401, False), (403, False), (500, False)):
        provider, rec, client = provider_with(ok(not_found, status))
        async with client:
            result = await provider.check()
        assert result.ok is ok_expected
        assert result.provider == "bytecompute"
        assert KEY not in result.detail
        assert rec.requests[0].method == "POST"
        assert rec.requests[0].url.path.startswith("/v1/jobs/")


async def test_no_cancel_and_no_close_of_the_shared_client() -> None:
    provider, rec, client = provider_with(ok({}))
    async with client:
        assert await provider.cancel(ProviderJob(provider="bytecompute", job_id="j")) is False
        await provider.aclose()
        assert not client.is_closed
    assert rec.requests == []


@pytest.mark.parametrize(
    "base", ["https://bc.example", "https://bc.example/", "https://bc.example/v1", "https://bc.example/v1/"]
)  # fmt: skip
def test_base_url_forms(base: str) -> None:
    provider = ByteComputeProvider(httpx.AsyncClient(), api_key=KEY, base_url=base)
    assert provider.base_url == "https://bc.example"
