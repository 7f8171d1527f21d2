"""Contract: the LTX client's requests, checked by Stoplight Prism against the published spec
(`../shared/reference/openapi/ltx-api.openapi.json`).

Prism answers 422 to a request that does not match the spec and 401 to one without the bearer
scheme. Uploads go to Prism's `POST /v1/upload` for real; the PUT to the signed URL is not part
of the spec (storage), so `PrismLtx.upload` returns the `storage_uri` Prism gave without it
(the fake LTX server covers the PUT). Prism is installed like in `test_leonardo_prism.py`.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from bot.media import save_input_audio, save_input_image, save_source_clip
from bot.providers.base import EditSpec, InvalidRequestError, JobState, ProviderJob, VideoRequest
from bot.providers.ltx import LtxProvider
from tests.contract.test_leonardo_prism import SPEC_DIR, _free_port, _install_prism, _stop
from tests.contract.test_leonardo_prism import _wait_listening as wait_listening
from tests.ltx_media import make_clip, make_sound

pytestmark = pytest.mark.contract

SPEC = "ltx-api.openapi.json"
KEY = "ltx-" + uuid.uuid4().hex


class PrismLtx(LtxProvider):
    async def upload(self, path: Path, mime: str) -> str:
        ticket = await self.request_upload()  # validated by Prism
        return ticket.storage_uri


@pytest.fixture(scope="module")
def prism_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (SPEC_DIR / SPEC).is_file():
        pytest.skip(f"{SPEC} not found in {SPEC_DIR}")
    prism = _install_prism()
    log = tmp_path_factory.mktemp("prism-ltx") / "ltx.log"
    port = _free_port()
    import time

    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(prism), "mock", "-h", "127.0.0.1", "-p", str(port), str(SPEC_DIR / SPEC)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_listening(port, proc, log, time.monotonic() + 45)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture
async def provider(prism_url: str) -> AsyncIterator[PrismLtx]:
    async with httpx.AsyncClient(timeout=20) as client:
        yield PrismLtx(client, api_key=KEY, base_url=prism_url)


async def test_text_and_image_to_video_match_the_spec(provider: PrismLtx, tmp_path) -> None:
    t2v = provider.negotiate(VideoRequest(prompt="a fox", provider="ltx", duration=6))
    job = await provider.submit(t2v)
    assert job.job_id and job.data["endpoint"] == "text-to-video"
    Image.new("RGB", (640, 360), (1, 2, 3)).save(tmp_path / "a.png")
    first = save_input_image((tmp_path / "a.png").read_bytes(), tmp_path / "in", "first_frame")
    last = save_input_image((tmp_path / "a.png").read_bytes(), tmp_path / "in", "last_frame")
    frames = provider.negotiate(
        VideoRequest(prompt="morph", provider="ltx", first_frame=first, last_frame=last)
    )
    assert (await provider.submit(frames)).data["endpoint"] == "image-to-video"


async def test_audio_extend_and_retake_match_the_spec(provider: PrismLtx, tmp_path) -> None:
    sound = save_input_audio(make_sound(tmp_path / "s.wav", 3.0), tmp_path / "in")
    audio = provider.negotiate(VideoRequest(prompt="beat", provider="ltx", soundtrack=sound))
    assert (await provider.submit(audio)).data["endpoint"] == "audio-to-video"
    clip = save_source_clip(make_clip(tmp_path / "c.mp4", 4), tmp_path / "in")
    for edit in (
        EditSpec(kind="extend", source=clip, seconds=4, where="start"),
        EditSpec(kind="retake", source=clip, seconds=2, start=1, redo="audio"),
    ):
        req = provider.negotiate(VideoRequest(prompt="more", provider="ltx", edit=edit))
        assert (await provider.submit(req)).data["endpoint"] == edit.kind


async def test_status_poll_matches_the_spec(provider: PrismLtx) -> None:
    job = ProviderJob(provider="ltx", job_id="job_1", data={"endpoint": "extend"})
    status = await provider.status(job)
    assert status.state in (JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED, JobState.FAILED)


async def test_prism_does_reject_bad_requests(provider: PrismLtx, prism_url: str) -> None:
    """Controls: the validator is live, so the passes above mean something."""
    with pytest.raises(InvalidRequestError):  # 422 from Prism: `resolution` is required
        await provider._call("POST", "/v2/text-to-video", json_body={"prompt": "x"})
    async with httpx.AsyncClient() as raw:
        no_key = await raw.post(f"{prism_url}/v1/upload")
        bad_endpoint = await raw.get(
            f"{prism_url}/v2/not-an-endpoint/x", headers={"Authorization": f"Bearer {KEY}"}
        )
    assert no_key.status_code in (401, 422)  # the spec also lists Authorization as required
    assert bad_endpoint.status_code in (404, 422)
