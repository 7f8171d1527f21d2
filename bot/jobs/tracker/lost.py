"""Submissions whose answer was lost (`OutcomeUnknownError`, or the process stopped during
the call): the provider may have accepted, and will bill, the job.

Where the provider can look its jobs up (`SubmissionLookup`) the job is found there and
adopted, or submitted again when it is not there. Otherwise it is submitted again (so the
member still gets a clip) and the job note, the mod-log (`audit_submission_unknown`) and
the member (`job_notice`) all say that the provider may run and bill it twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bot.jobs.tracker.budget import ProviderState, call_succeeded
from bot.jobs.tracker.entry import Entry
from bot.jobs.tracker.outcomes import MSG_SUBMIT_UNKNOWN
from bot.moderation.audit import audit_submission_unknown
from bot.providers.base import ProviderError, SubmissionLookup
from bot.store import jobs as store

if TYPE_CHECKING:
    from bot.jobs.tracker.engine import JobTracker
    from bot.jobs.tracker.steps import Release, Steps

log = logging.getLogger(__name__)


async def find_lost(
    steps: Steps, entry: Entry, state: ProviderState, lookup: SubmissionLookup, release: Release
) -> None:
    """An earlier submission's answer was lost: adopt the provider's job if it has one,
    otherwise submit (again) on the next turn."""
    t = steps.tracker
    job = entry.job
    since = entry.unknown_since
    assert since is not None
    try:
        found = await lookup.find_submission(job.request, since)
    except ProviderError as exc:
        release()
        state.occupying.discard(job.id)
        t.check_alive(entry)
        entry.retry_front = True
        if exc.retryable:
            t.provider_error(state, entry, exc)
            return
        entry.unknown_since = None  # it cannot tell: submit again, but say so
        await announce_unknown(t, entry, f"{state.name} could not look it up ({exc})")
        t.schedule_in(entry, 0)
        return
    except BaseException:
        state.occupying.discard(job.id)
        raise
    release()
    t.check_alive(entry)
    if found is not None:
        log.info("job %s: found its lost submission at %s as %s", job.id, state.name, found.job_id)
        await steps.accepted(entry, state, found, asyncio.get_running_loop().time())
        return
    call_succeeded(state)
    state.occupying.discard(job.id)
    entry.unknown_since = None
    entry.retry_front = True
    async with t.db.transaction() as conn:
        await store.add_note(
            conn,
            job.id,
            reason=f"earlier submission not found at {state.name}; submitting again",
            now=t.clock(),
        )
    t.schedule_in(entry, 0)


async def announce_unknown(t: JobTracker, entry: Entry, why: str) -> None:
    """A submission that may have reached the provider and cannot be looked up there: it
    is submitted again (so the member gets a clip), and the job note, the mod-log and
    the member all say that the provider may run and bill it twice."""
    job = entry.job
    log.warning("job %s: %s; submitting again, so %s may run it twice", job.id, why, job.provider)
    now = t.clock()
    async with t.db.transaction() as conn:
        await store.add_note(
            conn,
            job.id,
            reason="submission outcome unknown; resubmitting (duplicate possible)",
            now=now,
        )
        await audit_submission_unknown(
            conn,
            job,
            summary=(
                f"job {job.id}: a submission to {job.provider} got no answer ({why}); "
                f"it is submitted again, so {job.provider} may run and bill it twice"
            ),
            now=now,
        )
    await t.notice(job, MSG_SUBMIT_UNKNOWN)
