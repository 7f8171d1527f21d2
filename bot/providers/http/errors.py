"""HTTP problems as the typed errors of `base.py`: non-2xx answers (`raise_for_status`, with
the error envelopes the providers use), transport failures, `Retry-After`, and the two
errors special to HTTP (`DownloadError`, `UnsafeURLError`).

`error_details()` reads LTX/ByteCompute `{"type":"error","error":{"type","message"}}`,
Leonardo `{"error","path","code"}` and plain `{"message"}`, and falls back to the title of an
HTML gateway page or the raw text. No message here carries a secret: every text taken from
a response goes through `scrub()` with the provider's key.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.providers.base import (
    AuthenticationError,
    ContentRefusedError,
    InsufficientCreditsError,
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

MAX_RETRY_AFTER = 3600.0  # seconds; a longer Retry-After is honoured as this
_MESSAGE_LIMIT = 300


class DownloadError(JobFailedError):
    """The finished clip cannot be fetched (too big, too many redirects, no URL, ...)."""


class UnsafeURLError(DownloadError):
    """A provider-returned URL points somewhere the bot must not fetch from."""


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def short(text: str) -> str:
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
        return None, short(str(data))
    if "html" in content_type.lower() or text.lstrip().startswith("<"):
        match = _TITLE.search(text)
        page = match.group(1) if match else _TAG.sub(" ", text)
        return None, short(page) or None
    return None, short(text)


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
    return kind, short(message) if message else None


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
    if kind == "content_filtered_error":  # the LTX API's safety filter (HTTP 422)
        raise ContentRefusedError(status_code=status)
    if status in (400, 413, 422) or (status == 403 and "moderation" in lowered):
        raise InvalidRequestError(f"{label} refused the request{detail}", status_code=status)
    if status in (401, 403):
        raise AuthenticationError(
            f"{label} rejected the API key (HTTP {status}){detail}", status_code=status
        )
    if status == 402:
        raise InsufficientCreditsError(
            f"{label} account is out of credit (HTTP 402){detail}", status_code=402
        )
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


def transport_error(
    exc: httpx.HTTPError, *, label: str, secrets: Sequence[str], sent: bool
) -> ProviderError:
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    detail = scrub(short(str(exc)), secrets)
    message = f"{label}: {what} ({type(exc).__name__}{': ' + detail if detail else ''})"
    if sent:
        return OutcomeUnknownError(message)
    return TransientError(message)
