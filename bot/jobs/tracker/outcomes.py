"""How a job ends other than delivered: failed, cancelled or expired, with its quota refunded
in the same transaction, its files removed and the member told why (the `MSG_*` texts).

A refund gives the member all their seconds back; what the provider billed anyway (it had
accepted a cancelled job, or rendered a clip that then could not be fetched or posted)
stays in the guild's monthly spend (`billed_usd`, `rendered_usd`), at most the quote."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot import quota
from bot.jobs.tracker.entry import Entry
from bot.moderation.audit import audit_provider_account, audit_provider_refusal
from bot.providers.base import (
    AuthenticationError,
    ContentRefusedError,
    InsufficientCreditsError,
    JobNotFoundError,
    ProviderError,
    ProviderJob,
)
from bot.store import jobs as store
from bot.store.jobs import InvalidTransitionError, JobRecord, Status

if TYPE_CHECKING:
    from bot.jobs.tracker.engine import JobTracker

log = logging.getLogger(__name__)

# Member-facing reasons (job_ended).
MSG_MISCONFIGURED = "the video service is misconfigured; an admin has been notified"
MSG_OUT_OF_CREDIT = (
    "the video service's account is out of credit, so nothing was made and nothing was "
    "charged; the admins have been told. Try again later"
)
MSG_DISK = "the finished clip could not be saved on the bot's server; an admin has been notified"
MSG_DOWNLOAD = "the finished clip could not be downloaded from the video service"
MSG_POST = "the finished clip could not be posted"
MSG_INTERNAL = "something went wrong on the bot's side; an admin has been notified"
MSG_GONE = "the video service no longer knows this job (it expired there)"
MSG_PROVIDER_FAILED = "the video service could not make this video"
# Member-facing notice (job_notice): a submission whose answer was lost.
MSG_SUBMIT_UNKNOWN = (
    "The video service didn't answer when your video was sent, so I'm sending it again; "
    "it may be made twice on the service's side (you're charged once). The moderators "
    "have been told."
)


def billed_usd(job: JobRecord) -> float:
    """What the provider bills for a job that is cancelled now.

    "Every accepted submit is a new billed job" (PROVIDERS.md), and neither ByteCompute
    nor Leonardo can cancel one, so once the provider has the job its cost counts (the
    simulator's cancel is treated alike); before, nothing does.
    """
    return job.cost_usd if job.provider_job is not None else 0.0


def rendered_usd(job: JobRecord) -> float:
    """What the provider bills for a job that fails or expires now: its cost once the
    provider has rendered the clip (downloading or posting it failed), else nothing (the
    provider failed it, or never had it)."""
    return job.cost_usd if job.status in (Status.DOWNLOADING, Status.DELIVERING) else 0.0


class Endings:
    """Terminal writes of a tracker other than `delivered` (see `Delivery`)."""

    def __init__(self, tracker: JobTracker) -> None:
        self.tracker = tracker

    async def end(
        self,
        entry: Entry | None,
        job: JobRecord,
        status: Status,
        *,
        reason: str,
        member: str,
        account_problem: str | None = None,
        refused_at: str | None = None,
    ) -> None:
        """Failed / cancelled / expired: status change and refund in one transaction (with
        the admins' mod-log entry when the provider's account is the problem, or the
        moderators' when its safety filter refused the job at stage `refused_at`)."""
        t = self.tracker
        now = t.clock()
        try:
            async with t.db.transaction() as conn:
                current = await store.get_job(conn, job.id)
                billed = 0.0 if current is None else rendered_usd(current)
                fresh = await store.transition(
                    conn, job.id, status, reason=reason, now=now, failure_reason=member
                )
                await quota.refund(conn, job.id, reason=reason, now=now, billed_usd=billed)
                if account_problem is not None:
                    await audit_provider_account(
                        conn,
                        fresh,
                        summary=(
                            f"{job.provider} refused job {job.id}: {account_problem}. Top up "
                            "the provider account; the member was not charged."
                        ),
                        now=now,
                        error=account_problem,
                    )
                if refused_at is not None:
                    await audit_provider_refusal(
                        conn, fresh, message=member, stage=refused_at, now=now
                    )
        except InvalidTransitionError as exc:
            log.info("job %s: not ended as %s (%s)", job.id, status, exc)
            if entry is not None:
                t.drop(entry)
            return
        # (any other error propagates with the job still tracked, so it is retried)
        if entry is not None:
            t.drop(entry)
        log.info("job %s %s: %s", job.id, status, reason)
        await asyncio.to_thread(t.files.remove_job_files, fresh)
        await t.notify("job_ended", fresh, status.value, member)

    async def end_for_error(self, entry: Entry, exc: ProviderError, *, stage: str) -> None:
        """A provider error that no retry can fix, told to the member in their terms."""
        job = entry.job
        self.tracker.health.record(job.provider).rejected(exc)
        if isinstance(exc, InsufficientCreditsError):
            log.error("%s is out of credit (%s of job %s): %s", job.provider, stage, job.id, exc)
            await self.end(
                entry,
                job,
                Status.FAILED,
                reason=f"insufficient credits: {exc}",
                member=MSG_OUT_OF_CREDIT,
                account_problem=exc.message,
            )
        elif isinstance(exc, AuthenticationError):
            log.error(
                "%s rejected the bot's credentials during %s of job %s (%s); check its API key "
                "and account credit",
                job.provider,
                stage,
                job.id,
                exc,
            )
            await self.end(
                entry,
                job,
                Status.FAILED,
                reason=f"authentication error: {exc}",
                member=MSG_MISCONFIGURED,
            )
        elif isinstance(exc, ContentRefusedError):
            # Refused before anything was made: refunded in full, billed nothing (the job
            # never reached `downloading`), and the moderators see it in the mod-log.
            await self.end(
                entry,
                job,
                Status.FAILED,
                reason=f"refused by the provider's safety filter at {stage}: {exc}",
                member=exc.message,
                refused_at=stage,
            )
        elif isinstance(exc, JobNotFoundError):
            await self.end(
                entry, job, Status.EXPIRED, reason=f"unknown at provider: {exc}", member=MSG_GONE
            )
        else:
            member = exc.message or MSG_PROVIDER_FAILED
            await self.end(
                entry, job, Status.FAILED, reason=f"{stage} failed: {exc}", member=member
            )

    def deadline(self, job: JobRecord) -> datetime:
        provider = self.tracker.providers.get(job.provider)
        expiry = provider.limits.job_expiry if provider is not None else None
        if expiry is None:
            expiry = timedelta(seconds=self.tracker.settings.max_job_age_seconds)
        return job.created_at + expiry

    async def expire_if_due(self, entry: Entry) -> bool:
        if self.tracker.clock() < self.deadline(entry.job):
            return False
        await self.expire(entry)
        return True

    async def expire(self, entry: Entry) -> None:
        expiry = self.deadline(entry.job) - entry.job.created_at
        hours = expiry.total_seconds() / 3600
        await self.end(
            entry,
            entry.job,
            Status.EXPIRED,
            reason=f"older than {hours:g} h",
            member=f"the video service did not finish it within {hours:g} h",
        )

    async def cancel_remote(self, pjob: ProviderJob) -> None:
        """Best effort: ask the provider to stop a job (within its request budget)."""
        t = self.tracker
        state = t._states.get(pjob.provider)
        provider = t.providers.get(pjob.provider)
        if provider is None:
            return
        if state is not None:
            loop = asyncio.get_running_loop()
            wait = state.bucket.borrow(loop.time())
            while wait > 0:  # re-checked: this process's share may change meanwhile
                await asyncio.sleep(min(wait, 1.0))
                wait = state.bucket.owed(loop.time())
        t.stats["cancel"] = t.stats.get("cancel", 0) + 1
        try:
            done = await provider.cancel(pjob)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: cancelling job %s there failed: %s", pjob.provider, pjob.job_id, exc)
            return
        if not done:
            log.info("%s has no cancel; job %s runs out there", pjob.provider, pjob.job_id)
