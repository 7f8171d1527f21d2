"""The LTX API provider against the fake LTX server on 127.0.0.1, through the real tracker:
text/image/frame-to-video, audio-to-video with a real sound file, extend and retake of a
real clip, 402 (out of credit: refunded, mod-log entry), 429, failures and expiry."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from bot.jobs.tracker import MSG_GONE, MSG_OUT_OF_CREDIT
from bot.media import save_input_audio, save_input_image, save_source_clip
from bot.moderation import recent_entries
from bot.providers.base import (
    MSG_CONTENT_REFUSED,
    EditSpec,
    InvalidRequestError,
    NegotiatedRequest,
    Operation,
    VideoRequest,
)
from bot.providers.bytecompute import ByteComputeProvider
from bot.providers.ltx import LtxProvider
from bot.store import jobs as store
from bot.store.jobs import Status
from tests.fakes.ltx_server import FakeLtx
from tests.ltx_media import make_clip, make_sound
from tests.unit.test_tracker_support import (
    RecordingSink,
    admit,
    fast_settings,
    ledger_kinds,
    make_tracker,
)

KEY = "ltx-secret-key-987"


@pytest.fixture
async def fake() -> AsyncIterator[FakeLtx]:
    async with FakeLtx(api_key=KEY, job_seconds=0.2) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


@pytest.fixture
def provider(fake: FakeLtx, client: httpx.AsyncClient) -> LtxProvider:
    return LtxProvider(client, api_key=KEY, base_url=fake.base_url)


def settings() -> Any:
    return fast_settings(
        requests_per_second={"ltx": 200},
        max_concurrency={"ltx": 2},
        prior_base_seconds=0.2,
        prior_seconds_per_video_second=0,
    )


async def run_jobs(db: Any, data_dir: Path, provider: LtxProvider, *reqs: NegotiatedRequest):
    sink = RecordingSink()
    tracker = make_tracker(db, data_dir, {"ltx": provider}, sink, settings())
    await tracker.start()
    try:
        ids = []
        for req in reqs:
            job_id = await admit(db, req)
            await tracker.enqueue(job_id)
            ids.append(job_id)
        for job_id in ids:
            await sink.wait(job_id, within=20)
    finally:
        await tracker.stop()
    return sink, ids


def decoded(data: bytes, tmp: Path) -> tuple[int, float]:
    """(video frames, seconds) of an MP4, by decoding every frame."""
    path = tmp / "out.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, frames / float(stream.average_rate)


def submits(fake: FakeLtx) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path.startswith("/v2/")]


def png(dir_: Path, name: str, size: tuple[int, int] = (1280, 720)) -> Any:
    Image.new("RGB", size, (20, 90, 200)).save(dir_ / f"{name}-src.png")
    return save_input_image((dir_ / f"{name}-src.png").read_bytes(), dir_, name)


async def test_text_to_video_through_the_tracker(fake, provider, db, tmp_path) -> None:
    req = provider.negotiate(VideoRequest(prompt="a red fox", provider="ltx", duration=8))
    assert (req.model, req.resolution, req.fps, req.duration) == (
        "ltx-2-3-fast",
        "1920x1080",
        24,
        8,
    )
    assert req.cost_usd == pytest.approx(0.06 * 8)
    sink, (job_id,) = await run_jobs(db, tmp_path / "data", provider, req)
    assert sink.outcome[job_id] == "delivered"
    frames, seconds = decoded(sink.clips[job_id], tmp_path)
    assert frames == 8 * 24 and seconds == pytest.approx(8)
    (sent,) = submits(fake)
    assert sent.path == "/v2/text-to-video"
    assert sent.authorization == f"Bearer {KEY}"
    assert sent.json == {
        "prompt": "a red fox", "model": "ltx-2-3-fast", "duration": 8,
        "resolution": "1920x1080", "fps": 24, "generate_audio": True,
    }  # fmt: skip
    job = await store.get_job(db, job_id)
    assert job is not None and job.status is Status.DELIVERED
    polls = [r.path for r in fake.requests if r.method == "GET" and r.path.startswith("/v2/")]
    assert polls and set(polls) == {f"/v2/text-to-video/{job.provider_job_id}"}
    assert await ledger_kinds(db, job_id) == ["reserve", "settle"]


async def test_image_and_frames_are_uploaded_without_the_key(fake, provider, db, tmp_path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    one = provider.negotiate(
        VideoRequest(prompt="wave", provider="ltx", image=png(inputs, "image"), duration=6)
    )
    two = provider.negotiate(
        VideoRequest(
            prompt="morph", provider="ltx", duration=6,
            first_frame=png(inputs, "first_frame"), last_frame=png(inputs, "last_frame"),
        )
    )  # fmt: skip
    sink, ids = await run_jobs(db, tmp_path / "data", provider, one, two)
    assert [sink.outcome[i] for i in ids] == ["delivered", "delivered"]
    puts = [r for r in fake.requests if r.method == "PUT"]
    assert len(puts) == 3 and all(r.authorization is None for r in puts)
    bodies = [r.json for r in submits(fake)]
    assert all(r.path == "/v2/image-to-video" for r in submits(fake))
    uploaded = {u.storage_uri for u in fake.uploads.values() if u.data}
    assert bodies[0]["image_uri"] in uploaded and "last_frame_uri" not in bodies[0]
    assert {bodies[1]["image_uri"], bodies[1]["last_frame_uri"]} <= uploaded


def test_long_clips_are_made_at_1080p_and_25_fps(provider) -> None:
    req = provider.negotiate(
        VideoRequest(prompt="x", provider="ltx", duration=20, resolution="1280x720", fps=50)
    )
    assert (req.duration, req.resolution, req.fps) == (20, "1920x1080", 25)
    fields = {a.field: (a.requested, a.actual) for a in req.adjustments}
    assert fields == {"resolution": ("1280x720", "1920x1080"), "fps": (50, 25)}
    assert req.cost_usd == pytest.approx(0.06 * 20)
    short = provider.negotiate(VideoRequest(prompt="x", provider="ltx", resolution="1280x720"))
    assert short.cost_usd == pytest.approx(0.03 * 8)  # 720p fast


async def test_out_of_credit_is_refunded_and_told_to_the_admins(
    fake, provider, db, tmp_path, caplog
) -> None:
    fake.out_of_credit = True
    req = provider.negotiate(VideoRequest(prompt="a cat", provider="ltx"))
    with caplog.at_level(logging.WARNING):
        sink, (job_id,) = await run_jobs(db, tmp_path / "data", provider, req)
    assert sink.outcome[job_id] == "failed"
    ended = [args for kind, j, args in sink.events if kind == "ended" and j == job_id]
    assert ended == [("failed", MSG_OUT_OF_CREDIT)]
    assert await ledger_kinds(db, job_id) == ["reserve", "refund"]
    assert len(submits(fake)) == 1  # never retried
    entries = await recent_entries(db, 10, limit=10)  # (guild 10: the test jobs)
    account = [e for e in entries if e.kind == "provider_account"]
    assert len(account) == 1 and account[0].job_id == job_id
    assert "402" in account[0].summary and "not charged" in account[0].summary
    # the x-request-id of the refusal is logged; the key never is
    refused_id = fake.request_ids[-1]
    assert any(refused_id in r.getMessage() for r in caplog.records)
    assert all(KEY not in r.getMessage() for r in caplog.records)


async def test_rate_limit_is_waited_out(fake, provider, db, tmp_path) -> None:
    fake.rate_limit_next(2, retry_after=0.05, path_prefix="/v2/text-to-video")
    req = provider.negotiate(VideoRequest(prompt="rain", provider="ltx", duration=6))
    sink, (job_id,) = await run_jobs(db, tmp_path / "data", provider, req)
    assert sink.outcome[job_id] == "delivered"
    assert len(submits(fake)) == 3


async def test_failed_and_expired_jobs(fake, provider, db, tmp_path) -> None:
    fake.fail_with = ("content_filtered_error", "Prompt rejected by safety filter")
    req = provider.negotiate(VideoRequest(prompt="bad", provider="ltx", duration=6))
    sink, (job_id,) = await run_jobs(db, tmp_path / "data", provider, req)
    ((outcome, reason),) = [a for k, j, a in sink.events if k == "ended" and j == job_id]
    assert outcome == "failed" and reason == MSG_CONTENT_REFUSED
    await _assert_refused_by_filter(db, job_id)
    fake.fail_with = None
    fake.job_seconds = 30
    sink = RecordingSink()
    tracker = make_tracker(db, tmp_path / "data", {"ltx": provider}, sink, settings())
    await tracker.start()
    try:
        job_id = await admit(db, req)
        await tracker.enqueue(job_id)
        for _ in range(200):
            job = await store.get_job(db, job_id)
            if job is not None and job.provider_job_id:
                break
            await __import__("asyncio").sleep(0.02)
        assert job is not None and job.provider_job_id is not None
        fake.expire_job(job.provider_job_id)
        assert await sink.wait(job_id, within=20) == "expired"
    finally:
        await tracker.stop()
    assert [a for k, j, a in sink.events if k == "ended"] == [("expired", MSG_GONE)]


async def test_audio_to_video_with_a_real_sound_file(fake, provider, db, tmp_path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    sound = save_input_audio(make_sound(tmp_path / "s.mp3", 3.5, fmt="mp3"), inputs)
    assert sound.mime == "audio/mpeg" and sound.duration_s == pytest.approx(3.5, abs=0.05)
    req = provider.negotiate(
        VideoRequest(prompt="drums", provider="ltx", soundtrack=sound, duration=8, fps=24)
    )
    assert (req.operation, req.model, req.duration, req.fps) == (
        Operation.AUDIO, "ltx-2-3-pro", 4, 25,
    )  # fmt: skip
    assert req.cost_usd == pytest.approx(0.10 * sound.duration_s, abs=1e-3)
    assert {a.field for a in req.adjustments} == {"duration", "fps"}
    sink, (job_id,) = await run_jobs(db, tmp_path / "data", provider, req)
    assert sink.outcome[job_id] == "delivered"
    (sent,) = submits(fake)
    assert sent.path == "/v2/audio-to-video"
    assert set(sent.json) == {"audio_uri", "prompt", "resolution", "model"}
    frames, _ = decoded(sink.clips[job_id], tmp_path)
    assert frames == 4 * 25


def test_soundtrack_limits(provider, tmp_path) -> None:
    sound = save_input_audio(make_sound(tmp_path / "s.wav", 2.5), tmp_path / "in")
    other = ByteComputeProvider(httpx.AsyncClient(), api_key="k", base_url="http://127.0.0.1:9")
    with pytest.raises(InvalidRequestError, match="soundtrack"):
        other.negotiate(VideoRequest(prompt="x", provider="bytecompute", soundtrack=sound))
    with pytest.raises(Exception, match="2–20 s"):
        save_input_audio(make_sound(tmp_path / "short.wav", 1.5), tmp_path / "in2")


async def test_extend_and_retake_a_real_clip(fake, provider, db, tmp_path) -> None:
    inputs = tmp_path / "in"
    clip = save_source_clip(make_clip(tmp_path / "src.mp4", 4), inputs)
    assert (clip.frames, clip.fps) == (96, 24.0)
    extend = provider.negotiate(
        VideoRequest(
            prompt="it flies away", provider="ltx",
            edit=EditSpec(kind="extend", source=clip, source_job_id=7, seconds=5, where="end"),
        )
    )  # fmt: skip
    assert extend.operation is Operation.EXTEND and extend.duration == 5
    assert extend.extra["context_seconds"] == pytest.approx(4.0)  # the whole 4 s clip
    assert extend.cost_usd == pytest.approx(0.10 * 9)  # the new 5 s plus 4 s of context
    retake = provider.negotiate(
        VideoRequest(
            prompt="it turns blue", provider="ltx",
            edit=EditSpec(kind="retake", source=clip, seconds=3, start=2, redo="video"),
        )
    )  # fmt: skip
    assert retake.edit is not None and retake.edit.seconds == pytest.approx(2.0)  # clamped
    assert [a.field for a in retake.adjustments] == ["retake_end"]
    assert retake.cost_usd == pytest.approx(0.10 * 4)  # billed per second of the input
    sink, ids = await run_jobs(db, tmp_path / "data", provider, extend, retake)
    assert [sink.outcome[i] for i in ids] == ["delivered", "delivered"]
    one, two = submits(fake)
    assert one.path == "/v2/extend" and two.path == "/v2/retake"
    assert one.json["duration"] == 5 and one.json["mode"] == "end"
    assert one.json["context"] == pytest.approx(4.0) and one.json["model"] == "ltx-2-3-pro"
    assert two.json["mode"] == "replace_video" and two.json["start_time"] == 2
    assert decoded(sink.clips[ids[0]], tmp_path)[1] == pytest.approx(9)
    with pytest.raises(InvalidRequestError, match="73 frames"):
        tiny = save_source_clip(make_clip(tmp_path / "tiny.mp4", 2, fps=24), tmp_path / "t")
        provider.negotiate(
            VideoRequest(prompt="x", provider="ltx", edit=EditSpec(kind="extend", source=tiny,
                                                                   seconds=3))
        )  # fmt: skip


async def test_check_reports_the_key(fake, client) -> None:
    good = LtxProvider(client, api_key=KEY, base_url=fake.base_url + "/v1")
    assert (await good.check()).ok
    bad = await LtxProvider(client, api_key="wrong", base_url=fake.base_url).check()
    assert not bad.ok and "wrong" not in bad.detail


async def _assert_refused_by_filter(db: Any, job_id: int) -> None:
    """A safety-filter refusal: refunded in full, nothing billed, a refusal in the audit log."""
    assert await ledger_kinds(db, job_id) == ["reserve", "refund"]
    spent = await db.fetchval("SELECT SUM(cost_usd) FROM quota_ledger WHERE job_id = ?", (job_id,))
    assert spent == pytest.approx(0.0)  # reserved and given back: no spend counted
    refusals = [
        e
        for e in await recent_entries(db, 10, limit=20)
        if e.kind == "refusal" and e.job_id == job_id
    ]
    assert len(refusals) == 1 and "safety filter" in refusals[0].summary
    assert refusals[0].data["reason"] == "provider_filter"


async def test_safety_filter_refusal_at_submit_charges_nothing(
    fake, provider, db, tmp_path
) -> None:
    """The LTX API's 422 `content_filtered_error` at submit: one try, the member is told to
    change the prompt, the job is refunded with nothing billed and the moderators see it."""
    fake.filtered_words = ("forbidden",)
    req = provider.negotiate(VideoRequest(prompt="a forbidden scene", provider="ltx", duration=6))
    sink, (job_id,) = await run_jobs(db, tmp_path / "data", provider, req)
    ended = [args for kind, j, args in sink.events if kind == "ended" and j == job_id]
    assert ended == [("failed", MSG_CONTENT_REFUSED)]
    assert len(submits(fake)) == 1  # a refusal is not retried
    await _assert_refused_by_filter(db, job_id)
