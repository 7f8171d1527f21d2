"""ByteCompute `Lightricks/LTX-2.3`: multipart submit, POST-polled jobs, streamed download.

Wire format (see shared/reference/PROVIDERS.md, section A): `POST /v1/generate` as
multipart/form-data, `POST /v1/jobs/{id}` for status, `POST /v1/jobs/{id}/download` for the
clip, `Authorization: Bearer <key>`. The response bodies are not published, so they are read
tolerantly: the job id under `id` / `job_id` / `jobId`, status words from the usual families,
`adjustments` as null, a list or an object, and the download as raw bytes, a redirect or JSON
holding a URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bot.negotiation import negotiate
from bot.pricing import bytecompute_price_per_second
from bot.providers.base import (
    Adjustment,
    AuthenticationError,
    CheckResult,
    JobNotFoundError,
    JobState,
    JobStatus,
    NegotiatedRequest,
    ProviderError,
    ProviderJob,
    ProviderLimits,
    TransientError,
    VideoRequest,
)
from bot.providers.http import (
    HostedApi,
    TolerantModel,
    find_url,
    finite_number,
    json_object,
    parse_answer,
    path_segment,
)

log = logging.getLogger(__name__)

LABEL = "ByteCompute"
MODEL = "Lightricks/LTX-2.3"

# Our model of ByteCompute's undocumented GPU limit, in pixel-frames (width × height × fps ×
# seconds). The page says the server lowers fps 50→25, then duration, then resolution when a
# request is "not feasible", without saying where the line is. The largest documented clip at
# the standard frame rate — 1920×1080, 25 fps, 10 s — must fit (the page offers exactly those
# maxima), so the budget is that clip's work: 518,400,000. Doubling the frame rate at that
# size and length (1,036,800,000) does not fit, so 50 fps survives only for smaller or shorter
# clips (e.g. 1280×720 at 50 fps for 10 s, or 1080p at 50 fps for 5 s).
MAX_PIXEL_FRAMES = 1920 * 1080 * 25 * 10

ASPECT_SIZES: dict[str, tuple[int, int]] = {
    # The largest SD-priced (≤ 921,600 px) size of each preset, on the 32-px grid or standard.
    "16:9": (1280, 720),
    "4:3": (1024, 768),
    "1:1": (960, 960),
    "3:4": (768, 1024),
    "4:5": (768, 960),
    "9:16": (720, 1280),
}

LIMITS = ProviderLimits(
    models=(MODEL,),
    default_model=MODEL,
    durations=tuple(range(4, 11)),
    default_duration=5,
    fps_options=(25, 50),
    default_fps=25,
    aspect_ratios=tuple(ASPECT_SIZES),
    default_aspect_ratio="16:9",
    min_edge=512,
    max_width=1920,
    max_height=1080,
    max_pixel_frames=MAX_PIXEL_FRAMES,
    # LTX works on a 32-px latent grid; sizes we compute are multiples of 32. The provider's
    # standard sizes (1080p, 720p) are sent as they are: the server crops/pads those itself.
    size_multiple=32,
    named_sizes=((1920, 1080), (1080, 1920), (1280, 720), (720, 1280)),
    aspect_sizes=ASPECT_SIZES,
    supports_image=True,
    supports_frames=True,
    supports_seed=False,  # no seed field is documented
    supports_audio_toggle=False,  # no audio field: LTX-2.3 always makes sound
    job_expiry=timedelta(hours=24),
    # No per-key limits are published ("queued, one per GPU"): conservative guesses.
    requests_per_minute=120,
    max_concurrency=4,
)

_STATES: dict[str, JobState] = {}
for _state, _words in {
    JobState.QUEUED: "queued pending waiting submitted created accepted scheduled in_queue",
    JobState.RUNNING: "processing running in_progress started generating working active",
    JobState.COMPLETED: "completed complete succeeded success successful done finished ready",
    JobState.FAILED: "failed failure error errored rejected",
    JobState.CANCELLED: "cancelled canceled aborted",
    JobState.EXPIRED: "expired",
}.items():
    for _word in _words.split():
        _STATES[_word] = _state


def parse_state(word: Any) -> JobState:
    """Map a provider status word to a JobState (unknown words mean "still running")."""
    key = str(word or "").strip().lower().replace("-", "_").replace(" ", "_")
    state = _STATES.get(key)
    if state is None:
        log.debug("ByteCompute: unknown status word %r, treated as running", word)
        return JobState.RUNNING
    return state


def parse_adjustments(value: Any) -> list[Adjustment]:
    """Provider-reported adjustments in any shape: null, a list, or an object."""
    if value is None or value == [] or value == {}:
        return []
    if isinstance(value, list):
        out: list[Adjustment] = []
        for item in value:
            out.extend(parse_adjustments(item) if isinstance(item, list) else [_one(item)])
        return out
    if isinstance(value, Mapping):
        if any(k in value for k in _FIELD_KEYS):
            return [_one(value)]
        out = []
        for key, item in value.items():
            if isinstance(item, Mapping):
                out.append(_one({"field": key, **item}))
            else:
                out.append(Adjustment(field=str(key), actual=item, source="provider"))
        return out
    return [_one(value)]


_FIELD_KEYS = ("field", "parameter", "param", "name", "key")
_FROM_KEYS = ("requested", "from", "original", "old", "before", "requested_value")
_TO_KEYS = ("actual", "to", "adjusted", "new", "after", "value", "applied")
_REASON_KEYS = ("reason", "message", "description", "detail", "note")


def _pick(data: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in data:
            return data[key]
    return None


def _one(item: Any) -> Adjustment:
    if isinstance(item, Mapping):
        name = _pick(item, _FIELD_KEYS)
        reason = _pick(item, _REASON_KEYS)
        return Adjustment(
            field=str(name) if name is not None else "other",
            requested=_pick(item, _FROM_KEYS),
            actual=_pick(item, _TO_KEYS),
            reason=str(reason) if reason is not None else "",
            source="provider",
        )
    return Adjustment(field="other", reason=str(item), source="provider")


class GenerateForm(BaseModel):
    """The text fields of `POST /v1/generate` (numbers go as strings in multipart)."""

    model: str = MODEL
    prompt: str
    duration: int
    resolution: str  # WIDTHxHEIGHT; takes priority over aspect_ratio, so that is not sent
    fps: int

    def fields(self) -> list[tuple[str, str]]:
        return [(name, str(value)) for name, value in self.model_dump().items()]


class JobAnswer(TolerantModel):
    """Submit and status answers (unknown shape: every field optional)."""

    id: Any = None
    job_id: Any = None
    jobId: Any = None  # the provider's spelling
    status: Any = None
    state: Any = None
    adjustments: Any = None
    progress: Any = None
    eta: Any = None
    eta_seconds: Any = None
    error: Any = None
    message: Any = None
    reason: Any = None
    failure_reason: Any = None

    def job_key(self) -> str | None:
        for value in (self.id, self.job_id, self.jobId):
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return str(value)
        job = (self.model_extra or {}).get("job")
        if isinstance(job, Mapping):
            for key in ("id", "job_id", "jobId"):
                if job.get(key):
                    return str(job[key])
        return None

    def state_word(self) -> Any:
        return self.status if self.status is not None else self.state

    def progress_fraction(self) -> float | None:
        value = _number(self.progress)
        if value is None:
            return None
        if value > 1:
            value /= 100
        return min(max(value, 0.0), 1.0)

    def eta_value(self) -> float | None:
        return _number(self.eta_seconds if self.eta_seconds is not None else self.eta)

    def failure(self) -> str | None:
        for value in (self.error, self.failure_reason, self.reason, self.message):
            if isinstance(value, Mapping):
                text = value.get("message") or value.get("detail") or value.get("type")
                if text:
                    return str(text)
            elif isinstance(value, str) and value.strip():
                return value.strip()
        return None


def _number(value: Any) -> float | None:
    return finite_number(value, percent=True)


class ByteComputeProvider(HostedApi):
    """ByteCompute's hosted LTX-2.3 (`name = "bytecompute"`)."""

    name = "bytecompute"
    label = LABEL
    versions = ("/v1",)
    limits = LIMITS

    def negotiate(self, request: VideoRequest) -> NegotiatedRequest:
        return negotiate(
            request, self.limits, provider=self.name, price_per_second=bytecompute_price_per_second
        )

    # ----- submit ---------------------------------------------------------------------

    async def build_form(self, request: NegotiatedRequest) -> list[tuple[str, Any]]:
        """The multipart parts: documented text fields, then image files."""
        form = GenerateForm(
            model=request.model or MODEL,
            prompt=request.prompt,
            duration=request.duration,
            resolution=f"{request.width}x{request.height}",
            fps=request.fps,
        )
        parts: list[tuple[str, Any]] = [(name, (None, value)) for name, value in form.fields()]
        for name in ("image", "first_frame", "last_frame"):
            image = getattr(request, name)
            if image is not None:
                content = await asyncio.to_thread(image.path.read_bytes)
                filename = image.filename or f"{name}.{image.extension}"
                parts.append((name, (filename, content, image.mime)))
        return parts

    async def submit(self, request: NegotiatedRequest) -> ProviderJob:
        parts = await self.build_form(request)
        response = await self._call("POST", "/v1/generate", files=parts, submit=True)
        answer = parse_answer(JobAnswer, json_object(response, label=LABEL), label=LABEL)
        job_id = answer.job_key()
        if job_id is None:
            raise TransientError(f"{LABEL} accepted the job but sent no job id")
        return ProviderJob(
            provider=self.name,
            job_id=job_id,
            adjustments=parse_adjustments(answer.adjustments),
            cost_usd=None,
            data={
                "model": request.model,
                "submitted_at": datetime.now(UTC).isoformat(),
                "status": str(answer.state_word() or ""),
            },
        )

    # ----- status / download ----------------------------------------------------------

    async def status(self, job: ProviderJob) -> JobStatus:
        response = await self._call("POST", f"/v1/jobs/{path_segment(job.job_id)}")
        answer = parse_answer(JobAnswer, json_object(response, label=LABEL), label=LABEL)
        state = parse_state(answer.state_word())
        failure = answer.failure() if state in (JobState.FAILED, JobState.CANCELLED) else None
        if state is JobState.FAILED and not failure:
            failure = f"{LABEL} reported the job as failed"
        extra = answer.model_extra or {}
        url = find_url({k: extra[k] for k in extra if "url" in k.lower() or k == "result"})
        return JobStatus(
            state=state,
            progress=1.0 if state is JobState.COMPLETED else answer.progress_fraction(),
            eta_seconds=answer.eta_value(),
            failure_reason=failure,
            result_url=url if state is JobState.COMPLETED else None,
            adjustments=parse_adjustments(answer.adjustments),
        )

    async def download(self, job: ProviderJob, dest: Path) -> None:
        await self._fetch(
            self._url(f"/v1/jobs/{path_segment(job.job_id)}/download"),
            dest,
            method="POST",
            headers={"Authorization": f"Bearer {self._key}"},  # its own host only
            follow_json_url=True,
        )

    # ----- account --------------------------------------------------------------------

    async def check(self) -> CheckResult:
        """No account endpoint is documented: ask for a job that cannot exist.

        404 means the key was accepted (and the job unknown); 401/403 mean it was not.
        """
        try:
            await self._call("POST", "/v1/jobs/00000000-0000-0000-0000-000000000000")
        except JobNotFoundError:
            return CheckResult(provider=self.name, ok=True, detail=f"key accepted by {self._base}")
        except AuthenticationError as exc:
            return CheckResult(provider=self.name, ok=False, detail=exc.message)
        except ProviderError as exc:
            return CheckResult(provider=self.name, ok=False, detail=exc.message)
        return CheckResult(provider=self.name, ok=True, detail=f"key accepted by {self._base}")

    async def cancel(self, job: ProviderJob) -> bool:
        return False  # ByteCompute has no cancel endpoint
