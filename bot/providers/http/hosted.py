"""`HostedApi`: what every hosted provider's client holds, written once.

One shared httpx client (it belongs to the bot: `aclose()` leaves it open), one API key, sent
only as the `Authorization` header of calls to the provider's own base URL and scrubbed from
every error message, the URL guard for result downloads (the provider's host and the
`trusted_hosts`), and the download cap. The result URL a status answer named is kept per job
(`_result_urls`), so a download does not need a second status call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import httpx

from bot.providers.base import JobState, JobStatus, NotReadyError, ProviderJob
from bot.providers.http.download import DEFAULT_MAX_DOWNLOAD_BYTES, stream_to_file
from bot.providers.http.request import send
from bot.providers.http.urlguard import URLGuard, host_of


def normalise_base_url(base_url: str, versions: tuple[str, ...] = ("/v1", "/v2")) -> str:
    """The host root: trailing slashes, then each of `versions` in turn when it ends the URL,
    are removed."""
    base = base_url.strip().rstrip("/")
    for suffix in versions:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


class HostedApi:
    """The base of `ByteComputeProvider`, `LeonardoProvider` and `LtxProvider`."""

    label: ClassVar[str]  # the provider's name in messages, e.g. "LTX"
    versions: ClassVar[tuple[str, ...]] = ("/v1", "/v2")  # stripped from a given base URL
    model: str | None = None  # the model a client is set to, if it has a choice

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: str,
        base_url: str,
        trusted_hosts: tuple[str, ...] = (),
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> None:
        self._client = client
        self._key = api_key
        self._base = normalise_base_url(base_url, self.versions)
        self._guard = URLGuard([host_of(self._base), *trusted_hosts])
        self._max_download_bytes = max_download_bytes
        self._result_urls: dict[str, str] = {}

    def __repr__(self) -> str:  # never the key
        shown = f", model={self.model!r}" if self.model is not None else ""
        return f"{type(self).__name__}(base_url={self._base!r}{shown})"

    @property
    def base_url(self) -> str:
        return self._base

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}", "Accept": "application/json"}

    def _url(self, path: str) -> str:
        return f"{self._base}{path}"

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One call to the provider's API (`bot.providers.http.send`), with the key."""
        return await send(
            self._client,
            method,
            self._url(path),
            label=self.label,
            secrets=[self._key],
            headers=self._headers(),
            **kw,
        )

    async def _fetch(self, url: str, dest: Path, **kw: Any) -> None:
        """Stream a result to `dest` (capped, guarded; `kw` as for `stream_to_file`)."""
        await stream_to_file(
            self._client,
            url,
            dest,
            label=self.label,
            guard=self._guard,
            secrets=[self._key],
            max_bytes=self._max_download_bytes,
            **kw,
        )

    async def status(self, job: ProviderJob) -> JobStatus:
        raise NotImplementedError

    async def _download_result(self, job: ProviderJob, dest: Path, *, noun: str) -> None:
        """Download the video a completed status named: from the URL kept by the last status
        answer, or after asking once more. The storage URL needs no credentials, so no key
        goes there. `noun`: what the provider calls a job, for the message."""
        url = self._result_urls.get(job.job_id)
        if url is None:
            current = await self.status(job)
            if current.state is not JobState.COMPLETED or current.result_url is None:
                raise NotReadyError(f"{self.label}: {noun} {job.job_id} is not finished")
            url = current.result_url
        await self._fetch(url, dest)
        self._result_urls.pop(job.job_id, None)

    async def aclose(self) -> None:
        return None  # the shared client belongs to the bot
