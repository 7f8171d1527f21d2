"""Nothing invalid reaches a provider: fuzzed `/video` options that pass `build_request` and
negotiation are submitted, over real HTTP on 127.0.0.1, to the fake ByteCompute and Leonardo
servers, which validate their inputs strictly (unknown fields, sizes, durations per model,
modes, image uploads, seeds). Every such submission is accepted (no 400), and ByteCompute's
own server-side negotiation finds nothing left to change (our quote is what it makes).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from bot.jobs.service import RequestRefused
from bot.providers.base import InputImage, NegotiatedRequest, ProviderError
from bot.providers.bytecompute import ByteComputeProvider
from bot.providers.leonardo import LeonardoProvider
from tests.fakes.bytecompute_server import FakeByteCompute
from tests.fakes.leonardo_server import FakeLeonardo
from tests.fuzz.budget import fuzz
from tests.fuzz.images import corpus
from tests.fuzz.test_fuzz_options import CLI, SERVICE, options

FILES = {"image/png": "png-RGB", "image/jpeg": "jpeg-RGB", "image/webp": "webp-lossy"}


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fuzz-inputs")
    out = {}
    for mime, name in FILES.items():
        path = folder / f"input.{mime.split('/')[1]}"
        path.write_bytes(corpus()[name])
        out[mime] = path
    return out


def real_image(files: dict[str, Path], mime: str, width: int, height: int) -> InputImage:
    """A real file of `mime`, declared `width`×`height` (negotiation uses the declared size)."""
    path = files[mime]
    return InputImage(
        path=path,
        mime=mime,
        width=width,
        height=height,
        sha256=InputImage.sha256_of(path),
        filename=path.name,
    )


modes = st.sampled_from(["text", "image", "frames", "first"])
images_spec = st.tuples(
    modes, st.sampled_from(sorted(FILES)), st.integers(64, 8000), st.integers(64, 8000)
)


def negotiate(opts: dict[str, Any], imgs: dict[str, InputImage]) -> NegotiatedRequest | None:
    values = {k: v for k, v in opts.items() if k not in ("prompt", "provider")}
    try:
        request = SERVICE.build_request(
            prompt=opts["prompt"], provider=opts["provider"], **values, **imgs
        )
        return asyncio.run(SERVICE.prepare(CLI, request))
    except RequestRefused:
        return None


async def submit(negotiated: NegotiatedRequest) -> tuple[list[dict[str, Any]], str]:
    """Submit to the matching fake; returns (the fake's own adjustments, provider name)."""
    async with httpx.AsyncClient(timeout=10) as client:
        if negotiated.provider == "bytecompute":
            async with FakeByteCompute() as fake:
                provider: Any = ByteComputeProvider(
                    client, api_key=fake.api_key, base_url=fake.base_url
                )
                job = await provider.submit(negotiated)
                return fake.jobs[job.job_id].adjustments, "bytecompute"
        model = negotiated.model
        fake = FakeLeonardo()
        rest = await fake.start()
        try:
            provider = LeonardoProvider(client, api_key=fake.api_key, base_url=rest, model=model)
            job = await provider.submit(negotiated)
            assert job.job_id in fake.jobs
            assert not job.adjustments, job.adjustments  # e.g. a refused seed
            return [], "leonardo"
        finally:
            await fake.stop()


@fuzz(60)
@given(
    opts=options.map(
        lambda o: {**o, "provider": o["provider"] if o["provider"] != "simulator" else None}
    ),
    spec=images_spec,
    provider=st.sampled_from(["bytecompute", "leonardo", "leonardo-pro"]),
)
def test_negotiated_requests_are_accepted_by_the_providers(
    image_files: dict[str, Path],
    opts: dict[str, Any],
    spec: tuple[str, str, int, int],
    provider: str,
) -> None:
    opts = {**opts, "provider": provider}
    mode, mime, width, height = spec
    image = real_image(image_files, mime, width, height)
    imgs = {
        "text": {},
        "image": {"image": image},
        "first": {"first_frame": image},
        "frames": {"first_frame": image, "last_frame": image},
    }[mode]
    negotiated = negotiate(opts, imgs)
    if negotiated is None:
        event("refused before any request")
        return
    try:
        server_changes, name = asyncio.run(submit(negotiated))
    except ProviderError as exc:
        raise AssertionError(f"{negotiated.provider} refused {negotiated!r}: {exc}") from None
    event(f"accepted by {name}")
    assert server_changes == [], f"the provider would still change {server_changes}"


@pytest.mark.parametrize("prompt", ["a\x00b", "  x  ", "é" * 2000, "<@&1> @everyone", "'\";--"])
def test_odd_prompts_reach_the_provider_verbatim(image_files: dict[str, Path], prompt: str) -> None:
    """The prompt arrives exactly as the member wrote it (trimmed at most)."""
    negotiated = negotiate({"prompt": prompt, "provider": "bytecompute"}, {})
    assert negotiated is not None

    async def main() -> str:
        async with httpx.AsyncClient(timeout=10) as client, FakeByteCompute() as fake:
            provider = ByteComputeProvider(client, api_key=fake.api_key, base_url=fake.base_url)
            job = await provider.submit(negotiated)
            return str(fake.jobs[job.job_id].params["prompt"])

    assert asyncio.run(main()) == prompt.strip()
