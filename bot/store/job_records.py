"""The job records the store reads and writes: `Status` and its allowed moves, `JobRecord`
(a row of `jobs`), `JobEvent`, `SourceMessage`, and the store's job errors. The SQL is in
`bot/store/jobs.py`, which re-exports these names."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from bot.providers.base import Adjustment, Mode, NegotiatedRequest, ProviderJob


class Status(StrEnum):
    PENDING = "pending"  # row written, not yet accepted by the provider
    SUBMITTED = "submitted"  # provider accepted it (queued there)
    RUNNING = "running"  # provider reports it running
    DOWNLOADING = "downloading"  # provider finished; fetching the clip
    DELIVERING = "delivering"  # clip on disk; posting it
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# In the order of the partial index `jobs_active` (migrations/0001_initial.sql), so the SQL
# derived from it below reads exactly like the index and SQLite uses it.
TERMINAL_ORDER = (Status.DELIVERED, Status.FAILED, Status.CANCELLED, Status.EXPIRED)
TERMINAL_STATUSES: frozenset[Status] = frozenset(TERMINAL_ORDER)
ACTIVE_STATUSES: frozenset[Status] = frozenset(Status) - TERMINAL_STATUSES

# Allowed moves. Cancelling is possible until the clip is being posted; `delivering →
# downloading` re-fetches a clip whose file vanished before it could be posted.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.SUBMITTED, Status.FAILED, Status.CANCELLED, Status.EXPIRED}),
    Status.SUBMITTED: frozenset(
        {Status.RUNNING, Status.DOWNLOADING, Status.FAILED, Status.CANCELLED, Status.EXPIRED}
    ),
    Status.RUNNING: frozenset(
        {Status.DOWNLOADING, Status.FAILED, Status.CANCELLED, Status.EXPIRED}
    ),
    Status.DOWNLOADING: frozenset(
        {Status.DELIVERING, Status.FAILED, Status.CANCELLED, Status.EXPIRED}
    ),
    Status.DELIVERING: frozenset({Status.DELIVERED, Status.DOWNLOADING, Status.FAILED}),
    Status.DELIVERED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.EXPIRED: frozenset(),
}


class UnknownJobError(LookupError):
    """No job with that id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class InvalidTransitionError(ValueError):
    """A status change the state machine does not allow (e.g. out of a terminal state)."""

    def __init__(self, job_id: int, from_status: Status, to_status: Status) -> None:
        super().__init__(f"job {job_id}: {from_status} → {to_status} is not allowed")
        self.job_id = job_id
        self.from_status = from_status
        self.to_status = to_status


class SourceMessage(BaseModel):
    """The Discord message a job's input images came from (the Animate context menu)."""

    model_config = ConfigDict(frozen=True)

    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    author_kind: str = "member"  # member | bot | webhook


class JobRecord(BaseModel):
    """One parsed `jobs` row."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: int
    guild_id: int | None
    channel_id: int | None
    user_id: int
    provider: str
    model: str | None
    mode: Mode
    prompt: str
    status: Status
    params_json: str
    adjustments: list[Adjustment] = Field(default_factory=list)
    provider_job_id: str | None = None
    provider_data: dict[str, Any] = Field(default_factory=dict)
    seconds: float
    cost_usd: float
    progress: float | None = None
    failure_reason: str | None = None
    attempts: int = 0
    input_dir: Path | None = None
    interaction_message_id: int | None = None
    result_message_id: int | None = None
    result_channel_id: int | None = None
    delivery_key: str | None = None  # set before the first post; see assign_delivery_key
    source: SourceMessage | None = None  # Animate: the message the images came from
    provider_flagged: bool = False  # the provider marked the clip not safe for work
    origin: str = "discord"
    created_at: datetime
    submitted_at: datetime | None = None
    provider_done_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime

    _request: NegotiatedRequest | None = PrivateAttr(default=None)

    @property
    def request(self) -> NegotiatedRequest:
        """The negotiated request as written at admission (images point into `input_dir`)."""
        if self._request is None:
            self._request = NegotiatedRequest.model_validate_json(self.params_json)
        return self._request

    @property
    def provider_job(self) -> ProviderJob | None:
        """What the provider needs to poll/download/cancel this job (None before submission)."""
        if self.provider_job_id is None:
            return None
        return ProviderJob(
            provider=self.provider,
            job_id=self.provider_job_id,
            adjustments=[a for a in self.adjustments if a.source == "provider"],
            cost_usd=self.cost_usd,
            data=dict(self.provider_data),
        )

    @property
    def member(self) -> tuple[int | None, int]:
        """(guild_id, user_id): whose job this is, for fairness and limits."""
        return (self.guild_id, self.user_id)


class JobEvent(BaseModel):
    id: int
    job_id: int
    at: datetime
    from_status: Status | None
    to_status: Status
    reason: str | None
