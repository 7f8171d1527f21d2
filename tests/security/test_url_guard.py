"""Outbound fetches of provider-returned URLs: private-network targets are refused *before
any connection*, the configured base host is trusted (even on loopback), redirects are
checked hop by hop, and the API key never travels to another origin.

No traffic leaves the machine: the provider calls run on `httpx.MockTransport` (which
records every request it would have sent) with a stub resolver, except the last test,
which uses the fake ByteCompute on 127.0.0.1 and names that resolve to loopback.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.providers.base import InputImage, Mode, NegotiatedRequest, ProviderJob, TransientError
from bot.providers.bytecompute import ByteComputeProvider
from bot.providers.http import DownloadError, UnsafeURLError, URLGuard
from bot.providers.leonardo import LeonardoProvider
from tests.fakes.bytecompute_server import ByteComputeVariant, FakeByteCompute

BASE = "https://api.bytecompute.test"
KEY = "bc_SECRET_guard_key"
NAMES = {
    "cdn.example": ["93.184.216.34"],
    "v6cdn.example": ["2606:2800:220:1::1"],
    "intranet.example": ["10.20.30.40"],
    "router.example": ["192.168.1.1"],
    "metadata.example": ["169.254.169.254"],
    "sneaky.example": ["93.184.216.34", "127.0.0.1"],  # one public, one loopback answer
    "loop.example": ["::1"],
    "mapped.example": ["::ffff:10.0.0.1"],
    "ula.example": ["fd12:3456::1"],
    "cgnat.example": ["100.64.0.5"],
    "api.bytecompute.test": ["10.0.0.99"],  # the configured base: trusted even if private
}
PRIVATE_URLS = [
    "http://10.0.0.1/clip.mp4",
    "http://172.16.5.4/clip.mp4",
    "http://192.168.0.10/clip.mp4",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://127.0.0.1:8080/clip.mp4",
    "http://[::1]/clip.mp4",
    "http://[::ffff:127.0.0.1]/clip.mp4",
    "http://[fe80::1]/clip.mp4",
    "http://0.0.0.0/clip.mp4",
    "https://intranet.example/clip.mp4",
    "https://router.example/clip.mp4",
    "https://metadata.example/latest",
    "https://sneaky.example/clip.mp4",
    "https://loop.example/clip.mp4",
    "https://mapped.example/clip.mp4",
    "https://ula.example/clip.mp4",
    "http://100.100.100.200/latest/meta-data/",  # a cloud metadata service in 100.64.0.0/10
    "http://100.64.1.1/clip.mp4",
    "https://cgnat.example/clip.mp4",
    "http://[2002:a00:1::]/clip.mp4",  # 6to4 wrapping 10.0.0.1
    "file:///etc/passwd",
    "gopher://cdn.example/x",
]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def stub_resolver(host: str, port: int) -> list[str]:
    if host in NAMES:
        return NAMES[host]
    raise OSError(f"{host} does not resolve (stub)")


class Recorder:
    """A MockTransport handler that records what would have gone out."""

    def __init__(self, answers: dict[str, httpx.Response]) -> None:
        self.answers = answers
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        for prefix, response in self.answers.items():
            if str(request.url).startswith(prefix):
                return response
        return httpx.Response(200, content=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)


def bytecompute(client: httpx.AsyncClient) -> ByteComputeProvider:
    provider = ByteComputeProvider(client, api_key=KEY, base_url=BASE)
    provider._guard = URLGuard.for_base_urls(BASE, resolver=stub_resolver)
    return provider


@pytest.mark.parametrize("how", ["json", "redirect"])
@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_private_targets_are_refused_before_connecting(
    tmp_path: Path, url: str, how: str
) -> None:
    download = f"{BASE}/v1/jobs/j1/download"
    answer = (
        httpx.Response(200, json={"url": url})
        if how == "json"
        else httpx.Response(302, headers={"location": url})
    )
    recorder = Recorder({download: answer})
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        with pytest.raises((DownloadError, TransientError)) as info:
            await bytecompute(client).download(
                ProviderJob(provider="bytecompute", job_id="j1"), tmp_path / "c.mp4"
            )
    if url.startswith(("http://", "https://")):
        assert isinstance(info.value, UnsafeURLError), info.value
    assert [str(r.url) for r in recorder.sent] == [download], "only the provider was asked"
    assert files_in(tmp_path) == []


async def test_leonardo_urls_and_upload_targets_are_checked_too(tmp_path: Path) -> None:
    base = "https://cloud.leonardo.test/api/rest"
    generation = {
        "generations_by_pk": {
            "status": "COMPLETE",
            "generated_images": [{"motionMP4URL": "http://169.254.169.254/latest/x.mp4"}],
        }
    }
    recorder = Recorder({f"{base}/v1/generations/g1": httpx.Response(200, json=generation)})
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        provider = LeonardoProvider(client, api_key=KEY, base_url=base)
        provider._guard = URLGuard.for_base_urls(base, resolver=stub_resolver)
        with pytest.raises(UnsafeURLError):
            await provider.download(
                ProviderJob(provider="leonardo", job_id="g1"), tmp_path / "c.mp4"
            )
        # The presigned upload URL of an init image goes through the same guard.
        answer = {"uploadInitImage": {"id": "i1", "url": "http://10.1.1.1/s3", "fields": "{}"}}
        recorder.answers[f"{base}/v1/init-image"] = httpx.Response(200, json=answer)
        image_path = tmp_path / "i.png"
        image_path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
        image = InputImage(path=image_path, mime="image/png", width=64, height=64, sha256="0")
        with pytest.raises(UnsafeURLError):
            await provider.upload_init_image(image)
    hosts = {r.url.host for r in recorder.sent}
    assert hosts == {"cloud.leonardo.test"}, hosts


async def test_public_targets_and_the_configured_host_are_fetched(tmp_path: Path) -> None:
    """Public CDNs and the configured base host (here on a private address) are allowed;
    the API key goes to the provider's own origin only, never to the CDN."""
    download = f"{BASE}/v1/jobs/j1/download"
    for target in ("https://cdn.example/c.mp4", "https://v6cdn.example/c.mp4", f"{BASE}/files/c"):
        recorder = Recorder({download: httpx.Response(302, headers={"location": target})})
        async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
            await bytecompute(client).download(
                ProviderJob(provider="bytecompute", job_id="j1"), tmp_path / "c.mp4"
            )
        assert [str(r.url) for r in recorder.sent] == [download, target]
        auth = [r.headers.get("authorization") for r in recorder.sent]
        same_origin = target.startswith(BASE)
        assert auth == [f"Bearer {KEY}", f"Bearer {KEY}" if same_origin else None], auth


async def test_redirect_hops_are_capped() -> None:
    hops = {
        f"https://cdn.example/{i}": httpx.Response(
            302, headers={"location": f"https://cdn.example/{i + 1}"}
        )
        for i in range(10)
    }
    hops[f"{BASE}/v1/jobs/j1/download"] = httpx.Response(
        302, headers={"location": "https://cdn.example/0"}
    )
    recorder = Recorder(hops)
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        with pytest.raises(DownloadError, match="too many redirects"):
            await bytecompute(client).download(
                ProviderJob(provider="bytecompute", job_id="j1"), Path("/nonexistent/c.mp4")
            )
    assert len(recorder.sent) == 6  # the provider, then five hops


async def test_names_resolving_to_loopback_are_refused_over_real_sockets(tmp_path: Path) -> None:
    """Against the fake on 127.0.0.1 (trusted: it is the configured base), a download that
    points at `localhost` (resolving to loopback through the system resolver) is refused
    and nothing reaches the fake's file route."""
    async with FakeByteCompute(job_seconds=0.0) as fake, httpx.AsyncClient() as client:
        provider = ByteComputeProvider(client, api_key=fake.api_key, base_url=fake.base_url)
        port = fake.base_url.rsplit(":", 1)[1]
        job = await provider.submit(_request())
        for host in ("localhost", "LOCALHOST.", "127.1", "2130706433", "[::ffff:127.0.0.1]"):
            fake.response_variant = ByteComputeVariant(
                download="json", download_url=f"http://{host}:{port}/files/{job.job_id}.mp4"
            )
            before = fake.request_count("/files/")
            with pytest.raises(UnsafeURLError):
                await provider.download(job, tmp_path / "c.mp4")
            assert fake.request_count("/files/") == before, host
        fake.response_variant = ByteComputeVariant(download="json")  # the trusted base itself
        await provider.download(job, tmp_path / "c.mp4")
        assert (tmp_path / "c.mp4").stat().st_size > 0


def _request() -> NegotiatedRequest:
    return NegotiatedRequest(
        prompt="a cat",
        provider="bytecompute",
        model="Lightricks/LTX-2.3",
        mode=Mode.TEXT,
        duration=5,
        width=1280,
        height=720,
        fps=25,
    )
