"""TrackerSettings: every knob of the job tracker, and how they follow the bot's Settings."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bot.config import Settings, default_instance_name
from bot.providers.base import Provider


class TrackerSettings(BaseModel):
    """Knobs of the tracker. Per-provider dicts are keyed by provider name."""

    # Request budget: default `limits.requests_per_minute / 60` (and `submits_per_minute`).
    requests_per_second: dict[str, float] = Field(default_factory=dict)
    submits_per_second: dict[str, float] = Field(default_factory=dict)
    # Bucket size = rate * this (at least 1 call): small, so no 1-s window sees much more
    # than the rate.
    burst_seconds: float = Field(default=0.05, gt=0)
    # Jobs in flight at a provider (submitted, not finished); default `limits.max_concurrency`.
    max_concurrency: dict[str, int] = Field(default_factory=dict)
    max_parallel_requests: int = Field(default=16, ge=1)  # HTTP calls in flight per provider
    max_parallel_deliveries: int = Field(default=4, ge=1)
    # When the budget is short, due polls go first, but waiting submissions still get at
    # least this share of the calls.
    min_submit_share: float = Field(default=0.2, gt=0, le=1)
    # Submissions are paced at budget / (provider calls per job, learned; this to start),
    # so a burst of jobs does not take more of the budget than their polls will leave.
    expected_calls_per_job: float = Field(default=4.0, ge=1)
    shutdown_grace_seconds: float = Field(default=5.0, ge=0)
    # In all, how long a submission or an upload in flight may finish at shutdown (None:
    # `shutdown_grace_seconds`): the provider bills a submission it accepted even when its
    # answer is lost. The bot sets it from SHUTDOWN_GRACE_SECONDS (20 s); keep the
    # container's stop timeout above it (`docker stop -t 30`, compose
    # `stop_grace_period: 30s`; Docker's default is 10 s).
    inflight_grace_seconds: float | None = Field(default=None, ge=0)
    sweep_interval_seconds: float = Field(default=5.0, gt=0)  # expiry + queue positions
    # Polling plan.
    min_poll_interval_seconds: float = Field(default=1.0, gt=0)
    max_poll_interval_seconds: float = Field(default=60.0, gt=0)
    first_poll_lead: float = 0.0  # first poll at expected + lead * spread
    window_gap_factor: float = Field(default=1.0, gt=0)  # poll gap near expected = spread * f
    overdue_backoff: float = Field(default=0.2, ge=0)  # long overdue: gap >= this * overdue
    prior_base_seconds: float = Field(default=30.0, ge=0)
    prior_seconds_per_video_second: float = Field(default=6.0, ge=0)
    prior_spread_fraction: float = Field(default=0.15, gt=0)
    cold_low_fraction: float = Field(default=0.25, gt=0)  # early quantile without history
    # Where first polls land, tracked per class from their outcomes (done yet or not):
    # probes (providers with progress/ETA) aim at this early quantile of the provider time,
    # plain first polls (no progress) at `first_poll_quantile`. `quantile_step` is the
    # multiplicative learning rate.
    probe_quantile: float = Field(default=0.05, gt=0, lt=1)
    first_poll_quantile: float = Field(default=0.5, gt=0, lt=1)
    quantile_step: float = Field(default=0.2, gt=0, le=1)
    # A provider ETA (or one derived from progress) is trusted: poll at eta + margin, where
    # margin = eta_margin_seconds + eta_margin_fraction * eta.
    eta_margin_seconds: float = Field(default=0.2, ge=0)
    eta_margin_fraction: float = Field(default=0.005, ge=0)
    max_eta_wait_seconds: float = Field(default=180.0, gt=0)  # longest wait an ETA may ask
    history_size: int = Field(default=50, ge=1)
    # Early polls (`idle`): while a provider's budget has headroom, this share of the calls
    # per second the planned work leaves unused polls the jobs most likely done before their
    # planned time (0: none, only the plan; env IDLE_POLL_SHARE); one job at most every
    # `idle_poll_gap_seconds` (or a fifth of its elapsed time, if longer): about the
    # detection delay they aim at.
    idle_poll_share: float = Field(default=0.5, ge=0, le=1)
    idle_poll_gap_seconds: float = Field(default=1.0, gt=0)
    # Errors.
    error_backoff_base_seconds: float = Field(default=1.0, gt=0)
    error_backoff_max_seconds: float = Field(default=60.0, gt=0)
    provider_pause_max_seconds: float = Field(default=30.0, gt=0)
    # Provider health (`bot.jobs.health`): a provider that gave no answer this long (a call
    # in flight, or only failed calls) counts as failing; PROVIDER_NO_ANSWER_SECONDS.
    provider_no_answer_seconds: float = Field(default=120.0, gt=0)
    download_attempts: int = Field(default=6, ge=1)
    delivery_attempts: int = Field(default=5, ge=1)
    # A Discord outage (5xx, unreachable) does not use up `delivery_attempts`: the clip is
    # retried with backoff for this long before the job fails.
    delivery_outage_seconds: float = Field(default=3600.0, ge=0)
    max_internal_errors: int = Field(default=5, ge=1)
    # Age limit for providers that state no `job_expiry`.
    max_job_age_seconds: float = Field(default=86_400.0, gt=0)
    # Several processes (`leases`): this one's name (INSTANCE_NAME), its shards (for
    # `check`), and how long it holds a job without a heartbeat (LEASE_SECONDS).
    instance_name: str = Field(default_factory=default_instance_name)
    instance_shards: str | None = None
    lease_seconds: float = Field(default=20.0, gt=0)
    # How often the processes re-split each provider's budget between them (`shares`).
    share_settle_seconds: float = Field(default=1.0, gt=0)


def tracker_settings_from(settings: Settings, providers: dict[str, Provider]) -> TrackerSettings:
    """Tracker knobs from Settings; providers keep their published limits unless overridden."""
    rate = settings.provider_requests_per_second
    return TrackerSettings(
        requests_per_second={name: rate for name in providers} if rate else {},
        idle_poll_share=settings.idle_poll_share,
        shutdown_grace_seconds=min(5.0, settings.shutdown_grace_seconds),
        inflight_grace_seconds=settings.shutdown_grace_seconds,
        provider_no_answer_seconds=settings.provider_no_answer_seconds,
        instance_name=settings.instance,
        instance_shards=settings.shard_ids,
        lease_seconds=settings.lease_seconds,
    )
