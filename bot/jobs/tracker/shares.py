"""One provider budget for every process: each process's part of a provider's request limit.

A provider's published limit (`requests_per_minute`, `submits_per_minute`) is per API key,
not per process. On PostgreSQL, where several processes may share one key, each process's
token buckets run at its *share* of the limit (`TokenBucket.share`), and the shares are
re-split every `share_settle_seconds` by demand: a process's fair part is
(its jobs with the provider + 1) / (the same summed over the live processes), so the busy
ones get most of the budget and an idle one keeps a little to start with.

The sum of the shares never exceeds the whole, at every instant, because of the order of
steps (one provider at a time, under the provider's lock in the database, `bot.store.shares`):
a process *lowers* its buckets before the lower share is written, and *raises* them only
after a higher one, taken from what the others leave free, is committed. A process that
joins takes only what is free (nothing while the others hold it all; its bank of calls is
its share of one) and grows as the others give way, within a few re-splits. A process that
dies keeps its part until it has been silent for `lease_seconds`; then the others take it
back. A process that cannot re-split (its database unreachable, its loop stalled) stops
calling the provider once its last re-split is `lease_seconds / 2` old, well before the
others would count its part as free. A graceful stop gives every part back at once.

On SQLite the bot is one process: the share stays 1 (the whole budget) and nothing runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.scheduling import create_task
from bot.store import shares as store
from bot.store.shares import ShareRow

if TYPE_CHECKING:
    from bot.jobs.tracker.budget import ProviderState
    from bot.jobs.tracker.engine import JobTracker

log = logging.getLogger(__name__)


def fair_share(demand: int, others: list[ShareRow]) -> float:
    """This process's fair part of a provider's budget, by jobs with it (+1 each)."""
    total = demand + 1 + sum(o.demand + 1 for o in others)
    return (demand + 1) / total


def next_share(mine: float, demand: int, others: list[ShareRow]) -> float:
    """The share to hold next: the fair part, but never more than the others leave free."""
    target = fair_share(demand, others)
    if target <= mine:
        return target
    return min(target, max(0.0, 1.0 - sum(o.share for o in others)))


def apply_share(state: ProviderState, share: float, now: float) -> None:
    for bucket in (state.bucket, state.pace, state.submit_bucket):
        if bucket is not None:
            bucket.set_share(share, now)


class Shares:
    """The budget side of one tracker among several processes (`tracker.leases.shares`)."""

    def __init__(self, tracker: JobTracker) -> None:
        self.tracker = tracker
        self.owner = tracker.settings.instance_name
        self.lease_seconds = tracker.settings.lease_seconds
        self.interval = tracker.settings.share_settle_seconds
        self.enabled = tracker.db.dialect == "postgresql"
        self.settles = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """On PostgreSQL: start from nothing and take a first part (before any call)."""
        if not self.enabled:
            return
        await self.settle(first=True)  # the dispatcher has not started: no call yet
        self._task = create_task(self._loop(), name=f"shares-{self.owner}")

    async def stop(self, *, release: bool) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if release and self.enabled:
            now = asyncio.get_running_loop().time()
            for state in self.tracker._states.values():
                apply_share(state, 0.0, now)  # no call after the part is given back
            await store.give_back(self.tracker.db, self.owner)

    async def settle(self, *, first: bool = False) -> None:
        """Re-split every provider's budget once (see the module docstring). The `first` time
        this process holds nothing yet (its buckets, full, take the part it gets)."""
        t = self.tracker
        loop = asyncio.get_running_loop()
        began = loop.time()
        now = t.clock()
        stale_before = now - timedelta(seconds=self.lease_seconds)
        demand = Counter(entry.job.provider for entry in t._entries.values())
        raised = False
        for name, state in list(t._states.items()):
            mine = state.bucket.share
            async with t.db.transaction() as conn:
                others = await store.lock(conn, name, owner=self.owner, stale_before=stale_before)
                share = next_share(0.0 if first else mine, demand[name], others)
                if share < mine:
                    apply_share(state, share, loop.time())  # lower first, then say so
                await store.put(conn, name, self.owner, share=share, demand=demand[name], now=now)
            if share > mine:
                apply_share(state, share, loop.time())  # raise only once it is committed
                raised = True
            state.share_until = began + self.lease_seconds / 2
        self.settles += 1
        if raised:
            t._wake.set()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.settle()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: re-splitting the provider budgets failed; retrying", self.owner)
