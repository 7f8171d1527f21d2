"""Capped downloads: `stream_to_file` writes a clip to disk in chunks with a byte cap, a
redirect limit and the URL guard on every hop; the partial file is removed on any failure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from bot.providers.base import TransientError
from bot.providers.http.answers import find_url
from bot.providers.http.errors import DownloadError, raise_for_status, transport_error
from bot.providers.http.urlguard import URLGuard, provider_url

DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
MAX_REDIRECTS = 5
_ERROR_BODY_LIMIT = 64 * 1024
_JSON_BODY_LIMIT = 1024 * 1024
_CHUNK = 64 * 1024
_WRITE_BUFFER = 1024 * 1024
_REDIRECT_CODES = {301, 302, 303, 307, 308}


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
        raise transport_error(exc, label=label, secrets=secrets, sent=False) from None


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
