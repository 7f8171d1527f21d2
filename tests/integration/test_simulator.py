from __future__ import annotations

import asyncio
import io
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest
from PIL import Image, ImageStat

from bot.media import probe, save_input_image
from bot.providers.base import (
    InvalidRequestError,
    JobFailedError,
    JobNotFoundError,
    JobState,
    Mode,
    NotReadyError,
    Provider,
    VideoRequest,
)
from bot.providers.simulator import SimulatorProvider


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def small_request(prompt: str = "a paper boat on a river", **kw) -> VideoRequest:
    # 512 px short edge is the simulator's minimum; 4 s at 25 fps keeps renders quick.
    base = {"provider": "simulator", "duration": 4, "resolution": "912x512", "seed": 11}
    return VideoRequest(prompt=prompt, **{**base, **kw})


def first_and_last_frame(path: Path) -> tuple[Image.Image, Image.Image]:
    with av.open(str(path)) as c:
        frames = [f.to_image() for f in c.decode(video=0)]
    return frames[0], frames[-1]


def mean_rgb(img: Image.Image) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(img.convert("RGB")).mean)


def png(colour, size=(640, 480), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt)
    return buf.getvalue()


def test_is_a_provider_with_bytecompute_like_limits(tmp_path):
    sim = SimulatorProvider(tmp_path)
    assert isinstance(sim, Provider)
    assert sim.name == "simulator"
    assert sim.limits.durations == (4, 5, 6, 7, 8, 9, 10)
    assert (sim.limits.default_duration, sim.limits.default_fps) == (5, 25)
    assert sim.limits.fps_options == (25, 50)
    assert sim.limits.aspect_ratios == ("16:9", "4:3", "1:1", "3:4", "4:5", "9:16")
    assert sim.limits.job_expiry == timedelta(hours=24)
    assert sim.limits.default_model == "ltx-2.3-sim"


def test_negotiate_prices_like_bytecompute(tmp_path):
    sim = SimulatorProvider(tmp_path)
    sd = sim.negotiate(VideoRequest(prompt="x", provider="simulator", resolution="1280x720"))
    assert (sd.width, sd.height, sd.duration, sd.fps) == (1280, 720, 5, 25)
    assert sd.model == "ltx-2.3-sim" and sd.provider == "simulator"
    assert sd.cost_usd == pytest.approx(5 * 0.02)
    hd = sim.negotiate(
        VideoRequest(prompt="x", provider="simulator", resolution="1920x1080", duration=10)
    )
    assert hd.cost_usd == pytest.approx(10 * 0.04)
    tiny = sim.negotiate(VideoRequest(prompt="x", provider="simulator", resolution="320x180"))
    assert min(tiny.width, tiny.height) >= 512
    assert any(a.field == "resolution" for a in tiny.adjustments)


async def test_text_to_video_lifecycle(tmp_path):
    sim = SimulatorProvider(tmp_path / "work", delay_seconds=0.3)
    assert (await sim.check()).ok
    negotiated = sim.negotiate(small_request())
    job = await sim.submit(negotiated)
    assert job.provider == "simulator" and len(job.job_id) == 32
    assert job.cost_usd == negotiated.cost_usd > 0

    seen = []
    dest = tmp_path / "clip.mp4"
    with pytest.raises(NotReadyError):
        await sim.download(job, dest)
    for _ in range(200):
        status = await sim.status(job)
        if not seen or seen[-1] != status.state:
            seen.append(status.state)
        if status.state is JobState.RUNNING:
            assert 0 <= status.progress < 1 and 0 < status.eta_seconds <= 0.3
        if status.state is JobState.COMPLETED:
            break
        await asyncio.sleep(0.01)
    assert seen == [JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED]

    await sim.download(job, dest)
    info = probe(dest)
    assert abs(info.frames - 4 * 25) <= 1
    assert info.duration_s == pytest.approx(4.0, abs=1 / 25)
    assert info.fps == 25
    assert (info.width, info.height) == (912, 512)
    assert info.has_audio and info.audio_codec == "aac" and info.video_codec == "h264"
    # Like a remote provider, the job stays downloadable (e.g. after a crash mid-delivery).
    assert (tmp_path / "work" / job.job_id).is_dir()
    again = tmp_path / "again.mp4"
    await sim.download(job, again)
    assert again.read_bytes() == dest.read_bytes()
    await sim.aclose()


async def test_expired_job_directories_are_pruned_on_submit(tmp_path):
    import os

    work = tmp_path / "work"
    sim = SimulatorProvider(work, delay_seconds=0)
    old = await sim.submit(sim.negotiate(small_request(audio=False)))
    day_and_more = 25 * 3600
    stamp = (work / old.job_id).stat().st_mtime - day_and_more
    os.utime(work / old.job_id, (stamp, stamp))
    fresh = await sim.submit(sim.negotiate(small_request(audio=False)))
    assert not (work / old.job_id).exists()
    assert (work / fresh.job_id).is_dir()


async def test_status_uses_the_clock_and_resumes_after_restart(tmp_path):
    clock = FakeClock()
    work = tmp_path / "work"
    sim = SimulatorProvider(work, delay_seconds=10, clock=clock)
    job = await sim.submit(sim.negotiate(small_request(audio=False)))
    assert (await sim.status(job)).state is JobState.QUEUED
    clock.advance(5.5)
    running = await sim.status(job)
    assert running.state is JobState.RUNNING
    assert running.progress == pytest.approx(0.5)
    assert running.eta_seconds == pytest.approx(4.5)

    # A fresh instance (a restart: new delay setting, nothing in memory) resumes the job
    # from the ProviderJob alone, round-tripped through JSON like the job row does.
    from bot.providers.base import ProviderJob

    stored = ProviderJob.model_validate_json(job.model_dump_json())
    fresh = SimulatorProvider(work, delay_seconds=1, clock=clock)
    assert (await fresh.status(stored)).state is JobState.RUNNING
    clock.advance(5)
    assert (await fresh.status(stored)).state is JobState.COMPLETED
    dest = tmp_path / "out.mp4"
    await fresh.download(stored, dest)
    info = probe(dest)
    assert info.frames == 100 and not info.has_audio

    clock.advance(25 * 3600)  # past the 24 h expiry
    with pytest.raises(JobNotFoundError):
        await fresh.status(stored)


async def test_image_to_video_starts_from_the_image(tmp_path):
    inputs = tmp_path / "inputs"
    image = save_input_image(png((230, 40, 40)), inputs, "image")
    sim = SimulatorProvider(tmp_path / "work", delay_seconds=0)
    negotiated = sim.negotiate(small_request(image=image))
    assert negotiated.mode is Mode.IMAGE
    job = await sim.submit(negotiated)
    # The provider keeps its own copy: the tracker may delete its inputs after submit.
    image.path.unlink()
    dest = tmp_path / "i2v.mp4"
    await sim.download(job, dest)
    first, _ = first_and_last_frame(dest)
    assert math.dist(mean_rgb(first), (230, 40, 40)) < 40
    assert probe(dest).has_audio


async def test_frame_to_video_goes_from_first_to_last(tmp_path):
    inputs = tmp_path / "inputs"
    first_img = save_input_image(png((240, 200, 30), fmt="JPEG"), inputs, "first_frame")
    last_img = save_input_image(png((20, 60, 230)), inputs, "last_frame")
    sim = SimulatorProvider(tmp_path / "work", delay_seconds=0)
    negotiated = sim.negotiate(small_request(first_frame=first_img, last_frame=last_img))
    assert negotiated.mode is Mode.FRAMES
    job = await sim.submit(negotiated)
    dest = tmp_path / "f2v.mp4"
    await sim.download(job, dest)
    first, last = first_and_last_frame(dest)
    assert math.dist(mean_rgb(first), (240, 200, 30)) < 40
    assert math.dist(mean_rgb(last), (20, 60, 230)) < 40


async def test_different_prompts_give_different_clips(tmp_path):
    sim = SimulatorProvider(tmp_path / "work", delay_seconds=0)
    frames = []
    for prompt in ("a red sunset over the sea", "a snowy mountain village"):
        job = await sim.submit(sim.negotiate(small_request(prompt, audio=False)))
        dest = tmp_path / f"{job.job_id}.mp4"
        await sim.download(job, dest)
        frames.append(first_and_last_frame(dest)[0])
    assert frames[0].tobytes() != frames[1].tobytes()
    assert math.dist(mean_rgb(frames[0]), mean_rgb(frames[1])) > 10


async def test_fail_prompts_containing(tmp_path):
    clock = FakeClock()
    sim = SimulatorProvider(
        tmp_path, delay_seconds=2, clock=clock, fail_prompts_containing="explode"
    )
    job = await sim.submit(sim.negotiate(small_request("please EXPLODE now")))
    ok_job = await sim.submit(sim.negotiate(small_request("please stay calm")))
    assert (await sim.status(job)).state is JobState.QUEUED
    clock.advance(2)
    failed = await sim.status(job)
    assert failed.state is JobState.FAILED and "explode" in failed.failure_reason
    assert (await sim.status(ok_job)).state is JobState.COMPLETED
    with pytest.raises(JobFailedError):
        await sim.download(job, tmp_path / "never.mp4")
    assert not (tmp_path / "never.mp4").exists()


async def test_cancel_and_unknown_jobs(tmp_path):
    clock = FakeClock()
    sim = SimulatorProvider(tmp_path, delay_seconds=5, clock=clock)
    job = await sim.submit(sim.negotiate(small_request()))
    assert (tmp_path / job.job_id).is_dir()
    assert await sim.cancel(job) is True
    assert not (tmp_path / job.job_id).exists()
    with pytest.raises(JobNotFoundError):
        await sim.status(job)
    bogus = job.model_copy(update={"job_id": "../../etc"})
    with pytest.raises(JobNotFoundError):
        await sim.status(bogus)
    broken = job.model_copy(update={"data": {}})
    with pytest.raises(JobNotFoundError):
        await sim.status(broken)


async def test_submit_refuses_missing_input_image(tmp_path):
    image = save_input_image(png((1, 2, 3)), tmp_path / "in", "image")
    sim = SimulatorProvider(tmp_path / "work", delay_seconds=0)
    negotiated = sim.negotiate(small_request(image=image))
    image.path.unlink()
    with pytest.raises(InvalidRequestError, match="attach it again"):
        await sim.submit(negotiated)
    assert list((tmp_path / "work").iterdir()) == []


async def test_odd_sizes_are_negotiated_to_renderable_even_sizes(tmp_path):
    sim = SimulatorProvider(tmp_path / "work", delay_seconds=0)
    request = VideoRequest(prompt="odd", provider="simulator", resolution="641x513", duration=4)
    negotiated = sim.negotiate(request)
    assert negotiated.width % 2 == 0 and negotiated.height % 2 == 0
    assert any(a.field == "resolution" for a in negotiated.adjustments)
    job = await sim.submit(negotiated)
    dest = tmp_path / "odd.mp4"
    await sim.download(job, dest)
    info = probe(dest)
    assert (info.width, info.height) == (negotiated.width, negotiated.height)
