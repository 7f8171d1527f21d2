"""HTTP plumbing shared by the hosted providers.

- `send()` makes one request and maps the answer to the typed errors of `base.py`.
- `error_details()` reads the error envelopes the providers use (LTX/ByteCompute
  `{"type":"error","error":{"type","message"}}`, Leonardo `{"error","path","code"}`, plain
  `{"message"}`) and falls back to the title of an HTML gateway page or the raw text.
- `URLGuard` decides whether a URL a provider handed us may be fetched.
- `stream_to_file()` downloads to disk in chunks with a byte cap, a redirect limit and the
  guard on every hop; the partial file is removed on any failure.
- `TolerantModel` is the base of every response model: unknown fields are kept and logged at
  debug level (the providers do not publish complete response schemas).

No function here puts a secret in a message: every text taken from a response goes through
`scrub()` with the provider's key.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import logging
import math
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from bot.providers.base import (
    AuthenticationError,
    InvalidRequestError,
    JobFailedError,
    JobNotFoundError,
    NotReadyError,
    OutcomeUnknownError,
    ProviderError,
    RateLimitedError,
    TransientError,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 3600.0  # seconds; a longer Retry-After is honoured as this
_ERROR_BODY_LIMIT = 64 * 1024
_JSON_BODY_LIMIT = 1024 * 1024
_CHUNK = 64 * 1024
_WRITE_BUFFER = 1024 * 1024
_MESSAGE_LIMIT = 300
_REDIRECT_CODES = {301, 302, 303, 307, 308}

Resolver = Callable[[str, int], Awaitable[list[str]]]
M = TypeVar("M", bound=BaseModel)


# ----- errors special to HTTP ----------------------------------------------------------


class DownloadError(JobFailedError):
    """The finished clip cannot be fetched (too big, too many redirects, no URL, ...)."""


class UnsafeURLError(DownloadError):
    """A provider-returned URL points somewhere the bot must not fetch from."""


# ----- tolerant response models --------------------------------------------------------


class TolerantModel(BaseModel):
    """Response model that accepts and keeps unknown fields, logging them at debug level."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="after")
    def _log_unknown(self) -> TolerantModel:
        if self.model_extra:
            log.debug(
                "%s: unknown response fields %s", type(self).__name__, sorted(self.model_extra)
            )
        return self


def parse_answer(model: type[M], data: Any, *, label: str) -> M:
    """Validate an answer into `model`; a shape we cannot read is a (retryable) bad answer."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:3])
        raise TransientError(f"{label} sent an answer we cannot read ({where})") from None


# ----- messages ------------------------------------------------------------------------


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def error_details(body: bytes, content_type: str = "") -> tuple[str | None, str | None]:
    """(kind, message) from an error body of any of the shapes the providers use."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return None, None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return _envelope(data)
    if data is not None:
        return None, _short(str(data))
    if "html" in content_type.lower() or text.lstrip().startswith("<"):
        match = _TITLE.search(text)
        page = match.group(1) if match else _TAG.sub(" ", text)
        return None, _short(page) or None
    return None, _short(text)


def _envelope(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    kind: str | None = None
    message: str | None = None
    err = data.get("error")
    if isinstance(err, Mapping):
        kind = _str_or_none(err.get("type")) or _str_or_none(err.get("code"))
        message = _str_or_none(err.get("message")) or _str_or_none(err.get("detail"))
    elif isinstance(err, str):
        message = err
        kind = _str_or_none(data.get("code"))
    if message is None:
        for key in ("message", "detail", "title", "msg"):
            message = _str_or_none(data.get(key))
            if message:
                break
    if kind is None and data.get("type") != "error":
        kind = _str_or_none(data.get("code")) or _str_or_none(data.get("type"))
    return kind, _short(message) if message else None


def _str_or_none(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date).

    At most `MAX_RETRY_AFTER` seconds; a value that is not a finite number ("inf", "nan",
    "1e999") counts as no header: one bad header must not park a provider forever.
    """
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def raise_for_status(
    status: int,
    headers: httpx.Headers,
    body: bytes,
    *,
    label: str,
    secrets: Sequence[str] = (),
) -> None:
    """Raise the typed error for a non-2xx answer (2xx returns quietly)."""
    if 200 <= status < 300:
        return
    kind, message = error_details(body, headers.get("content-type", ""))
    message = scrub(message, secrets) if message else None
    detail = f": {message}" if message else ""
    retry_after = parse_retry_after(headers.get("retry-after"))
    lowered = (message or "").lower()
    if status in (400, 413, 422) or (status == 403 and "moderation" in lowered):
        raise InvalidRequestError(f"{label} refused the request{detail}", status_code=status)
    if status in (401, 403):
        raise AuthenticationError(
            f"{label} rejected the API key (HTTP {status}){detail}", status_code=status
        )
    if status == 402:
        raise AuthenticationError(f"{label} account is out of credit (HTTP 402)", status_code=402)
    if status == 404:
        raise JobNotFoundError(f"{label}: not found or expired (HTTP 404){detail}", status_code=404)
    if status == 409:
        raise NotReadyError(f"{label}: the job is not finished yet (HTTP 409)", status_code=409)
    if status == 429:
        raise RateLimitedError(
            f"{label} is rate limiting us (HTTP 429){detail}",
            retry_after=retry_after,
            status_code=429,
        )
    if status >= 500 or status == 408:
        raise TransientError(
            f"{label} server error (HTTP {status}){detail}",
            retry_after=retry_after,
            status_code=status,
        )
    if 300 <= status < 400:
        raise TransientError(f"{label}: unexpected redirect (HTTP {status})", status_code=status)
    if kind:
        log.debug("%s error kind %s (HTTP %s)", label, kind, status)
    raise InvalidRequestError(
        f"{label} refused the request (HTTP {status}){detail}", status_code=status
    )


def _transport_error(
    exc: httpx.HTTPError, *, label: str, secrets: Sequence[str], sent: bool
) -> ProviderError:
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    detail = scrub(_short(str(exc)), secrets)
    message = f"{label}: {what} ({type(exc).__name__}{': ' + detail if detail else ''})"
    if sent:
        return OutcomeUnknownError(message)
    return TransientError(message)


def _request_not_sent(exc: httpx.HTTPError) -> bool:
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    label: str,
    secrets: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    files: Sequence[tuple[str, Any]] | None = None,
    data: Mapping[str, str] | None = None,
    request_timeout: float | None = None,
    submit: bool = False,
) -> httpx.Response:
    """One request; non-2xx and transport problems become typed errors.

    `submit=True` marks a request that creates billed work: a failure after the request
    may have reached the server raises `OutcomeUnknownError` instead of `TransientError`.
    """
    kwargs: dict[str, Any] = {"headers": dict(headers or {}), "follow_redirects": False}
    if json_body is not None:
        kwargs["json"] = json_body
    if files is not None:
        kwargs["files"] = list(files)
    if data is not None:
        kwargs["data"] = dict(data)
    if request_timeout is not None:
        kwargs["timeout"] = request_timeout
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        sent = submit and not _request_not_sent(exc)
        raise _transport_error(exc, label=label, secrets=secrets, sent=sent) from None
    raise_for_status(
        response.status_code, response.headers, response.content, label=label, secrets=secrets
    )
    return response


def json_object(response: httpx.Response, *, label: str) -> dict[str, Any]:
    """The body as a JSON object; anything else is a (retryable) malformed answer."""
    try:
        data = response.json()
    except ValueError:
        raise TransientError(
            f"{label} sent a malformed answer (not JSON, HTTP {response.status_code})",
            status_code=response.status_code,
        ) from None
    if not isinstance(data, dict):
        raise TransientError(f"{label} sent a malformed answer (JSON but not an object)")
    return data


def find_url(data: Any, *, depth: int = 0) -> str | None:
    """The first http(s) URL in a JSON answer, preferring the usual key names."""
    preferred = ("url", "download_url", "video_url", "signed_url", "href", "location", "uri")
    if isinstance(data, str):
        return data if data.startswith(("http://", "https://")) else None
    if depth > 3:
        return None
    if isinstance(data, Mapping):
        for key in preferred:
            found = find_url(data.get(key), depth=depth + 1) if key in data else None
            if found:
                return found
        for value in data.values():
            found = find_url(value, depth=depth + 1)
            if found:
                return found
    if isinstance(data, list):
        for item in data:
            found = find_url(item, depth=depth + 1)
            if found:
                return found
    return None


# ----- outbound URL guard --------------------------------------------------------------


def host_of(url: str) -> str:
    return httpx.URL(url).host.lower().rstrip(".")


def path_segment(value: str) -> str:
    """`value` (e.g. a job id from an answer) as one URL path segment: reserved and
    unprintable characters escaped, so it can neither break the URL nor add path levels."""
    return quote(value, safe="", errors="surrogatepass")


def provider_url(url: str | httpx.URL, *, base: httpx.URL | None = None) -> httpx.URL:
    """A URL from a provider's answer (absolute, or relative to `base`); one httpx cannot
    read is refused with UnsafeURLError."""
    try:
        return base.join(str(url)) if base is not None else httpx.URL(str(url))
    except httpx.InvalidURL:
        raise UnsafeURLError("the provider returned an invalid URL") from None


async def _system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 inside IPv6 (::ffff:a.b.c.d, 6to4 2002:aabb:ccdd::) is judged as that IPv4.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    # is_global also excludes shared address space (100.64.0.0/10: carrier NAT, some cloud
    # metadata services such as 100.100.100.200) that is neither private nor public.
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class URLGuard:
    """Allows http(s) URLs to public addresses, and any URL on a trusted host.

    Trusted hosts are the hosts of the configured base URLs (self-hosted gateways, proxies,
    the fake servers on 127.0.0.1). Everything else must resolve only to public addresses.
    """

    def __init__(
        self, trusted_hosts: Iterable[str] = (), *, resolver: Resolver | None = None
    ) -> None:
        self._trusted = {h.lower().rstrip(".") for h in trusted_hosts if h}
        self._resolve = resolver or _system_resolver

    @classmethod
    def for_base_urls(cls, *urls: str, resolver: Resolver | None = None) -> URLGuard:
        return cls([host_of(u) for u in urls if u], resolver=resolver)

    def trusts(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._trusted

    async def check(self, url: str | httpx.URL) -> httpx.URL:
        try:
            parsed = httpx.URL(str(url))
        except httpx.InvalidURL:
            raise UnsafeURLError("the provider returned an invalid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UnsafeURLError(f"refusing to fetch a {parsed.scheme or 'relative'} URL")
        host = parsed.host.lower().rstrip(".")
        if self.trusts(host):
            return parsed
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addresses = await self._resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise TransientError(f"cannot resolve {host} ({type(exc).__name__})") from None
        if not addresses or not all(_is_public(a) for a in addresses):
            raise UnsafeURLError(f"refusing to fetch {host}: it is a private or local address")
        return parsed


# ----- streaming download --------------------------------------------------------------


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host.lower(), url.port


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    out = bytearray()
    async for chunk in response.aiter_bytes(_CHUNK):
        out.extend(chunk)
        if len(out) >= limit:
            break
    return bytes(out[:limit])


def _is_json(content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    return main == "application/json" or main.endswith("+json")


async def stream_to_file(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    dest: Path,
    *,
    label: str,
    guard: URLGuard,
    secrets: Sequence[str] = (),
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    max_redirects: int = MAX_REDIRECTS,
    follow_json_url: bool = False,
    request_timeout: float | None = None,
) -> int:
    """Stream `url` to `dest`; returns the number of bytes written.

    `headers` (e.g. the provider's Authorization) go only to the origin of the first URL,
    never to another host a redirect points at. With `follow_json_url`, a JSON answer that
    holds a URL is followed like a redirect (it counts against `max_redirects`).
    """
    part = dest.with_name(dest.name + ".part")
    current = provider_url(url)
    origin = _origin(current)
    hops = 0
    try:
        while True:
            current = await guard.check(current)
            send_headers = dict(headers or {}) if _origin(current) == origin else {}
            next_url = await _fetch_once(
                client,
                method,
                current,
                part,
                label=label,
                secrets=secrets,
                headers=send_headers,
                max_bytes=max_bytes,
                follow_json_url=follow_json_url,
                request_timeout=request_timeout,
            )
            if next_url is None:
                break
            url_text, status = next_url
            hops += 1
            if hops > max_redirects:
                raise DownloadError(f"{label}: too many redirects (more than {max_redirects})")
            if status == 303 or (status in (301, 302) and method not in ("GET", "HEAD")):
                method = "GET"
            if status == 0:  # a URL found in a JSON answer
                method = "GET"
            current = provider_url(url_text, base=current)
        size = part.stat().st_size
        part.replace(dest)
        return size
    except BaseException:
        part.unlink(missing_ok=True)
        raise


async def _fetch_once(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    part: Path,
    *,
    label: str,
    secrets: Sequence[str],
    headers: Mapping[str, str],
    max_bytes: int,
    follow_json_url: bool,
    request_timeout: float | None,
) -> tuple[str, int] | None:
    """One hop: returns (next URL, status) to follow, or None once the file is written."""
    kwargs: dict[str, Any] = {"headers": dict(headers), "follow_redirects": False}
    if request_timeout is not None:
        kwargs["timeout"] = request_timeout
    try:
        async with client.stream(method, url, **kwargs) as response:
            status = response.status_code
            if status in _REDIRECT_CODES:
                location = response.headers.get("location")
                if not location:
                    raise DownloadError(f"{label}: redirect without a Location (HTTP {status})")
                return location, status
            if not 200 <= status < 300:
                body = await _read_limited(response, _ERROR_BODY_LIMIT)
                raise_for_status(status, response.headers, body, label=label, secrets=secrets)
            content_type = response.headers.get("content-type", "")
            if follow_json_url and _is_json(content_type):
                body = await _read_limited(response, _JSON_BODY_LIMIT)
                try:
                    found = find_url(json.loads(body))
                except ValueError:
                    raise TransientError(f"{label} sent a malformed download answer") from None
                if not found:
                    raise DownloadError(f"{label}: the download answer holds no video URL")
                return found, 0
            announced = response.headers.get("content-length", "")
            # isdecimal(): int() reads it; over 18 digits is over any limit (and int() has a
            # 4,300-digit cap).
            if announced.isdecimal() and (len(announced) > 18 or int(announced) > max_bytes):
                raise DownloadError(
                    f"{label}: the clip is {int(announced[:19])} bytes, more than the "
                    f"{max_bytes}-byte limit"
                )
            await _write_body(response, part, max_bytes=max_bytes, label=label)
            return None
    except httpx.HTTPError as exc:
        raise _transport_error(exc, label=label, secrets=secrets, sent=False) from None


async def _write_body(response: httpx.Response, part: Path, *, max_bytes: int, label: str) -> None:
    fh = await asyncio.to_thread(part.open, "wb")
    try:
        written = 0
        buffer = bytearray()
        async for chunk in response.aiter_bytes(_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise DownloadError(f"{label}: the clip is larger than the {max_bytes}-byte limit")
            buffer.extend(chunk)
            if len(buffer) >= _WRITE_BUFFER:
                await asyncio.to_thread(fh.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await asyncio.to_thread(fh.write, bytes(buffer))
    finally:
        await asyncio.to_thread(fh.close)


def finite_number(value: Any, *, percent: bool = False) -> float | None:
    """A finite number from a JSON value (NaN and infinities, which JSON parsers accept,
    count as absent); with `percent`, a trailing "%" on a string is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str):
        value = value.strip()
        if percent:
            value = value.rstrip("%")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer beyond any float
        return None
    return number if math.isfinite(number) else None
