"""The offline simulator: behaves like a remote provider and renders a real clip locally.

It keeps no state in memory. `submit()` copies the inputs into `work_dir/<job_id>/` (as a
remote provider would have received them) and puts everything needed to finish the job in
`ProviderJob.data`; status is derived from the time elapsed since submission, so a fresh
instance (after a restart) resumes any job from its `ProviderJob` alone.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot import media
from bot.negotiation import negotiate
from bot.pricing import bytecompute_price_per_second
from bot.providers.base import (
    CheckResult,
    InvalidRequestError,
    JobFailedError,
    JobNotFoundError,
    JobState,
    JobStatus,
    NegotiatedRequest,
    NotReadyError,
    ProviderJob,
    ProviderLimits,
    VideoRequest,
)

MODEL = "ltx-2.3-sim"
QUEUED_SHARE = 0.1  # the first 10 % of the delay is spent "in the queue"
JOB_EXPIRY = timedelta(hours=24)

SIMULATOR_LIMITS = ProviderLimits(
    models=(MODEL,),
    default_model=MODEL,
    durations=(4, 5, 6, 7, 8, 9, 10),
    default_duration=5,
    fps_options=(25, 50),
    default_fps=25,
    aspect_ratios=("16:9", "4:3", "1:1", "3:4", "4:5", "9:16"),
    default_aspect_ratio="16:9",
    min_edge=512,
    max_width=1920,
    max_height=1080,
    size_multiple=2,  # H.264 yuv420p needs even edges
    supports_image=True,
    supports_frames=True,
    supports_seed=True,
    supports_audio_toggle=True,
    job_expiry=JOB_EXPIRY,
    requests_per_minute=600,
    max_concurrency=4,
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SimulatorProvider:
    """A provider that needs no network: clips are rendered with `bot.media.render_clip`."""

    name = "simulator"
    limits = SIMULATOR_LIMITS

    def __init__(
        self,
        work_dir: Path,
        *,
        delay_seconds: float = 3.0,
        clock: Callable[[], datetime] = _utc_now,
        fail_prompts_containing: str | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.delay_seconds = max(0.0, delay_seconds)
        self.clock = clock
        self.fail_prompts_containing = fail_prompts_containing or None

    # ----- protocol --------------------------------------------------------------------

    def negotiate(self, request: VideoRequest) -> NegotiatedRequest:
        return negotiate(
            request,
            self.limits,
            provider=self.name,
            price_per_second=bytecompute_price_per_second,
        )

    async def submit(self, request: NegotiatedRequest) -> ProviderJob:
        await asyncio.to_thread(self._prune_expired)
        job_id = uuid.uuid4().hex
        job_dir = self._job_dir(job_id)
        images = await asyncio.to_thread(self._receive_images, request, job_dir)
        data: dict[str, Any] = {
            "prompt": request.prompt,
            "model": request.model,
            "width": request.width,
            "height": request.height,
            "fps": request.fps,
            "duration": request.duration,
            "audio": request.audio,
            "seed": request.seed,
            "images": images,
            "submitted_at": self.clock().isoformat(),
            "delay_seconds": self.delay_seconds,
        }
        return ProviderJob(provider=self.name, job_id=job_id, cost_usd=request.cost_usd, data=data)

    async def status(self, job: ProviderJob) -> JobStatus:
        elapsed, delay = self._elapsed(job)
        if elapsed > JOB_EXPIRY.total_seconds() + delay:
            raise JobNotFoundError(f"simulator job {job.job_id} has expired")
        # Like a remote provider, a job's files stay until it expires (so a download can be
        # repeated after a crash); a missing directory means cancelled or unknown.
        if not self._job_dir(job.job_id).is_dir():
            raise JobNotFoundError(f"simulator job {job.job_id} is unknown or was cancelled")
        if elapsed < delay:
            eta = delay - elapsed
            if elapsed < QUEUED_SHARE * delay:
                return JobStatus(state=JobState.QUEUED, progress=0.0, eta_seconds=eta)
            running = (elapsed - QUEUED_SHARE * delay) / ((1 - QUEUED_SHARE) * delay)
            return JobStatus(
                state=JobState.RUNNING, progress=min(0.99, max(0.0, running)), eta_seconds=eta
            )
        reason = self._failure(job)
        if reason is not None:
            return JobStatus(state=JobState.FAILED, failure_reason=reason)
        return JobStatus(state=JobState.COMPLETED, progress=1.0, eta_seconds=0.0)

    async def download(self, job: ProviderJob, dest: Path) -> None:
        state = await self.status(job)
        if state.state is JobState.FAILED:
            raise JobFailedError(state.failure_reason or "the simulated job failed")
        if state.state is not JobState.COMPLETED:
            raise NotReadyError(f"simulator job {job.job_id} is still {state.state.value}")
        data = job.data
        images = {name: Path(path) for name, path in dict(data.get("images") or {}).items()}
        missing = [name for name, path in images.items() if not path.is_file()]
        if missing:
            raise JobNotFoundError(
                f"simulator job {job.job_id} no longer has its input images ({', '.join(missing)})"
            )
        await asyncio.to_thread(
            media.render_clip,
            dest,
            prompt=str(data["prompt"]),
            width=int(data["width"]),
            height=int(data["height"]),
            fps=int(data["fps"]),
            duration=int(data["duration"]),
            audio=bool(data["audio"]),
            seed=None if data.get("seed") is None else int(data["seed"]),
            image=images.get("image"),
            first_frame=images.get("first_frame"),
            last_frame=images.get("last_frame"),
        )

    async def check(self) -> CheckResult:
        try:
            await asyncio.to_thread(self.work_dir.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            return CheckResult(
                provider=self.name,
                ok=False,
                detail=f"work directory is not writable ({type(exc).__name__})",
            )
        return CheckResult(
            provider=self.name,
            ok=True,
            detail=f"offline simulator ready (clips take about {self.delay_seconds:g} s)",
        )

    async def cancel(self, job: ProviderJob) -> bool:
        await asyncio.to_thread(shutil.rmtree, self._job_dir(job.job_id), True)
        return True

    async def aclose(self) -> None:
        return None

    # ----- helpers ---------------------------------------------------------------------

    def _job_dir(self, job_id: str) -> Path:
        if not job_id.isalnum():  # job ids are uuid4 hex; never let one escape work_dir
            raise JobNotFoundError("simulator job id is not valid")
        return self.work_dir / job_id

    def _prune_expired(self) -> None:
        """Remove job directories older than the provider's expiry."""
        if not self.work_dir.is_dir():
            return
        cutoff = self.clock().timestamp() - JOB_EXPIRY.total_seconds()
        for job_dir in self.work_dir.iterdir():
            try:
                if job_dir.is_dir() and job_dir.stat().st_mtime < cutoff:
                    shutil.rmtree(job_dir, ignore_errors=True)
            except OSError:
                continue

    def _receive_images(self, request: NegotiatedRequest, job_dir: Path) -> dict[str, str]:
        job_dir.mkdir(parents=True, exist_ok=False)
        received: dict[str, str] = {}
        for name in ("image", "first_frame", "last_frame"):
            img = getattr(request, name)
            if img is None:
                continue
            target = job_dir / f"{name}.{img.extension}"
            try:
                shutil.copyfile(img.path, target)
            except OSError:
                shutil.rmtree(job_dir, ignore_errors=True)
                raise InvalidRequestError(
                    f"the `{name}` image is no longer available; attach it again"
                ) from None
            received[name] = str(target)
        return received

    def _elapsed(self, job: ProviderJob) -> tuple[float, float]:
        try:
            submitted = datetime.fromisoformat(str(job.data["submitted_at"]))
            delay = float(job.data.get("delay_seconds", self.delay_seconds))
        except (KeyError, ValueError) as exc:
            raise JobNotFoundError(f"simulator job {job.job_id} has no usable state") from exc
        if submitted.tzinfo is None:
            raise JobNotFoundError(f"simulator job {job.job_id} has no usable state")
        return (self.clock() - submitted).total_seconds(), delay

    def _failure(self, job: ProviderJob) -> str | None:
        needle = self.fail_prompts_containing
        if needle and needle.lower() in str(job.data.get("prompt", "")).lower():
            return f"the simulator was told to fail prompts containing {needle!r}"
        return None
