"""The live status message of each job: one line, edited in place and throttled.

While the interaction token is valid (14 of its 15 minutes) the public follow-up is edited
through it; after that, or after a 401/403/404 from the webhook, or after a restart, the
status goes through the bot's own channel messages, replying to the public status message.
Edits are coalesced: at most one per `progress_interval` seconds per job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord

from bot.db import utcnow
from bot.jobs import JobRecord
from bot.scheduling import create_task, wait_event
from cogs.ui import text as render
from cogs.video.buttons import cancel_view
from cogs.video.common import NO_MENTIONS, header_of

if TYPE_CHECKING:
    from bot.client import VideoBot

log = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 14 * 60  # interaction tokens die after 15 minutes; stop using them before
PROGRESS_MIN_INTERVAL_S = 5.0  # at most one status edit per job per this many seconds
READY_TIMEOUT_S = 15.0  # how long tracker callbacks wait for the job's status message


@dataclass
class Live:
    """How to reach the member for one job, and its throttled status line."""

    interaction: discord.Interaction | None
    started: float  # time.monotonic() when the interaction arrived
    header: str = ""
    token_ok: bool = True
    public: discord.WebhookMessage | None = None  # the public status message (follow-up)
    public_id: int | None = None  # its id (also in the job row, for after a restart)
    status_message: discord.Message | None = None  # our channel status, once off the token
    last_edit: float = -1e9
    line: str = ""  # the latest status line (written by the next edit)
    closed: bool = False  # the final state was shown; ignore later updates
    flusher: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def token_valid(self) -> bool:
        return (
            self.interaction is not None
            and self.token_ok
            and time.monotonic() - self.started < TOKEN_LIFETIME_S
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class StatusBoard:
    """The live state of every job this process shows, keyed by job id (in memory only:
    the DB is the source of truth, and a job seen after a restart gets a fresh `Live`)."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.live: dict[int, Live] = {}
        self.progress_interval = PROGRESS_MIN_INTERVAL_S

    def register(self, job_id: int, live: Live) -> None:
        self.live[job_id] = live

    def forget(self, job_id: int) -> None:
        self.live.pop(job_id, None)

    async def shutdown(self) -> None:
        """Cancel pending coalesced edits (the cog is unloading)."""
        flushers = [live.flusher for live in self.live.values() if live.flusher is not None]
        for task in flushers:
            task.cancel()
        await asyncio.gather(*flushers, return_exceptions=True)

    async def get(self, job: JobRecord) -> Live:
        """The job's live state; after a restart a fresh one that uses channel messages."""
        live = self.live.get(job.id)
        if live is None:
            live = Live(
                interaction=None,
                started=time.monotonic() - (utcnow() - job.created_at).total_seconds(),
                header=header_of(job),
                token_ok=False,
            )
            live.ready.set()
            self.live[job.id] = live
        if not await wait_event(live.ready, READY_TIMEOUT_S):
            log.warning("job %s: status message not ready; updating anyway", job.id)
        return live

    async def update(self, job: JobRecord, live: Live, line: str) -> None:
        """Show `line` now, or when the job's edit interval has passed (coalesced)."""
        live.line = line
        if live.closed or live.flusher is not None:
            return
        wait = live.last_edit + self.progress_interval - time.monotonic()
        if wait <= 0:
            await self.write(job, live, line, final=False)
            return
        live.flusher = create_task(self._flush_later(job, live, wait), name=f"job-{job.id}-status")

    async def _flush_later(self, job: JobRecord, live: Live, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            live.flusher = None
        if not live.closed:
            await self.write(job, live, live.line, final=False)

    async def close(self, live: Live) -> None:
        """No more throttled updates: the next write is the final state."""
        live.closed = True
        task = live.flusher
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def write(self, job: JobRecord, live: Live, line: str, *, final: bool) -> bool:
        """Edit the status (via the token while valid, else our channel message).

        Returns True when the public status message was updated through the token. Errors
        are logged, never raised: status updates are best effort. The edit interval counts
        from the end of this write, so no two edits reach Discord closer than it.
        """
        async with live.lock:
            if live.closed and not final:
                return False
            try:
                return await self._write_now(job, live, line, final=final)
            finally:
                live.last_edit = time.monotonic()

    async def _write_now(self, job: JobRecord, live: Live, line: str, *, final: bool) -> bool:
        content = render.status_text(live.header, line)
        view = None if final else cancel_view(job.id)
        if live.token_valid() and live.public is not None:
            try:
                await live.public.edit(content=content, view=view, allowed_mentions=NO_MENTIONS)
                return True
            except discord.HTTPException as exc:
                if exc.status not in (401, 403, 404):
                    log.warning("job %s: status edit failed: %s", job.id, exc)
                    return False
                live.token_ok = False
        try:
            if final:
                await self._finish_channel_status(job, live, content)
            else:
                await self._channel_status(job, live, content, view)
        except discord.HTTPException as exc:
            log.warning("job %s: channel status update failed: %s", job.id, exc)
        return False

    async def _channel_status(
        self, job: JobRecord, live: Live, content: str, view: discord.ui.View | None
    ) -> None:
        """Progress after the token: one channel message replying to the status message."""
        if live.status_message is not None:
            try:
                await live.status_message.edit(
                    content=content, view=view, allowed_mentions=NO_MENTIONS
                )
                return
            except discord.NotFound:
                live.status_message = None
        channel = await self.channel(job)
        if channel is None:
            return
        kwargs = self.reply_to(job, live)
        if view is not None:
            kwargs["view"] = view
        live.status_message = await channel.send(content, allowed_mentions=NO_MENTIONS, **kwargs)

    async def _finish_channel_status(self, job: JobRecord, live: Live, content: str) -> None:
        """Final state off the token: show it on the original status message (our own
        message, editable through the channel) and remove the interim progress message."""
        public_id = live.public_id or job.interaction_message_id
        if job.channel_id is not None and public_id is not None:
            original = self.bot.get_partial_messageable(job.channel_id).get_partial_message(
                public_id
            )
            try:
                await original.edit(content=content, view=None, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException as exc:
                log.info("job %s: original status message not editable: %s", job.id, exc)
        if live.status_message is not None:
            message, live.status_message = live.status_message, None
            try:
                await message.delete()
            except discord.HTTPException as exc:
                log.info("job %s: interim status message not deleted: %s", job.id, exc)

    async def channel(self, job: JobRecord) -> discord.abc.Messageable | None:
        """The job's channel; None only when Discord says it is gone or hidden from us
        (NotFound / Forbidden). Any other error (5xx, connection) is raised: an outage is
        no reason to give up on a job, its caller retries."""
        if job.channel_id is None:
            return None
        channel = self.bot.get_channel(job.channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(job.channel_id)
            except (discord.NotFound, discord.Forbidden):
                return None
        return channel if isinstance(channel, discord.abc.Messageable) else None

    def reply_to(self, job: JobRecord, live: Live) -> dict[str, Any]:
        """send() arguments that make a channel message a reply to the job's status message."""
        public_id = live.public_id or job.interaction_message_id
        if public_id is None or job.channel_id is None:
            return {}
        reference = discord.MessageReference(
            message_id=public_id,
            channel_id=job.channel_id,
            guild_id=job.guild_id,
            fail_if_not_exists=False,
        )
        return {"reference": reference, "mention_author": False}
