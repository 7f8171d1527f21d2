"""The one request pipeline shared by `/video`, its "Again" and "Cancel" buttons and the CLI.

cog/CLI → `build_request` (VideoRequest, validated) → `prepare` (moderation + negotiation:
the member sees the final settings and cost before anything is spent) → `admit` (job row
and quota reservation in one transaction) → tracker. `cancel` stops a job through the
tracker (status change and refund in one transaction).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot import moderation, quota
from bot.db import Database, utcnow
from bot.jobs import failover, health, offerings
from bot.jobs.failover import NoProviderFound, Plan
from bot.jobs.files import JobFiles
from bot.jobs.health import ProviderHealth, Verdict
from bot.jobs.tracker import JobTracker
from bot.moderation import Change
from bot.providers.base import (
    InvalidRequestError,
    NegotiatedRequest,
    Operation,
    Provider,
    VideoRequest,
)
from bot.store import jobs as job_store
from bot.store.jobs import JobRecord, SourceMessage

log = logging.getLogger(__name__)

_FIELD_LABELS = {
    "prompt": "prompt",
    "duration": "duration",
    "resolution": "resolution",
    "fps": "fps",
    "seed": "seed",
    "provider": "provider",
}


class RequestRefused(Exception):
    """A request that will not be made; `message` is member-facing and says what to change."""

    def __init__(self, message: str, *, kind: str = "invalid_input") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind  # invalid_input | blocked_member | blocked_word | allowance | ...


class NoProviderAvailable(RequestRefused):
    """The asked provider is failing and no other can make the request (`found` says why)."""

    def __init__(self, found: NoProviderFound) -> None:
        super().__init__(found.message(), kind="provider_failing")
        self.found = found


@dataclass(frozen=True)
class Requester:
    """Who asked, and where (guild_id None for the CLI)."""

    user_id: int
    guild_id: int | None = None
    channel_id: int | None = None
    role_ids: Sequence[int] = field(default_factory=tuple)


@dataclass(frozen=True)
class Admitted:
    job_id: int
    request: NegotiatedRequest
    note: str | None = None  # member-facing: something went wrong but the job still runs


MSG_HANDOVER_REFUNDED = (
    "Something went wrong on my side while starting your video; it was cancelled and "
    "nothing was charged. Try again."
)
MSG_HANDOVER_RUNS = (
    "Something went wrong on my side while starting your video, but it is saved and will "
    "still be made (it may start late). You're charged only if it is delivered; "
    "Cancel refunds it."
)


def validation_message(exc: ValidationError) -> str:
    """Turn a pydantic error into one line a member can act on."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if isinstance(p, str)]
        name = _FIELD_LABELS.get(loc[0], loc[0]) if loc else ""
        msg = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        ctx = err.get("ctx") or {}
        kind = err.get("type")
        if kind == "string_too_long":
            msg = f"is too long (at most {ctx.get('max_length')} characters)"
        elif kind == "string_too_short":
            msg = "must not be empty"
        elif kind in ("greater_than_equal", "greater_than"):
            msg = f"must be at least {ctx.get('ge', ctx.get('gt'))}"
        elif kind in ("less_than_equal", "less_than"):
            msg = f"must be at most {ctx.get('le', ctx.get('lt'))}"
        elif kind in ("int_parsing", "int_type", "int_from_float"):
            msg = "must be a whole number"
        elif kind in ("bool_parsing", "bool_type"):
            msg = "must be yes or no"
        parts.append(f"`{name}` {msg}" if name else msg)
    return "; ".join(parts) or "the request is invalid"


class VideoService:
    def __init__(
        self,
        db: Database,
        providers: Mapping[str, Provider],
        tracker: JobTracker,
        *,
        data_dir: Path,
        default_provider: str,
        default_quota_seconds: int,
        max_active_per_member: int,
    ) -> None:
        self.db = db
        self.providers = providers
        self.tracker = tracker
        self.files = JobFiles(data_dir)
        self.default_provider = default_provider
        self.default_quota_seconds = default_quota_seconds
        self.max_active_per_member = max_active_per_member
        self._housekeeping: asyncio.Task[None] | None = None

    # ----- start and stop -------------------------------------------------------------

    async def start(self, *, prune_interval: float | None = None) -> None:
        """Before any command: sweep input folders orphaned by a crash (and expired or
        over-the-cap kept copies), then prune kept copies on a timer."""
        active = await job_store.list_active(self.db)
        dirs = [j.input_dir for j in active if j.input_dir is not None]
        await asyncio.to_thread(self.files.sweep, dirs)
        if self._housekeeping is None:
            args = () if prune_interval is None else (prune_interval,)
            self._housekeeping = asyncio.create_task(
                self.files.prune_every(*args), name="kept-inputs-prune"
            )

    async def stop(self) -> None:
        task, self._housekeeping = self._housekeeping, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ----- inputs ---------------------------------------------------------------------

    def new_input_dir(self) -> Path:
        return self.files.new_input_dir()

    def discard_inputs(self, path: Path | None) -> None:
        """Remove the inputs of a request that was not admitted."""
        self.files.discard_inputs(path)

    def build_request(
        self, *, prompt: str, provider: str | None = None, **options: Any
    ) -> VideoRequest:
        name = provider or self.default_provider
        if name not in self.providers:
            available = ", ".join(sorted(self.providers)) or "none"
            raise RequestRefused(
                f"Provider `{name}` is not available here (available: {available})."
            )
        clean = {k: v for k, v in options.items() if v is not None}
        try:
            return VideoRequest(prompt=prompt, provider=name, **clean)
        except ValidationError as exc:
            raise RequestRefused(validation_message(exc)) from None

    # ----- checks and negotiation ------------------------------------------------------

    async def prepare(self, who: Requester, request: VideoRequest) -> NegotiatedRequest:
        """Moderation checks, then negotiation. Refusals are audited."""
        await self._moderate(who, request)
        provider = self.providers[request.provider]
        try:
            return provider.negotiate(request)
        except InvalidRequestError as exc:
            await self._refusal(who, "invalid_input", exc.message, request.prompt)
            raise RequestRefused(exc.message) from None

    async def plan(self, who: Requester, request: VideoRequest) -> Plan:
        """`prepare` with failover (`bot.jobs.failover`): when the asked provider is failing,
        the guild's fallback order picks another at once, or the plan needs the member's
        consent to the alternative and its price. Nothing is reserved here."""
        await self._moderate(who, request)
        order = [] if who.guild_id is None else await failover.order(self.db, who.guild_id)
        try:
            found = failover.choose(request, self.providers, self.provider_verdict, order)
        except InvalidRequestError as exc:
            await self._refusal(who, "invalid_input", exc.message, request.prompt)
            raise RequestRefused(exc.message) from None
        if isinstance(found, NoProviderFound):
            await self._refusal(who, "provider_failing", found.message(), request.prompt)
            raise NoProviderAvailable(found)
        return found

    async def _moderate(self, who: Requester, request: VideoRequest) -> None:
        now = utcnow()
        if who.guild_id is not None:
            blocked = await moderation.check_member(self.db, who.guild_id, who.user_id, now)
            if blocked is not None:
                await self._refusal(who, "blocked_member", blocked, request.prompt)
                raise RequestRefused(blocked, kind="blocked_member")
            bad_prompt = await moderation.check_prompt(self.db, who.guild_id, request.prompt)
            if bad_prompt is not None:
                await self._refusal(who, "blocked_word", bad_prompt, request.prompt)
                raise RequestRefused(bad_prompt, kind="blocked_word")

    # ----- provider health and the fallback order ---------------------------------------

    def provider_verdict(self, name: str) -> Verdict:
        """Whether `name` is failing now (`bot.jobs.health`)."""
        return self.tracker.health.verdict(name)

    async def provider_health(self) -> list[ProviderHealth]:
        """Each configured provider's health, budget use and recent latency."""
        loop_now = asyncio.get_running_loop().time()
        board = self.tracker.health
        return [
            await health.provider_health(self.db, board, name, board.state(name), loop_now)
            for name in self.providers
        ]

    async def provider_order(self, guild_id: int) -> list[str]:
        return await failover.order(self.db, guild_id)

    async def set_provider_order(self, guild_id: int, text: str, *, actor_id: int) -> Change:
        """Parse and store `/videoadmin provider order` (raises ProviderOrderError)."""
        names = failover.parse_order(text, list(self.providers))
        return await failover.set_order(self.db, guild_id, names, actor_id=actor_id, now=utcnow())

    async def admit(
        self,
        who: Requester,
        request: NegotiatedRequest,
        *,
        input_dir: Path | None,
        source: SourceMessage | None = None,
    ) -> Admitted:
        """Write the job row and its quota reservation atomically, then hand it to the tracker.

        `source`: the message the input images came from (Animate), kept with the job."""
        now = utcnow()
        origin = "cli" if who.guild_id is None else "discord"
        try:
            async with self.db.transaction() as conn:
                job_id = await job_store.insert_job(
                    conn,
                    guild_id=who.guild_id,
                    channel_id=who.channel_id,
                    user_id=who.user_id,
                    request=request,
                    input_dir=input_dir,
                    origin=origin,
                    source=source,
                    now=now,
                )
                if who.guild_id is not None:
                    await quota.reserve(
                        conn,
                        guild_id=who.guild_id,
                        user_id=who.user_id,
                        job_id=job_id,
                        seconds=float(request.duration),
                        width=request.width,
                        height=request.height,
                        cost_usd=request.cost_usd,
                        role_ids=list(who.role_ids),
                        now=now,
                        default_seconds=self.default_quota_seconds,
                        default_max_concurrent=self.max_active_per_member,
                    )
                # admitted: ours to drive (the others, woken by its NOTIFY, leave it to us)
                await self.tracker.leases.take(conn, job_id)
        except quota.QuotaExceeded as exc:
            await self._refusal(who, exc.reason, exc.message, request.prompt)
            raise RequestRefused(exc.message, kind=exc.reason) from None
        return await self._hand_over(job_id, request)

    async def _hand_over(self, job_id: int, request: NegotiatedRequest) -> Admitted:
        """Give the committed job to the tracker. If that raises, the job is cancelled with
        a refund (RequestRefused, "nothing was charged"); if even that fails it stays
        admitted and runs (the tracker takes it from the table), and `note` says so."""
        try:
            await self.tracker.enqueue(job_id)
            return Admitted(job_id=job_id, request=request)
        except Exception:
            log.exception("job %s: handing it to the tracker failed; cancelling it", job_id)
        try:
            cancelled = await self.tracker.cancel(
                job_id, by=None, reason="could not be handed to the tracker"
            )
        except Exception:
            log.exception("job %s: cancelling it failed too; it stays admitted", job_id)
            cancelled = False
        if cancelled:
            raise RequestRefused(MSG_HANDOVER_REFUNDED, kind="internal")
        return Admitted(job_id=job_id, request=request, note=MSG_HANDOVER_RUNS)

    async def admit_keeping_inputs(
        self,
        who: Requester,
        request: NegotiatedRequest,
        *,
        input_dir: Path | None,
        source: SourceMessage | None = None,
    ) -> Admitted:
        """`admit`, with the input images copied aside for "Again" first: the tracker
        removes the inputs once the provider accepted the job, which can be at once."""
        try:
            staged = await asyncio.to_thread(self.files.stage_kept_inputs, request)
        except OSError:
            log.warning("could not keep the input images for Again", exc_info=True)
            staged = None
        try:
            admitted = await self.admit(who, request, input_dir=input_dir, source=source)
        except BaseException:
            await asyncio.to_thread(self.files.discard_staged, staged)
            raise
        try:
            await asyncio.to_thread(self.files.commit_kept_inputs, staged, admitted.job_id)
        except OSError:
            log.warning("job %s: could not keep its inputs for Again", admitted.job_id)
        return admitted

    async def cancel(self, job_id: int, *, by: int | None, reason: str) -> bool:
        """Stop a job unless it has finished or is being posted; nothing is charged.

        `by`: who pressed Cancel (None: the bot itself). False when it is too late."""
        return await self.tracker.cancel(job_id, by=by, reason=reason)

    async def guilds_with_jobs(self) -> set[int]:
        """Guilds that have unfinished jobs (to stop those of guilds the bot has left)."""
        return {j.guild_id for j in await job_store.list_active(self.db) if j.guild_id}

    async def stop_jobs_in(
        self, guild_id: int, channel_ids: Collection[int] | None = None, *, reason: str
    ) -> list[int]:
        """The bot left a guild (`channel_ids` None) or channels/threads were deleted:
        cancel their unfinished jobs so the provider stops rendering clips nobody can get.

        Through `cancel`: the provider is asked to stop where it can, the member gets their
        seconds back, and what the provider already billed stays in the guild's monthly
        spend. Jobs being posted finish on their own. Returns the cancelled job ids.
        """
        active = await job_store.list_active(self.db)
        mine = [
            j.id
            for j in active
            if j.guild_id == guild_id and (channel_ids is None or j.channel_id in channel_ids)
        ]
        stopped = []
        for job_id in mine:
            try:
                if await self.cancel(job_id, by=None, reason=reason):
                    stopped.append(job_id)
            except Exception:
                log.exception("job %s: could not be stopped (%s)", job_id, reason)
        if stopped:
            log.info("guild %s: stopped jobs %s: %s", guild_id, stopped, reason)
        return stopped

    # ----- what the Discord side reads and remembers about a job ----------------------

    async def job(self, job_id: int) -> JobRecord | None:
        return await job_store.get_job(self.db, job_id)

    async def recent_jobs(self, guild_id: int | None, user_id: int, limit: int) -> list[JobRecord]:
        """A member's most recent jobs in a guild, newest first."""
        return await job_store.list_for_user(self.db, guild_id, user_id, limit)

    async def remember_status_message(self, job_id: int, message_id: int) -> None:
        """The public status message of a job, so it can be edited after a restart."""
        await job_store.set_interaction_message(self.db, job_id, message_id)

    def queue_position(self, job_id: int) -> int | None:
        """1-based place in its provider's queue, or None once it left the queue."""
        return self.tracker.queue_position(job_id)

    async def _refusal(self, who: Requester, kind: str, message: str, prompt: str) -> None:
        await moderation.audit_refusal(
            self.db,
            guild_id=who.guild_id,
            user_id=who.user_id,
            channel_id=who.channel_id,
            reason=kind,
            message=message,
            prompt=prompt,
        )

    # ----- what the configured providers offer (bot.jobs.offerings) ----------------------

    def resolution_choices(
        self, provider: str | None, aspect_ratio: str | None, typed: str = "", limit: int = 25
    ) -> list[str]:
        """Autocomplete for `resolution` (see `offerings.resolution_choices`)."""
        prov = self.providers.get(provider or self.default_provider)
        return offerings.resolution_choices(prov, aspect_ratio, typed, limit)

    def edit_provider(self, job: JobRecord, operation: Operation) -> str | None:
        """The provider that makes `operation` of `job`'s clip (None: none can)."""
        return offerings.edit_provider(self.providers, job, operation)

    def edits_for(self, job: JobRecord) -> list[Operation]:
        """The edits offered on `job`'s delivered clip (its buttons)."""
        return offerings.edits_for(self.providers, job)

    # ----- "Again": input images kept after submission -------------------------------------

    def keep_inputs(self, job_id: int, request: NegotiatedRequest) -> bool:
        """Copy a job's input images aside for "Again" (blocking: run in a thread)."""
        return self.files.keep_inputs(job_id, request)

    def kept_inputs(self, job_id: int) -> dict[str, bytes] | None:
        """The images kept for `job_id` by option name, or None when gone (blocking)."""
        return self.files.kept_inputs(job_id)
