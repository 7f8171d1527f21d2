"""Wake-ups between processes sharing one PostgreSQL database (LISTEN / NOTIFY).

`notify` is called by the store inside the transaction that admits a job (`new`) or cancels
one (`cancel`): PostgreSQL delivers the notification only when that transaction commits, and
never when it rolls back, so a listener never wakes for a row it cannot see yet. On SQLite
there is one process and nothing to do.

`Listener` is the receiving side of one process: a dedicated connection (not from the pool:
a LISTEN belongs to its session) that stays `LISTEN`ing on `CHANNEL` and hands every
notification to a callback as `(kind, job_id)`. If the connection drops (the server
restarted, the backend was terminated, a ping got no answer) it reconnects with a pause,
and after each reconnect it calls the callback with `("reconnect", None)`: notifications
sent while it was away are lost, so the process rescans instead. (The first connect needs
no rescan: `start` returns once it listens, and the tracker scans the table after that.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from bot.scheduling import wait_event
from bot.store._conn import Connection
from bot.store._postgres import RawConnection

CHANNEL = "ltx_jobs"
NEW = "new"
CANCEL = "cancel"
RECONNECT = "reconnect"

WakeCallback = Callable[[str, int | None], None]

log = logging.getLogger(__name__)


async def notify(conn: Connection, kind: str, job_id: int) -> None:
    """Inside the caller's transaction: tell every listening process about `job_id` once
    the transaction commits (PostgreSQL only)."""
    if conn.dialect == "postgresql":
        await conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, f"{kind}:{job_id}"))


def parse(payload: str) -> tuple[str, int | None]:
    kind, _, rest = payload.partition(":")
    return kind, int(rest) if rest.isdigit() else None


class Listener:
    """LISTEN on `CHANNEL` over a dedicated connection, reconnecting when it drops."""

    def __init__(
        self, url: str, callback: WakeCallback, *, ping_seconds: float = 5.0,
        retry_seconds: float = 1.0,
    ) -> None:  # fmt: skip
        self.url = url
        self.callback = callback
        self.ping_seconds = ping_seconds
        self.retry_seconds = retry_seconds
        self.connects = 0  # successful (re)connects, for tests and logs
        self.backend_pid: int | None = None
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, wait_seconds: float = 10.0) -> None:
        """Start listening; returns once the first LISTEN is in place (or `wait_seconds`
        passed: then it keeps trying in the background)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="db-listener")
        if not await wait_event(self.connected, wait_seconds):
            log.warning("LISTEN %s: not connected after %.0fs; retrying", CHANNEL, wait_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _deliver(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        kind, job_id = parse(str(payload))
        self._call(kind, job_id)

    def _call(self, kind: str, job_id: int | None) -> None:
        try:
            self.callback(kind, job_id)
        except Exception:
            log.exception("wake-up callback failed for %s:%s", kind, job_id)

    async def _run(self) -> None:
        while True:
            conn: RawConnection | None = None
            try:
                conn = await asyncpg.connect(self.url, timeout=self.ping_seconds)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, gone=lost: gone.set())
                await conn.add_listener(CHANNEL, self._deliver)
                self.backend_pid = conn.get_server_pid()
                self.connects += 1
                self.connected.set()
                if self.connects > 1:  # what was sent meanwhile is lost: rescan
                    log.info("LISTEN %s: reconnected", CHANNEL)
                    self._call(RECONNECT, None)
                await self._watch(conn, lost)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("LISTEN %s: connection lost (%s); reconnecting", CHANNEL, exc)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(self.retry_seconds)

    async def _watch(self, conn: RawConnection, lost: asyncio.Event) -> None:
        """Return when the connection is gone: closed by the server, or a ping unanswered."""
        while not lost.is_set():
            if not await wait_event(lost, self.ping_seconds):
                await conn.fetchval("SELECT 1", timeout=self.ping_seconds)
