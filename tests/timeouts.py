"""A test that hangs: print its asyncio tasks' stacks too (pytest-timeout, thread method).

pytest-timeout ends the run after `timeout` seconds and prints every *thread's* stack. For
an asyncio test that shows only the event loop waiting in `select`; what is stuck is a task.
This plugin prints every task of the running loop with where it waits, then lets
pytest-timeout do the rest. (The lost cancellation that once hung CI for 90 minutes showed
up only in such a dump: a lease task "cancelling" but still going round its loop.)
"""

from __future__ import annotations

import asyncio
import gc
import io
import threading
from typing import Any

import pytest
import pytest_timeout


def running_loops() -> list[asyncio.AbstractEventLoop]:
    return [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)
            and o.is_running()]  # fmt: skip


def task_stacks() -> str:
    """Every task of every running loop, with the stack it waits in (read from another
    thread while the loop is stuck: good enough for a dump)."""
    out = io.StringIO()
    for loop in running_loops():
        tasks = asyncio.all_tasks(loop)
        out.write(f"{len(tasks)} asyncio task(s) of {loop!r}:\n")
        for task in tasks:
            out.write(f"--- {task!r}\n")
            task.print_stack(limit=12, file=out)
    return out.getvalue()


def _on_timeout(item: pytest.Item, settings: Any) -> None:
    try:
        text = task_stacks()
        capman = item.config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            capman.suspend_global_capture(item)  # pytest-timeout reads what was captured
        terminal = item.config.get_terminal_writer()
        terminal.sep("+", title="asyncio tasks at the timeout")
        terminal.write(text)
        terminal.flush()
    finally:
        pytest_timeout.timeout_timer(item, settings)  # thread stacks, then os._exit(1)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    if settings.method != "thread":
        return None  # pytest-timeout's own handling
    timer = threading.Timer(settings.timeout, _on_timeout, (item, settings))
    timer.name = f"timeout {item.nodeid}"
    timer.daemon = True

    def cancel() -> None:
        timer.cancel()
        timer.join()

    item.cancel_timeout = cancel  # type: ignore[attr-defined]  # pytest-timeout's contract
    timer.start()
    return True
