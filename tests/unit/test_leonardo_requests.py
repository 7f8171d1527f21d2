"""Leonardo request shapes and answer parsing, against httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.pricing import LEONARDO_FAST, LEONARDO_PRO
from bot.providers.base import (
    AuthenticationError,
    InputImage,
    InvalidRequestError,
    JobNotFoundError,
    JobState,
    Provider,
    ProviderJob,
    RateLimitedError,
    TransientError,
    VideoRequest,
)
from bot.providers.http import UnsafeURLError
from bot.providers.leonardo import LeonardoProvider, parse_generation

KEY = "7b0c9a1e-1111-4222-8333-944455556666"
BASE = "https://cloud.leonardo.example/api/rest"
UPLOAD_URL = "https://s3.leonardo.example/uploads"
FIELDS = {"key": "u/init/abc.png", "Policy": "p0l1cy", "X-Amz-Signature": "s1g"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 32


def multipart(request: httpx.Request) -> list[tuple[str, str | None, str | None, bytes]]:
    ctype = request.headers["content-type"]
    message = BytesParser(policy=policy.default).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + request.content
    )
    return [
        (
            p.get_param("name", header="content-disposition"),
            p.get_filename(),
            p["content-type"],
            p.get_payload(decode=True),
        )
        for p in message.iter_parts()
    ]


class FakeApi:
    """Scripted answers per (method, path); records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.generation_answers: list[httpx.Response] = []
        self.poll_answers: list[Any] = []
        self.upload_status = 204
        self.upload_url = UPLOAD_URL
        self.image_ids = iter(f"init-{n}" for n in range(10))
        self.fields: Any = json.dumps(FIELDS)
        self.me: dict[str, Any] = {"user_details": [{"apiConcurrencySlots": 5}]}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        path = request.url.path
        if str(request.url).startswith(UPLOAD_URL):
            return httpx.Response(self.upload_status)
        if path.endswith("/v1/init-image"):
            upload = {"id": next(self.image_ids), "url": self.upload_url, "fields": self.fields}
            return httpx.Response(200, json={"uploadInitImage": {**upload, "key": "k"}})
        if path.endswith("/v2/generations"):
            if self.generation_answers:
                return self.generation_answers.pop(0)
            return httpx.Response(200, json={"generate": {"generationId": "gen-1"}})
        if "/v1/generations/" in path:
            answer = self.poll_answers.pop(0) if self.poll_answers else None
            return httpx.Response(200, json={"generations_by_pk": answer})
        if path.endswith("/v1/me"):
            return httpx.Response(200, json=self.me)
        return httpx.Response(404, json={"error": "no route", "path": "$", "code": "not-found"})

    def to(self, suffix: str) -> list[httpx.Request]:
        return [r for r in self.requests if str(r.url).endswith(suffix)]


def make(
    api: FakeApi, model: str = LEONARDO_FAST, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[LeonardoProvider, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(api), headers=headers)
    kw.setdefault("trusted_hosts", ("s3.leonardo.example",))
    provider = LeonardoProvider(client, api_key=KEY, base_url=BASE + "/v1/", model=model, **kw)
    return provider, client


def input_image(tmp_path: Path, name: str) -> InputImage:
    path = tmp_path / name
    path.write_bytes(PNG + name.encode())
    return InputImage(
        path=path, mime="image/png", width=1600, height=900, sha256="0", filename=f"{name}.png"
    )


def leo_request(provider: LeonardoProvider, **kw: Any) -> Any:
    return provider.negotiate(
        VideoRequest(prompt=kw.pop("prompt", "a fox"), provider="leonardo", **kw)
    )


async def test_text_to_video_body_is_exact() -> None:
    api = FakeApi()
    provider, client = make(api, model=LEONARDO_PRO)
    async with client:
        assert isinstance(provider, Provider)
        request = leo_request(
            provider, prompt="  a fox in snow ", duration=10, seed=99, audio=False
        )
        job = await provider.submit(request)
    [sent] = api.requests
    assert sent.method == "POST"
    assert str(sent.url) == BASE + "/v2/generations"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept"] == "application/json"
    assert json.loads(sent.content) == {
        "model": "ltxv-2.3-pro",
        "public": False,
        "parameters": {
            "prompt": "a fox in snow",
            "quantity": 1,
            "width": 1920,
            "height": 1080,
            "duration": 10,
            "mode": "RESOLUTION_1080",
            "prompt_enhance": "OFF",
            "motion_has_audio": False,
            "seed": 99,
        },
    }
    assert job.job_id == "gen-1"
    assert job.data["model"] == "ltxv-2.3-pro"
    assert KEY not in json.dumps(job.data) and KEY not in repr(provider)


async def test_portrait_2160_sets_the_matching_mode() -> None:
    api = FakeApi()
    provider, client = make(api)
    async with client:
        await provider.submit(leo_request(provider, resolution="2160x3840", duration=20))
    params = json.loads(api.requests[0].content)["parameters"]
    assert (params["width"], params["height"], params["mode"]) == (2160, 3840, "RESOLUTION_2160")
    assert params["duration"] == 20
    assert "seed" not in params


async def test_image_to_video_uploads_without_authorization(tmp_path: Path) -> None:
    api = FakeApi()
    # Even a client-wide Authorization default must not reach the presigned upload.
    provider, client = make(api, headers={"Authorization": "Bearer client-default"})
    async with client:
        image = input_image(tmp_path, "start")
        await provider.submit(leo_request(provider, image=image))
    init, upload, create = api.requests
    assert str(init.url) == BASE + "/v1/init-image"
    assert json.loads(init.content) == {"extension": "png"}
    assert init.headers["authorization"] == f"Bearer {KEY}"

    assert str(upload.url) == UPLOAD_URL
    assert "authorization" not in upload.headers
    parts = multipart(upload)
    assert [p[0] for p in parts] == [*FIELDS, "file"]
    assert {p[0]: p[3].decode() for p in parts[:-1]} == FIELDS
    name, filename, ctype, data = parts[-1]
    assert (name, filename, ctype, data) == (
        "file",
        "start.png",
        "image/png",
        image.path.read_bytes(),
    )
    assert all(p[1] is None for p in parts[:-1])

    guidances = json.loads(create.content)["parameters"]["guidances"]
    assert guidances == {"start_frame": [{"image": {"id": "init-0", "type": "UPLOADED"}}]}


async def test_frames_use_start_and_end(tmp_path: Path) -> None:
    api = FakeApi()
    provider, client = make(api)
    async with client:
        request = leo_request(
            provider,
            first_frame=input_image(tmp_path, "first"),
            last_frame=input_image(tmp_path, "last"),
        )
        job = await provider.submit(request)
    assert len(api.to("/v1/init-image")) == 2 and len(api.to("/uploads")) == 2
    guidances = json.loads(api.to("/v2/generations")[0].content)["parameters"]["guidances"]
    assert guidances == {
        "start_frame": [{"image": {"id": "init-0", "type": "UPLOADED"}}],
        "end_frame": [{"image": {"id": "init-1", "type": "UPLOADED"}}],
    }
    assert job.data["init_image_ids"] == ["init-0", "init-1"]


async def test_upload_fields_already_decoded_are_accepted(tmp_path: Path) -> None:
    api = FakeApi()
    api.fields = dict(FIELDS)
    provider, client = make(api)
    async with client:
        await provider.submit(leo_request(provider, image=input_image(tmp_path, "a")))
    assert [p[0] for p in multipart(api.to("/uploads")[0])] == [*FIELDS, "file"]


@pytest.mark.parametrize(
    ("status", "error"), [(400, InvalidRequestError), (403, TransientError), (500, TransientError)]
)
async def test_upload_refusals(tmp_path: Path, status: int, error: type[Exception]) -> None:
    api = FakeApi()
    api.upload_status = status
    provider, client = make(api)
    async with client:
        with pytest.raises(error):
            await provider.submit(leo_request(provider, image=input_image(tmp_path, "a")))
    assert api.to("/v2/generations") == []


async def test_upload_to_a_private_address_is_refused(tmp_path: Path) -> None:
    api = FakeApi()
    api.upload_url = "http://169.254.169.254/latest"
    provider, client = make(api)
    async with client:
        with pytest.raises(UnsafeURLError):
            await provider.submit(leo_request(provider, image=input_image(tmp_path, "a")))
    assert [r.url.path for r in api.requests] == ["/api/rest/v1/init-image"]


async def test_unreadable_fields_are_transient(tmp_path: Path) -> None:
    api = FakeApi()
    api.fields = "{not json"
    provider, client = make(api)
    async with client:
        with pytest.raises(TransientError, match="upload fields"):
            await provider.submit(leo_request(provider, image=input_image(tmp_path, "a")))


def bad_request(message: str) -> httpx.Response:
    return httpx.Response(400, json={"error": message, "path": "$", "code": "validation-failed"})


async def test_audio_field_falls_back_once_and_is_remembered() -> None:
    api = FakeApi()
    api.generation_answers = [bad_request('unexpected variable "motion_has_audio"')]
    provider, client = make(api)
    async with client:
        await provider.submit(leo_request(provider))
        await provider.submit(leo_request(provider))
    bodies = [json.loads(r.content)["parameters"] for r in api.to("/v2/generations")]
    assert len(bodies) == 3
    assert "motion_has_audio" in bodies[0] and "audio" not in bodies[0]
    assert bodies[1]["audio"] is True and "motion_has_audio" not in bodies[1]
    assert "audio" in bodies[2] and "motion_has_audio" not in bodies[2]
    assert provider.audio_field == "audio"


async def test_audio_fallback_is_tried_only_once() -> None:
    api = FakeApi()
    api.generation_answers = [
        bad_request("motion_has_audio is not allowed"),
        bad_request("audio is not allowed"),
    ]
    provider, client = make(api)
    async with client:
        with pytest.raises(InvalidRequestError, match="audio is not allowed"):
            await provider.submit(leo_request(provider))
    assert len(api.to("/v2/generations")) == 2


async def test_rejected_seed_is_dropped_and_reported() -> None:
    api = FakeApi()
    api.generation_answers = [bad_request('unexpected variable "seed" in parameters')]
    provider, client = make(api)
    async with client:
        job = await provider.submit(leo_request(provider, seed=5))
    first, second = (json.loads(r.content)["parameters"] for r in api.to("/v2/generations"))
    assert first["seed"] == 5 and "seed" not in second
    [adjustment] = job.adjustments
    assert (adjustment.field, adjustment.requested, adjustment.actual) == ("seed", 5, None)
    assert adjustment.source == "provider"


async def test_other_400s_are_not_retried() -> None:
    api = FakeApi()
    api.generation_answers = [bad_request("content moderation filter: nope")]
    provider, client = make(api)
    async with client:
        with pytest.raises(InvalidRequestError, match="content moderation"):
            await provider.submit(leo_request(provider, seed=1))
    assert len(api.to("/v2/generations")) == 1


@pytest.mark.parametrize(
    ("body", "gen_id", "cost"),
    [
        ({"generationId": "a", "apiCreditCost": 30}, "a", {"amount": 30.0, "unit": "CREDITS"}),
        (
            {"generate": {"generationId": "b", "cost": {"amount": "0.48", "unit": "DOLLARS"}}},
            "b",
            {"amount": 0.48, "unit": "DOLLARS"},
        ),
        ({"sdGenerationJob": {"generationId": "c"}}, "c", None),
        ({"motionVideoGenerationJob": {"generationId": "d", "apiCreditCost": None}}, "d", None),
        ({"something": {"generationId": "e"}}, "e", None),
        ({"nothing": True}, None, None),
    ],
)
def test_generation_id_and_cost_variants(
    body: dict[str, Any], gen_id: str | None, cost: Any
) -> None:
    assert parse_generation(body) == (gen_id, cost)


async def test_cost_in_dollars_becomes_cost_usd() -> None:
    api = FakeApi()
    dollars = {"generate": {"generationId": "g", "cost": {"amount": "1.25", "unit": "DOLLARS"}}}
    api.generation_answers = [
        httpx.Response(200, json=dollars),
        httpx.Response(200, json={"generationId": "h", "apiCreditCost": 40}),
        httpx.Response(200, json={"unexpected": "shape"}),
    ]
    provider, client = make(api)
    async with client:
        assert (await provider.submit(leo_request(provider))).cost_usd == 1.25
        credits = await provider.submit(leo_request(provider))
        assert credits.cost_usd is None and credits.data["cost"]["unit"] == "CREDITS"
        with pytest.raises(TransientError, match="no id"):
            await provider.submit(leo_request(provider))


def job(seconds_ago: float = 0.0) -> ProviderJob:
    submitted = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return ProviderJob(
        provider="leonardo", job_id="gen-1", data={"submitted_at": submitted.isoformat()}
    )


async def test_poll_states() -> None:
    api = FakeApi()
    video = {
        "id": "i",
        "url": "https://cdn.example/i.jpg",
        "motionMP4URL": "https://cdn.example/i.mp4",
    }
    api.poll_answers = [
        None,
        {"status": "PENDING", "generated_images": []},
        {"status": "COMPLETE", "generated_images": [video]},
        {"status": "FAILED", "generated_images": []},
    ]
    provider, client = make(api)
    async with client:
        states = [await provider.status(job()) for _ in range(4)]
    assert [s.state for s in states] == [
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.COMPLETED,
        JobState.FAILED,
    ]
    assert states[2].result_url == "https://cdn.example/i.mp4"
    assert states[3].failure_reason
    poll = api.requests[0]
    assert poll.method == "GET" and str(poll.url) == BASE + "/v1/generations/gen-1"
    assert poll.headers["authorization"] == f"Bearer {KEY}"


async def test_null_generation_after_the_grace_period_is_not_found() -> None:
    api = FakeApi()
    provider, client = make(api, missing_grace_seconds=60)
    async with client:
        assert (await provider.status(job(seconds_ago=10))).state is JobState.QUEUED
        with pytest.raises(JobNotFoundError):
            await provider.status(job(seconds_ago=61))


async def test_complete_without_url_waits_then_fails() -> None:
    api = FakeApi()
    api.poll_answers = [{"status": "COMPLETE", "generated_images": []}] * 2 + [
        {"status": "COMPLETE", "generated_images": [{"motionMP4URL": None, "url": "x.jpg"}]}
    ]
    provider, client = make(api, url_grace_seconds=0.2)
    async with client:
        assert (await provider.status(job())).state is JobState.RUNNING
        assert (await provider.status(job())).state is JobState.RUNNING
        await asyncio.sleep(0.25)
        late = await provider.status(job())
    assert late.state is JobState.FAILED
    assert "no video URL" in (late.failure_reason or "")


async def test_generated_videos_fallback() -> None:
    api = FakeApi()
    api.poll_answers = [
        {"status": "COMPLETE", "generated_videos": [{"url": "https://cdn.example/v.mp4"}]}
    ]
    provider, client = make(api)
    async with client:
        status = await provider.status(job())
    assert status.result_url == "https://cdn.example/v.mp4"


async def test_check_reports_credits_and_slots() -> None:
    api = FakeApi()
    api.me = {
        "user_details": [
            {"apiPaidTokens": 12.4567, "apiSubscriptionTokens": None, "apiConcurrencySlots": 5}
        ]
    }
    provider, client = make(api)
    async with client:
        result = await provider.check()
    assert result.ok
    assert "API paid 12.4567" in result.detail and "concurrency slots: 5" in result.detail
    assert "subscription" not in result.detail  # null balances are left out
    assert str(api.requests[0].url) == BASE + "/v1/me"
    assert api.requests[0].method == "GET"


@pytest.mark.parametrize(("status", "error"), [(401, AuthenticationError), (429, RateLimitedError)])
async def test_check_and_errors_never_show_the_key(status: int, error: type[Exception]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {"error": f"Authentication hook unauthorized this request {KEY}", "code": "x"}
        return httpx.Response(status, json=body, headers={"Retry-After": "2"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    provider = LeonardoProvider(client, api_key=KEY, base_url=BASE)
    async with client:
        result = await provider.check()
        assert result.ok is False and KEY not in result.detail
        with pytest.raises(error) as info:
            await provider.status(job())
    assert KEY not in str(info.value)
    if status == 429:
        assert info.value.retry_after == 2.0  # type: ignore[attr-defined]


async def test_cancel_is_not_offered() -> None:
    api = FakeApi()
    provider, client = make(api)
    async with client:
        assert await provider.cancel(job()) is False
    assert api.requests == []


def test_models_and_base_urls() -> None:
    client = httpx.AsyncClient()
    for base in (BASE, BASE + "/", BASE + "/v1", BASE + "/v2/"):
        assert LeonardoProvider(client, api_key=KEY, base_url=base).base_url == BASE
    pro = LeonardoProvider(client, api_key=KEY, base_url=BASE, model=LEONARDO_PRO)
    assert pro.limits.default_model == LEONARDO_PRO and pro.limits.durations == (6, 8, 10)
    with pytest.raises(ValueError, match="unknown Leonardo model"):
        LeonardoProvider(client, api_key=KEY, base_url=BASE, model="ltxv-9")


async def test_unreadable_answers_are_transient() -> None:
    api = FakeApi()
    api.poll_answers = ["not an object"]
    provider, client = make(api)
    async with client:
        with pytest.raises(TransientError, match="cannot read"):
            await provider.status(job())
