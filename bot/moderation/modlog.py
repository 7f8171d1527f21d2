"""The mod-log worker: posts queued audit entries to each guild's log channel.

`ModLog` drains `modlog_outbox` in the background (per guild in audit order, retried with
exponential backoff, dropped after `max_attempts` or on `PermanentPostError`) and applies
retention every few hours. While started it is the database's audit listener, so every
committed audit entry wakes it. `set_log_channel` is the audited admin change that turns
posting on or off for a guild.

A delivered generation's poster frame (written by the delivery before its entry was
committed, see `bot.jobs.files`) is handed to the poster through `attachment` and removed
once the entry is posted or dropped; the prune pass sweeps frames nothing waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from bot.config import default_instance_name
from bot.db import Database, utcnow
from bot.errors import PermanentPostError
from bot.media.errors import MediaError
from bot.media.poster import poster_jpeg
from bot.moderation.audit import Change, admin_change, listen, unlisten
from bot.moderation.retention import prune_all
from bot.scheduling import create_task, exponential_backoff, wait_event
from bot.store import audit as audit_store
from bot.store import modlog_leases
from bot.store.audit import AuditEntry
from bot.store.guilds import get_guild_settings, update_guild_settings

log = logging.getLogger(__name__)

Poster = Callable[[AuditEntry, int], Awaitable[None]]


class PosterFrames(Protocol):
    """Where delivered clips' poster frames wait for the mod-log (`bot.jobs.files.JobFiles`)."""

    def save_poster(self, job_id: int, data: bytes) -> Path: ...

    def read_poster(self, job_id: int) -> bytes | None: ...

    def remove_poster(self, job_id: int) -> None: ...

    def sweep_posters(self, waiting: Collection[int], *, older_than: float = ...) -> int: ...


def _has_poster(entry: AuditEntry) -> bool:
    return (
        entry.kind == "generation"
        and entry.job_id is not None
        and entry.data.get("outcome") == "delivered"
    )


async def set_log_channel(
    db: Database, guild_id: int, channel_id: int | None, *, actor_id: int, now: datetime
) -> Change:
    """Set (or with None, turn off) the mod-log channel. The change itself is posted there."""
    async with db.transaction() as conn:
        before = await get_guild_settings(conn, guild_id)
        await update_guild_settings(conn, guild_id, log_channel_id=channel_id, now=now)
        old, new = before.log_channel_id, channel_id
        return await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            channel_id=new,
            setting="log_channel_id",
            summary=(
                f"mod-log channel: {_channel_words(old)} → {_channel_words(new)}"
                if old != new
                else f"mod-log channel unchanged ({_channel_words(new)})"
            ),
            old=old,
            new=new,
            now=now,
        )


def _channel_words(channel_id: int | None) -> str:
    return "none" if channel_id is None else f"channel {channel_id}"


class ModLog:
    """Posts queued audit entries to each guild's log channel, in order, in the background.

    One loop: post every due entry (per guild in audit order); on a failure the guild's
    due entries wait with exponential backoff and count an attempt; an entry that failed
    `max_attempts` times is dropped with a log line (it stays in the audit log). The loop
    also applies retention every `prune_interval`. Posting never blocks callers: they only
    insert rows (see `bot.moderation.audit.audit`), which wakes the loop after their commit
    once it is started.

    Several processes on one database each run one: a guild's entries are posted only
    while holding its lease (`bot.store.modlog_leases`, named `owner`: INSTANCE_NAME),
    taken or renewed before each post for `lease_seconds` (longer than `post_timeout`, so
    a post begun under the lease ends before it can expire) and handed back after the
    guild's pass. The guild's due rows are read again once the lease is held, so a row
    another process posted meanwhile is never posted twice.
    """

    def __init__(
        self,
        db: Database,
        poster: Poster | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_attempts: int = 10,
        base_delay: float = 5.0,
        max_delay: float = 900.0,
        poll_interval: float = 30.0,
        post_timeout: float = 30.0,
        prune_interval: timedelta | None = timedelta(hours=6),
        batch: int = 50,
        frames: PosterFrames | None = None,
        owner: str | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.db = db
        self.owner = owner or default_instance_name()
        self.lease_seconds = lease_seconds or post_timeout * 2 + 10
        self.poster = poster
        self.frames = frames
        self.clock = clock
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.poll_interval = poll_interval
        self.post_timeout = post_timeout
        self.prune_interval = prune_interval
        self.batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._next_prune: datetime | None = None

    # ----- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        listen(self.db, self.wake)  # every committed audit entry wakes the loop
        self._task = create_task(self._run(), name="modlog")

    async def stop(self, *, grace: float = 5.0) -> None:
        """Finish the post in flight (up to `grace` seconds), then stop the loop."""
        task, self._task = self._task, None
        if task is None:
            return
        unlisten(self.db, self.wake)
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await modlog_leases.give_back_all(self.db, self.owner)  # any left by a cancelled post

    def wake(self) -> None:
        """Post newly queued entries now instead of at the next poll."""
        self._wake.set()

    # ----- poster frames ----------------------------------------------------------------

    async def keep_frame(self, guild_id: int | None, job_id: int, clip: Path) -> bool:
        """Make and keep the poster frame of a delivered clip for its generation entry
        (call before that entry is written, while the clip is on disk). Only for a guild
        with a log channel; False when none was kept (an unreadable clip is logged)."""
        if self.frames is None or guild_id is None:
            return False
        settings = await get_guild_settings(self.db, guild_id)
        if settings.log_channel_id is None:
            return False
        try:
            data = await asyncio.to_thread(poster_jpeg, clip)
        except MediaError as exc:
            log.warning("job %s: no poster frame for the mod-log: %s", job_id, exc.message)
            return False
        await asyncio.to_thread(self.frames.save_poster, job_id, data)
        return True

    async def attachment(self, entry: AuditEntry) -> bytes | None:
        """The poster frame (JPEG) to show with `entry`, if it has one waiting."""
        if self.frames is None or not _has_poster(entry) or entry.job_id is None:
            return None
        return await asyncio.to_thread(self.frames.read_poster, entry.job_id)

    async def _release(self, entry: AuditEntry | None) -> None:
        """The entry was posted or dropped: its poster frame is not needed any more."""
        if self.frames is not None and entry is not None and _has_poster(entry):
            assert entry.job_id is not None
            await asyncio.to_thread(self.frames.remove_poster, entry.job_id)

    async def sweep_frames(self) -> int:
        """Remove poster frames that no queued entry waits for (a guild without a log
        channel, an entry pruned or dropped before it was posted)."""
        if self.frames is None:
            return 0
        waiting = await audit_store.waiting_generation_jobs(self.db)
        return await asyncio.to_thread(self.frames.sweep_posters, waiting)

    # ----- one pass ---------------------------------------------------------------------

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th consecutive failure (1-based)."""
        return exponential_backoff(attempts, self.base_delay, self.max_delay)

    async def run_once(self) -> int:
        """Post every due entry once; returns how many were posted (none while no poster
        is attached: the Discord side attaches it when it loads, entries wait until then)."""
        if self.poster is None:
            return 0
        now = self.clock()
        due = await audit_store.due_posts(self.db, now, limit=self.batch)
        posted = 0
        by_guild: dict[int, list[audit_store.OutboxItem]] = {}
        for item in due:
            by_guild.setdefault(item.guild_id, []).append(item)
        for guild_id in by_guild:
            if self._stopping:
                break
            posted += await self._drain_guild(guild_id)
        async with self.db.transaction() as conn:
            dropped = await audit_store.drop_exhausted(conn, self.max_attempts)
        for audit_id, guild_id in dropped:
            await self._release(await audit_store.get_entry(self.db, audit_id))
            log.warning(
                "mod-log: gave up posting audit entry %d to guild %d after %d attempts",
                audit_id,
                guild_id,
                self.max_attempts,
            )
        return posted

    async def _hold(self, guild_id: int) -> bool:
        now = self.clock()
        until = now + timedelta(seconds=self.lease_seconds)
        return await modlog_leases.take(self.db, guild_id, self.owner, now=now, until=until)

    async def _drain_guild(self, guild_id: int) -> int:
        """Post the guild's due entries if no other process is (its lease), in order."""
        if not await self._hold(guild_id):
            return 0  # another process drains this guild now
        try:
            items = await audit_store.due_posts(  # again: what is still queued, now it is ours
                self.db, self.clock(), limit=self.batch, guild_id=guild_id
            )
            return await self._post_guild(guild_id, items)
        finally:
            await modlog_leases.give_back(self.db, guild_id, self.owner)

    async def _post_guild(self, guild_id: int, items: Iterable[audit_store.OutboxItem]) -> int:
        posted = 0
        for n, item in enumerate(items):
            if self._stopping:
                break
            if n and not await self._hold(guild_id):  # renewed before each post
                log.warning("mod-log: lost guild %d's lease to another process", guild_id)
                break
            entry = await audit_store.get_entry(self.db, item.audit_id)
            if item.channel_id is None or entry is None:  # channel turned off / pruned
                await self._done(item.audit_id)
                await self._release(entry)
                continue
            try:
                poster = self.poster
                if poster is None:  # detached mid-pass (the cog unloaded): try again later
                    break
                async with asyncio.timeout(self.post_timeout):
                    await poster(entry, item.channel_id)
            except PermanentPostError as exc:
                log.warning(
                    "mod-log: dropping audit entry %d for guild %d: %s", entry.id, guild_id, exc
                )
                await self._done(item.audit_id)
                await self._release(entry)
                continue
            except Exception as exc:
                attempts = item.attempts + 1
                delay = self.backoff(attempts)
                now = self.clock()
                error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning(
                    "mod-log: posting to guild %d failed (attempt %d, retry in %.0f s): %s",
                    guild_id,
                    attempts,
                    delay,
                    error,
                )
                async with self.db.transaction() as conn:
                    await audit_store.guild_posts_failed(
                        conn,
                        guild_id,
                        now=now,
                        retry_at=now + timedelta(seconds=delay),
                        error=error,
                    )
                break  # keep the guild's entries in order: the rest wait too
            await self._done(item.audit_id)
            await self._release(entry)
            posted += 1
        return posted

    async def _done(self, audit_id: int) -> None:
        async with self.db.transaction() as conn:
            await audit_store.post_done(conn, audit_id)

    # ----- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            posted = 0
            try:
                posted = await self.run_once()
                await self._maybe_prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("mod-log pass failed; retrying later")
            if self._stopping:
                break
            delay = 0.0 if posted >= self.batch else await self._idle_delay()
            await wait_event(self._wake, delay)

    async def _maybe_prune(self) -> None:
        if self.prune_interval is None:
            return
        now = self.clock()
        if self._next_prune is not None and now < self._next_prune:
            return
        self._next_prune = now + self.prune_interval
        await prune_all(self.db, now)
        await self.sweep_frames()

    async def _idle_delay(self) -> float:
        delay = self.poll_interval
        due = await audit_store.next_post_due(self.db, owner=self.owner, now=self.clock())
        if due is not None:
            delay = min(delay, (due - self.clock()).total_seconds())
        if self._next_prune is not None:
            delay = min(delay, (self._next_prune - self.clock()).total_seconds())
        return max(0.0, delay)
