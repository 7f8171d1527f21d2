"""Contract: the Leonardo client's requests, checked by Stoplight Prism against the published specs.

Prism (`@stoplight/prism-cli`) serves the saved OpenAPI files from `../shared/reference/openapi/`
(relative to the repo root) and answers 422 to any request that does not match them, 401 to one
without the bearer scheme. The client talks to three Prism processes (one per spec) through a
routing transport that maps `/api/rest/v1/<path>` onto the spec's own paths (Prism ignores the
`servers` base path).

Prism is installed by this test into a cache directory (`PRISM_CACHE_DIR`, default
`~/.cache/ltx-discord-bot/prism-5.14.2`). Skipped when npm is not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bot.providers.base import InvalidRequestError, JobState, ProviderJob, TransientError
from bot.providers.leonardo import LeonardoProvider

pytestmark = pytest.mark.contract

PRISM_VERSION = "5.14.2"
REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO.parent / "shared" / "reference" / "openapi"
SPECS = {
    "init": "leonardo-ai-init-images-api-openapi.yml",  # POST /init-image
    "image": "leonardo-ai-image-api-openapi.yml",  # GET /generations/{id}
    "user": "leonardo-ai-user-api-openapi.yml",  # GET /me
}
KEY = str(uuid.uuid4())


def _cache_dir() -> Path:
    default = Path.home() / ".cache" / "ltx-discord-bot" / f"prism-{PRISM_VERSION}"
    return Path(os.environ.get("PRISM_CACHE_DIR", default))


def _install_prism() -> Path:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the Prism contract test needs Node.js and npm")
    missing = [name for name in SPECS.values() if not (SPEC_DIR / name).is_file()]
    if missing:
        pytest.skip(f"OpenAPI specs not found in {SPEC_DIR} (expected shared/ beside the repo)")
    cache = _cache_dir()
    prism = cache / "node_modules" / ".bin" / "prism"
    if not prism.exists():
        cache.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--loglevel=error",
             f"@stoplight/prism-cli@{PRISM_VERSION}"],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )  # fmt: skip
        if result.returncode != 0 or not prism.exists():
            pytest.fail(f"installing Prism failed:\n{result.stderr[-2000:]}")
    return prism


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"Prism exited early:\n{log.read_text()[-2000:]}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"Prism did not start in time:\n{log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this test started (start_new_session)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture(scope="module")
def prism_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    prism = _install_prism()
    logs = tmp_path_factory.mktemp("prism")
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    try:
        for name, spec in SPECS.items():
            port = _free_port()
            log = logs / f"{name}.log"
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [str(prism), "mock", "-h", "127.0.0.1", "-p", str(port),
                         str(SPEC_DIR / spec)],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )  # fmt: skip
            ports[name] = port
        deadline = time.monotonic() + 45
        for (name, port), proc in zip(ports.items(), procs, strict=True):
            _wait_listening(port, proc, logs / f"{name}.log", deadline)
        yield ports
    finally:
        for proc in procs:
            _stop(proc)


class PrismRouter(httpx.AsyncBaseTransport):
    """Sends `/api/rest/v1/<path>` to the Prism serving that path's spec."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.inner = httpx.AsyncHTTPTransport()
        self.seen: list[tuple[str, str, int, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/rest/v1")
        if path.startswith("/init-image"):
            name = "init"
        elif path.startswith("/generations"):
            name = "image"
        elif path == "/me":
            name = "user"
        else:
            raise AssertionError(f"no spec serves {request.url.path}")
        request.url = request.url.copy_with(host="127.0.0.1", port=self.ports[name], path=path)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.seen.append((request.method, path, response.status_code, response.text))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def routed(
    prism_ports: dict[str, int],
) -> AsyncIterator[tuple[LeonardoProvider, PrismRouter]]:
    router = PrismRouter(prism_ports)
    client = httpx.AsyncClient(transport=router, timeout=20)
    provider = LeonardoProvider(
        client, api_key=KEY, base_url="http://leonardo.prism.invalid/api/rest"
    )
    yield provider, router
    await client.aclose()


async def test_init_image_request_matches_the_spec(
    routed: tuple[LeonardoProvider, PrismRouter],
) -> None:
    provider, router = routed
    # Prism's example answer has `fields: "string"` (not JSON); the request itself passed.
    with pytest.raises(TransientError, match="upload fields"):
        await provider.request_init_image("png")
    method, path, status, body = router.seen[-1]
    assert (method, path, status) == ("POST", "/init-image", 200), body
    assert "uploadInitImage" in body


async def test_generation_poll_matches_the_spec(
    routed: tuple[LeonardoProvider, PrismRouter],
) -> None:
    provider, router = routed
    job = ProviderJob(provider="leonardo", job_id=str(uuid.uuid4()))
    status = await provider.status(job)
    assert router.seen[-1][:3] == ("GET", f"/generations/{job.job_id}", 200)
    assert status.state is JobState.RUNNING  # Prism's example generation is PENDING


async def test_user_call_matches_the_spec(routed: tuple[LeonardoProvider, PrismRouter]) -> None:
    provider, router = routed
    result = await provider.check()
    assert router.seen[-1][:3] == ("GET", "/me", 200)
    assert result.ok, result.detail
    assert "concurrency slots" in result.detail


async def test_prism_does_reject_bad_requests(
    routed: tuple[LeonardoProvider, PrismRouter],
) -> None:
    """Controls: the validator is live, so the passes above mean something."""
    provider, router = routed
    bad_job = ProviderJob(provider="leonardo", job_id="not-a-uuid")
    with pytest.raises(InvalidRequestError):
        await provider.status(bad_job)
    assert router.seen[-1][2] == 422
    async with httpx.AsyncClient(transport=PrismRouter(router.ports)) as raw:
        wrong_body = await raw.post(
            "http://x/api/rest/v1/init-image",
            json={"ext": "png"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        no_key = await raw.get("http://x/api/rest/v1/me")
    assert wrong_body.status_code == 422 and "extension" in wrong_body.text
    assert no_key.status_code == 401
