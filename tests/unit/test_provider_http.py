from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from bot.providers.base import (
    AuthenticationError,
    InvalidRequestError,
    JobNotFoundError,
    NotReadyError,
    OutcomeUnknownError,
    RateLimitedError,
    TransientError,
)
from bot.providers.http import (
    TolerantModel,
    UnsafeURLError,
    URLGuard,
    error_details,
    find_url,
    parse_retry_after,
    raise_for_status,
    send,
)

SECRET = "sk-very-secret-123"


def test_retry_after_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(30.0)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None


@pytest.mark.parametrize(
    ("body", "ctype", "kind", "message"),
    [
        (
            b'{"type":"error","error":{"type":"not_found","message":"Job \'x\' not found"}}',
            "application/json",
            "not_found",
            "Job 'x' not found",
        ),
        (
            b'{"error":"invalid file extension","path":"$","code":"bad-request"}',
            "application/json",
            "bad-request",
            "invalid file extension",
        ),
        (b'{"error":{"message":"nested"}}', "application/json", None, "nested"),
        (b'{"message":"plain message"}', "application/json", None, "plain message"),
        (b'{"detail":"fastapi style"}', "application/json", None, "fastapi style"),
        (
            b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "text/html",
            None,
            "502 Bad Gateway",
        ),
        (b"upstream connect error", "text/plain", None, "upstream connect error"),
        (b"", "text/plain", None, None),
    ],
)
def test_error_envelopes(body: bytes, ctype: str, kind: str | None, message: str | None) -> None:
    assert error_details(body, ctype) == (kind, message)


def test_long_error_messages_are_shortened() -> None:
    _, message = error_details(b'{"message": "' + b"x" * 5000 + b'"}')
    assert message is not None and len(message) <= 300


@pytest.mark.parametrize(
    ("status", "error", "retry_after"),
    [
        (400, InvalidRequestError, None),
        (422, InvalidRequestError, None),
        (401, AuthenticationError, None),
        (403, AuthenticationError, None),
        (402, AuthenticationError, None),
        (404, JobNotFoundError, None),
        (409, NotReadyError, None),
        (429, RateLimitedError, 12.0),
        (500, TransientError, None),
        (502, TransientError, None),
        (503, TransientError, 12.0),
        (529, TransientError, None),
    ],
)
def test_status_mapping(status: int, error: type[Exception], retry_after: float | None) -> None:
    headers = httpx.Headers({"content-type": "application/json"})
    if retry_after is not None:
        headers["retry-after"] = "12"
    body = b'{"type":"error","error":{"type":"x","message":"bad key ' + SECRET.encode() + b'"}}'
    with pytest.raises(error) as info:
        raise_for_status(status, headers, body, label="ByteCompute", secrets=[SECRET])
    exc = info.value
    assert SECRET not in str(exc) and SECRET not in repr(exc)
    assert getattr(exc, "status_code", None) == status
    if retry_after is not None:
        assert exc.retry_after == retry_after  # type: ignore[attr-defined]
    if status == 402:
        assert "out of credit" in str(exc)


def test_moderation_403_is_a_member_error() -> None:
    body = b'{"error":"content moderation filter: the prompt was rejected","code":"x"}'
    with pytest.raises(InvalidRequestError, match="content moderation"):
        raise_for_status(403, httpx.Headers(), body, label="Leonardo")


def test_2xx_passes() -> None:
    raise_for_status(204, httpx.Headers(), b"", label="x")


def test_find_url() -> None:
    assert find_url({"url": "https://cdn.example/a.mp4"}) == "https://cdn.example/a.mp4"
    assert find_url({"result": {"video_url": "http://h/v.mp4"}}) == "http://h/v.mp4"
    assert find_url({"data": [{"name": "x"}, {"link": "https://h/x"}]}) == "https://h/x"
    assert find_url({"url": "ftp://nope"}) is None
    assert find_url({"status": "ok"}) is None


def test_tolerant_model_keeps_and_logs_unknown_fields(caplog: pytest.LogCaptureFixture) -> None:
    class Answer(TolerantModel):
        id: str

    with caplog.at_level(logging.DEBUG, logger="bot.providers.http"):
        answer = Answer.model_validate({"id": "1", "surprise": True})
    assert answer.model_extra == {"surprise": True}
    assert "surprise" in caplog.text


# ----- URL guard -----------------------------------------------------------------------


async def fake_resolver(host: str, port: int) -> list[str]:
    table = {
        "public.example": ["93.184.216.34"],
        "internal.example": ["10.0.0.5"],
        "mixed.example": ["93.184.216.34", "127.0.0.1"],
        "v6.example": ["::ffff:169.254.169.254"],
        "localhost": ["127.0.0.1", "::1"],
    }
    if host not in table:
        raise OSError("no such host")
    return table[host]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://0.0.0.0/x",
        "https://internal.example/x",
        "https://mixed.example/x",
        "https://v6.example/x",
        "file:///etc/passwd",
        "ftp://public.example/x",
        "/relative/path",
    ],
)
async def test_guard_refuses(url: str) -> None:
    guard = URLGuard(["trusted.example"], resolver=fake_resolver)
    with pytest.raises(UnsafeURLError):
        await guard.check(url)


@pytest.mark.parametrize(
    "url",
    ["https://public.example/video.mp4", "http://93.184.216.34/x", "https://trusted.example/x"],
)
async def test_guard_allows(url: str) -> None:
    guard = URLGuard(["trusted.example"], resolver=fake_resolver)
    assert str(await guard.check(url)) == url


async def test_guard_trusts_configured_hosts_even_when_private() -> None:
    guard = URLGuard.for_base_urls("http://127.0.0.1:8080/api", "http://LocalHost:1")
    assert (await guard.check("http://127.0.0.1:9999/file.mp4")).host == "127.0.0.1"
    assert (await guard.check("http://localhost/x")).host == "localhost"


async def test_guard_with_the_system_resolver_refuses_localhost() -> None:
    with pytest.raises(UnsafeURLError, match="private or local"):
        await URLGuard(["example.org"]).check("http://localhost:1/x")


async def test_guard_unresolvable_host_is_transient() -> None:
    guard = URLGuard([], resolver=fake_resolver)
    with pytest.raises(TransientError, match="cannot resolve"):
        await guard.check("https://nowhere.example/x")


# ----- send() transport errors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "submit", "error"),
    [
        (httpx.ConnectError("refused"), True, TransientError),
        (httpx.ConnectTimeout("slow connect"), True, TransientError),
        (httpx.ReadTimeout("slow"), False, TransientError),
        (httpx.ReadTimeout("slow"), True, OutcomeUnknownError),
        (httpx.RemoteProtocolError("reset"), True, OutcomeUnknownError),
    ],
)
async def test_transport_errors(exc: Exception, submit: bool, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(error) as info:
            await send(
                client,
                "POST",
                "http://h/v1/x",
                label="X",
                secrets=[SECRET],
                headers={"Authorization": f"Bearer {SECRET}"},
                submit=submit,
            )
    assert type(info.value) is error
    assert SECRET not in str(info.value)


async def test_each_hosted_provider_keeps_its_host_root_and_never_shows_its_key() -> None:
    from bot.providers.bytecompute import ByteComputeProvider
    from bot.providers.leonardo import LeonardoProvider
    from bot.providers.ltx import LtxProvider

    async with httpx.AsyncClient() as client:
        bc = ByteComputeProvider(client, api_key="sk-bc", base_url=" https://bc.example/v1/ ")
        bc_v2 = ByteComputeProvider(client, api_key="sk-bc", base_url="https://bc.example/v2")
        leo = LeonardoProvider(
            client, api_key="sk-leo", base_url="https://cloud.leonardo.ai/api/rest/v2"
        )
        ltx = LtxProvider(client, api_key="sk-ltx", base_url="https://api.ltx.video/v1")
        ltx_both = LtxProvider(client, api_key="sk-ltx", base_url="https://api.ltx.video/v2/v1")
    assert bc.base_url == "https://bc.example"
    assert bc_v2.base_url == "https://bc.example/v2"  # ByteCompute has no /v2 to strip
    assert leo.base_url == "https://cloud.leonardo.ai/api/rest"
    assert ltx.base_url == "https://api.ltx.video"
    assert ltx_both.base_url == "https://api.ltx.video"  # /v1, then /v2, as before the base
    assert repr(bc) == "ByteComputeProvider(base_url='https://bc.example')"
    assert repr(ltx) == "LtxProvider(base_url='https://api.ltx.video', model='ltx-2-3-fast')"
    for provider, key in ((bc, "sk-bc"), (leo, "sk-leo"), (ltx, "sk-ltx")):
        assert key not in repr(provider)
        assert provider._headers()["Authorization"] == f"Bearer {key}"
