"""One place to start background tasks: keeps a reference and logs exceptions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

_background: set[asyncio.Task[Any]] = set()


def create_task(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """Start `coro` as a task that cannot be garbage-collected and whose errors are logged."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _background.add(task)
    task.add_done_callback(_done)
    return task


def _done(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task %s failed", task.get_name(), exc_info=exc)


def exponential_backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after the `attempt`-th consecutive failure (1-based): base · 2^(n-1),
    at most `cap`. Callers add their own jitter where many waiters must not wake together."""
    return float(min(cap, base * 2.0 ** max(attempt - 1, 0)))


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; True if it was set.

    Every background loop sleeps on this, never on `asyncio.wait_for(event.wait(), …)`:
    on Python 3.11 wait_for returns normally when its task is cancelled in the same tick as
    the event is set, so the cancellation is lost and a loop stopped by `task.cancel()`
    goes round for ever. `asyncio.timeout` keeps an outside cancellation apart from its
    own expiry.
    """
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
