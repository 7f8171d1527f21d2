"""One request to a provider's API (`send`): non-2xx answers and transport problems become
typed errors; `json_object` reads the body as a JSON object."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from bot.providers.base import TransientError
from bot.providers.http.errors import raise_for_status, transport_error

log = logging.getLogger(__name__)


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
        raise transport_error(exc, label=label, secrets=secrets, sent=sent) from None
    request_id = response.headers.get("x-request-id")
    if request_id and not 200 <= response.status_code < 300:
        # The provider's handle on this failure for its support (the URL has no secret).
        log.warning(
            "%s answered HTTP %s to %s %s (x-request-id %s)",
            label,
            response.status_code,
            method,
            httpx.URL(url).path,
            request_id[:200],
        )
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
