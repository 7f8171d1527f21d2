"""The provider contract: request/result models, limits, typed errors, the protocol.

Flow: a cog or the CLI builds a `VideoRequest` (what the member asked for), the chosen
provider's `negotiate()` turns it into a `NegotiatedRequest` (what will really be made,
with every change listed as an `Adjustment` and the cost), the tracker calls `submit()`
with it, then `status()` until done, then `download()`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_PROMPT_CHARS = 5000


class Mode(StrEnum):
    """What the picture starts from (the jobs table's `mode`)."""

    TEXT = "text-to-video"
    IMAGE = "image-to-video"
    FRAMES = "frame-to-video"


class Operation(StrEnum):
    """What the provider is asked to do: make a clip, make one to a soundtrack, or edit a
    delivered clip (kept in the request's JSON; `Mode` stays the picture's starting point)."""

    GENERATE = "generate"
    AUDIO = "audio-to-video"
    EXTEND = "extend"
    RETAKE = "retake"


EDIT_OPERATIONS = (Operation.EXTEND, Operation.RETAKE)


class InputImage(BaseModel):
    """An input image already downloaded and checked (see bot/media/images.py)."""

    model_config = ConfigDict(frozen=True)

    path: Path
    mime: str  # image/png, image/jpeg or image/webp
    width: int
    height: int
    sha256: str
    filename: str = "image.png"

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(self.mime, "png")

    @classmethod
    def sha256_of(cls, path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 16), b""):
                digest.update(chunk)
        return digest.hexdigest()


class InputAudio(BaseModel):
    """A soundtrack already downloaded and decoded (see bot/media/audio.py)."""

    model_config = ConfigDict(frozen=True)

    path: Path
    mime: str
    duration_s: float  # measured by decoding every sample
    sha256: str
    filename: str = "soundtrack.mp3"


class InputVideo(BaseModel):
    """A delivered clip to edit, downloaded and probed (PyAV)."""

    model_config = ConfigDict(frozen=True)

    path: Path
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    sha256: str
    filename: str = "source.mp4"
    mime: str = "video/mp4"


class EditSpec(BaseModel):
    """Extend or retake a delivered clip (`source`, made by job `source_job_id`).

    extend: `seconds` new seconds at the `where` end; retake: redo `seconds` from `start`
    (`redo`: video, audio or both)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["extend", "retake"]
    source: InputVideo
    source_job_id: int | None = None
    source_message_id: int | None = None  # the clip's message: the result replies to it
    seconds: float = Field(gt=0, le=60)
    start: float = Field(default=0.0, ge=0)
    where: Literal["end", "start"] = "end"
    redo: Literal["video", "audio", "both"] = "both"


class VideoRequest(BaseModel):
    """What the member asked for. Optional fields mean "provider default"."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    provider: str
    image: InputImage | None = None
    first_frame: InputImage | None = None
    last_frame: InputImage | None = None
    duration: int | None = Field(default=None, ge=1, le=60)
    resolution: str | None = None  # "WIDTHxHEIGHT"
    aspect_ratio: str | None = None  # "16:9", ...
    fps: int | None = Field(default=None, ge=1, le=120)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    audio: bool = True
    soundtrack: InputAudio | None = None
    edit: EditSpec | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _trim(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("resolution", mode="before")
    @classmethod
    def _resolution(cls, value: object) -> object:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            parsed = parse_resolution(value)
            if parsed is None:
                raise ValueError("must look like 1280x720 (WIDTHxHEIGHT)")
            return f"{parsed[0]}x{parsed[1]}"
        return value

    @model_validator(mode="after")
    def _mode_inputs(self) -> VideoRequest:
        if self.image is not None and (self.first_frame or self.last_frame):
            raise ValueError(
                "use either `image` (image-to-video) or `first_frame`/`last_frame` "
                "(frame-to-video), not both"
            )
        if self.last_frame is not None and self.first_frame is None:
            raise ValueError("`last_frame` needs a `first_frame` too")
        if self.soundtrack is not None and self.first_frame is not None:
            raise ValueError(
                "a `soundtrack` clip starts from one picture: attach it as `image`, "
                "not `first_frame`/`last_frame`"
            )
        pictures = self.image or self.first_frame or self.last_frame
        if self.edit is not None and (pictures or self.soundtrack):
            raise ValueError("an edit of a clip takes no images or soundtrack")
        return self

    @property
    def operation(self) -> Operation:
        if self.edit is not None:
            return Operation(self.edit.kind)
        if self.soundtrack is not None:
            return Operation.AUDIO
        return Operation.GENERATE

    @property
    def mode(self) -> Mode:
        if self.image is not None:
            return Mode.IMAGE
        if self.first_frame is not None:
            return Mode.FRAMES
        return Mode.TEXT

    @property
    def size(self) -> tuple[int, int] | None:
        return parse_resolution(self.resolution) if self.resolution else None


def parse_resolution(text: str) -> tuple[int, int] | None:
    parts = text.lower().replace("×", "x").replace(" ", "").split("x")
    # isdecimal(), not isdigit(): int() cannot read "²"; the length cap keeps int() away
    # from its 4,300-digit limit.
    if len(parts) != 2 or not all(p.isdecimal() and len(p) <= 10 for p in parts):
        return None
    width, height = int(parts[0]), int(parts[1])
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        return None
    return width, height


class Adjustment(BaseModel):
    """One change between what was asked and what will be made, in plain words."""

    field: str  # "fps", "duration", "resolution", "aspect_ratio", "seed", "audio", ...
    requested: Any = None
    actual: Any = None
    reason: str = ""
    source: str = "negotiation"  # "negotiation" (before submit) or "provider" (reported after)

    def describe(self) -> str:
        text = f"{self.field} {self.requested} → {self.actual}"
        return f"{text} ({self.reason})" if self.reason else text


class NegotiatedRequest(BaseModel):
    """Exactly what will be submitted. Every value is final and provider-valid."""

    prompt: str
    provider: str
    model: str
    mode: Mode
    duration: int
    width: int
    height: int
    fps: int
    aspect_ratio: str | None = None
    seed: int | None = None
    audio: bool = True
    image: InputImage | None = None
    first_frame: InputImage | None = None
    last_frame: InputImage | None = None
    operation: Operation = Operation.GENERATE
    soundtrack: InputAudio | None = None
    edit: EditSpec | None = None
    adjustments: list[Adjustment] = Field(default_factory=list)
    cost_usd: float = 0.0
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def params(self) -> dict[str, Any]:
        """The settings that go into the job row (no image paths, no prompt)."""
        return self.model_dump(
            mode="json",
            exclude={
                "prompt",
                "image",
                "first_frame",
                "last_frame",
                "soundtrack",
                "edit",
                "adjustments",
            },
        )


class ProviderJob(BaseModel):
    """A job the provider accepted. `data` is whatever the provider needs to resume it."""

    provider: str
    job_id: str
    adjustments: list[Adjustment] = Field(default_factory=list)
    cost_usd: float | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class JobStatus(BaseModel):
    state: JobState
    progress: float | None = None  # 0..1 when known
    eta_seconds: float | None = None
    failure_reason: str | None = None
    result_url: str | None = None
    adjustments: list[Adjustment] = Field(default_factory=list)
    # The provider marked the finished clip as not safe for work (Leonardo's per-generation
    # `nsfw` flag): the output safety check treats it as a score of 1 (see bot/safety).
    nsfw: bool = False


class CheckResult(BaseModel):
    provider: str
    ok: bool
    detail: str  # never contains a secret


@dataclass(frozen=True)
class ProviderLimits:
    """What a provider accepts. `negotiate()` maps any VideoRequest into these."""

    models: tuple[str, ...]
    default_model: str
    durations: tuple[int, ...]  # allowed durations in seconds (sorted)
    default_duration: int
    fps_options: tuple[int, ...]
    default_fps: int
    aspect_ratios: tuple[str, ...]
    default_aspect_ratio: str
    # Either an explicit list of (width, height) pairs, or a rule (min edge / max box).
    sizes: tuple[tuple[int, int], ...] = ()
    min_edge: int = 0
    max_width: int = 0
    max_height: int = 0
    # Work budget in pixel-frames (width*height*fps*duration); 0 means unbounded.
    max_pixel_frames: int = 0
    supports_image: bool = True
    supports_frames: bool = True
    supports_seed: bool = True
    supports_audio_toggle: bool = True
    # Audio-to-video (`/video soundtrack`) and edits of a delivered clip it can make.
    supports_soundtrack: bool = False
    edits: tuple[Operation, ...] = ()
    max_prompt_chars: int = MAX_PROMPT_CHARS
    job_expiry: timedelta | None = None
    requests_per_minute: int = 600
    max_concurrency: int = 4
    durations_by_model: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Rule-based sizes: computed edges are multiples of this; `named_sizes` are documented
    # sizes accepted as they are even off that grid (e.g. 1920x1080 on a 32-px grid).
    size_multiple: int = 1
    named_sizes: tuple[tuple[int, int], ...] = ()
    # The size used for an aspect preset when no resolution is given ("16:9" -> (1280, 720)).
    aspect_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Cap for the create/submit endpoint alone (0: only `requests_per_minute` applies).
    submits_per_minute: int = 0


# ----- errors --------------------------------------------------------------------------


class ProviderError(Exception):
    """Base of every provider error. `str()` is safe to log (never holds a secret)."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class InvalidRequestError(ProviderError):
    """The provider refused the request; `message` can be shown to the member."""


MSG_CONTENT_REFUSED = (
    "the video service's safety filter refused this prompt or image; change the prompt "
    "(or the image) and try again"
)


class ContentRefusedError(InvalidRequestError):
    """The provider's safety filter refused the prompt or an input image (the LTX API's 422
    `content_filtered_error`). Nothing is made or billed; the member is told to change the
    request (`message` defaults to `MSG_CONTENT_REFUSED`) and the mod-log gets an entry."""

    def __init__(self, message: str = MSG_CONTENT_REFUSED, **kw: Any) -> None:
        super().__init__(message, **kw)


class AuthenticationError(ProviderError):
    """Bad or missing credentials/credit. Admin-facing only; never shown to members."""


class InsufficientCreditsError(AuthenticationError):
    """The account is out of credit (HTTP 402): nothing was made or billed, the key is good,
    and the provider takes no new work until an admin tops it up. Ends the job with a refund
    like an AuthenticationError; provider health tells the two apart (`bot.jobs.health`)."""


class RateLimitedError(ProviderError):
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TransientError(ProviderError):
    """Network trouble, 5xx, malformed body: retry with backoff."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class OutcomeUnknownError(TransientError):
    """A submit was sent but no answer came back: the provider may have accepted it.

    Retrying can create a second (billed) job; none of the providers has idempotency keys.
    """


class JobFailedError(ProviderError):
    """The provider says the job failed; `message` is the reason."""


class JobNotFoundError(ProviderError):
    """The job is unknown or expired at the provider."""


class NotReadyError(ProviderError):
    """Download asked before the job finished (409)."""

    retryable = True


# ----- protocol ------------------------------------------------------------------------


@runtime_checkable
class Provider(Protocol):
    name: str
    limits: ProviderLimits

    def negotiate(self, request: VideoRequest) -> NegotiatedRequest:
        """Normalise a request into one this provider accepts (raises InvalidRequestError)."""
        ...

    async def submit(self, request: NegotiatedRequest) -> ProviderJob: ...

    async def status(self, job: ProviderJob) -> JobStatus: ...

    async def download(self, job: ProviderJob, dest: Path) -> None:
        """Stream the finished clip to `dest` (never held whole in memory)."""
        ...

    async def check(self) -> CheckResult: ...

    async def cancel(self, job: ProviderJob) -> bool:
        """Cancel at the provider if it can; False when the provider has no cancel."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SubmissionLookup(Protocol):
    """Optional provider capability: find a job this bot submitted whose answer was lost.

    Implement it only where the provider's API can list or look up recent jobs (none of
    ByteCompute, Leonardo v2 and the LTX API documents a way, see /work/shared/reference),
    so that an `OutcomeUnknownError` submission is adopted instead of submitted twice.
    """

    async def find_submission(
        self, request: NegotiatedRequest, since: datetime
    ) -> ProviderJob | None:
        """The job made for `request` at or after `since`, or None when there is none.

        Raises ProviderError when the provider cannot tell right now."""
        ...
