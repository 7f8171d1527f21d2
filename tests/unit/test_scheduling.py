"""Background loops stop when asked (`bot.scheduling.wait_event`).

Every loop of the bot (lease heartbeat, mod-log poster, LISTEN watchdog) sleeps on "an event
or a timeout" and is stopped by cancelling its task. On Python 3.11,
`asyncio.wait_for(event.wait(), t)` returns normally when the task is cancelled in the same
tick as the event is set, so the cancellation is lost, the loop goes round again and
`stop()` waits for ever. CI hung for 90 minutes on that in `test_tracker_shares`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.db import Database
from bot.scheduling import wait_event
from bot.store import wakeups
from tests.unit.test_tracker_support import FakeProvider, RecordingSink, fast_settings, make_tracker


async def test_wait_event_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    started = time.monotonic()
    assert await wait_event(event, 0.05) is False
    assert time.monotonic() - started >= 0.04
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5.0) is True
    assert await wait_event(event, 0.0) is True  # already set: at once


async def _ends(task: asyncio.Task[None], within: float = 2.0) -> bool:
    done, _ = await asyncio.wait({task}, timeout=within)
    if not done:
        task.cancel()  # a second cancel reaches it: do not leave it running
        await asyncio.wait({task}, timeout=within)
    return bool(done)


@pytest.mark.parametrize("seconds", [30.0, 0.0])
async def test_a_loop_cancelled_as_its_event_is_set_stops(seconds: float) -> None:
    event = asyncio.Event()

    async def loop_for_ever() -> None:
        while True:
            await wait_event(event, seconds)
            event.clear()
            await asyncio.sleep(0)

    task = asyncio.get_running_loop().create_task(loop_for_ever())
    for _ in range(3):
        await asyncio.sleep(0)  # the loop is waiting
    event.set()
    task.cancel()  # in the same tick
    assert await _ends(task), "the cancellation was lost: the loop went round again"
    assert task.cancelled()


async def test_the_lease_heartbeat_stops_when_woken_as_it_is_stopped(
    db: Database, tmp_path: Path
) -> None:
    tracker = make_tracker(
        db, tmp_path, {"fake": FakeProvider()}, RecordingSink(), fast_settings()
    )  # fmt: skip
    tracker.leases.run()
    task = tracker.leases._task
    assert task is not None
    for _ in range(3):
        await asyncio.sleep(0)
    tracker.leases.wake(wakeups.NEW, None)  # a NOTIFY from another process, just as this one stops
    task.cancel()
    assert await _ends(task), "the heartbeat's cancellation was lost"
    tracker.leases._task = None
