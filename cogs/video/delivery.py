"""Clip delivery: the tracker's `DeliverySink` for Discord.

The clip is fitted to the server's upload limit and posted as a plain attachment with
Again/Delete buttons, pinging only the requester; after a 413 it is re-encoded smaller and
posted again (never the same file twice). Endings (failed, cancelled, expired) are shown on
the status message and, off the interaction token, as a reply that pings the requester.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot import media
from bot.errors import PermanentPostError
from bot.jobs import JobRecord
from bot.jobs.tracker import DeliveryReceipt
from cogs.ui import text as render
from cogs.video.buttons import result_view
from cogs.video.common import (
    NO_MENTIONS,
    allowance_left,
    header_of,
    requester,
    requester_only,
)
from cogs.video.status import Live, StatusBoard

if TYPE_CHECKING:
    from bot.client import VideoBot

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_SHRINKS_AFTER_413 = 3
STANDARD_UPLOAD_LIMITS = (100 * 1024 * 1024, 50 * 1024 * 1024, 25 * 1024 * 1024, 10 * 1024 * 1024)


def result_filename(job_id: int) -> str:
    return f"ltx-job-{job_id}.mp4"


def smaller_upload_limit(rejected_size: int) -> int:
    """After a 413 for `rejected_size` bytes: the next standard limit below it, else half."""
    for limit in STANDARD_UPLOAD_LIMITS:
        if limit < rejected_size:
            return limit
    return rejected_size // 2


class ClipDelivery:
    """Implements `bot.jobs.tracker.DeliverySink` on top of the job's status message."""

    def __init__(self, bot: VideoBot, status: StatusBoard) -> None:
        self.bot = bot
        self.status = status
        self.upload_limits: dict[int, int] = {}  # guild id → latest attachment_size_limit

    async def job_queued(self, job: JobRecord, position: int) -> None:
        live = await self.status.get(job)
        line = render.progress_line(state="queued", elapsed_s=live.elapsed(), position=position)
        await self.status.update(job, live, line)

    async def job_started(self, job: JobRecord) -> None:
        live = await self.status.get(job)
        live.header = header_of(job)  # with what the provider reported on submission
        line = render.progress_line(state="sent to the video service", elapsed_s=live.elapsed())
        await self.status.update(job, live, line)

    async def job_progress(
        self, job: JobRecord, progress: float | None, eta_seconds: float | None
    ) -> None:
        live = await self.status.get(job)
        line = render.progress_line(
            state="rendering", elapsed_s=live.elapsed(), progress=progress, eta_s=eta_seconds
        )
        await self.status.update(job, live, line)

    async def job_completed(self, job: JobRecord, clip: Path) -> DeliveryReceipt:
        live = await self.status.get(job)
        message = None
        if live.interaction is None:  # resumed after a restart: was it posted before the crash?
            message = await self._earlier_post(job)
        if message is None:
            try:
                message = await self._post_clip(job, live, clip)
            except media.MediaError as exc:  # can never be posted: the tracker fails the job
                raise PermanentPostError(exc.message) from exc
        # Posted: from here on nothing may raise, or the tracker would post it again.
        try:
            await self.status.close(live)
            await self.status.write(job, live, "✅ Done — the video is posted below.", final=True)
        except Exception:
            log.exception("job %s: final status update failed", job.id)
        self.status.forget(job.id)
        return DeliveryReceipt(channel_id=message.channel.id, message_id=message.id)

    async def _earlier_post(self, job: JobRecord) -> discord.Message | None:
        """The clip message of `job` if a previous run posted it but died before recording it.

        The tracker records the message id right after posting; a crash in between would
        otherwise post the clip twice. Looks at the bot's own messages since the job began.
        """
        channel = await self.status.channel(job)
        if channel is None or not isinstance(channel, discord.abc.Messageable):
            return None
        filename = result_filename(job.id)
        me = self.bot.user
        try:
            async for message in channel.history(limit=200, after=job.created_at):
                mine = me is not None and message.author.id == me.id
                if mine and any(a.filename == filename for a in message.attachments):
                    log.warning("job %s: found its earlier post %s", job.id, message.id)
                    return message
        except discord.HTTPException:
            log.warning("job %s: could not read the channel history to avoid a repost", job.id)
        return None

    def _upload_limit(self, job: JobRecord, live: Live) -> int:
        if live.interaction is not None:
            return int(live.interaction.filesize_limit)
        if job.guild_id is not None and job.guild_id in self.upload_limits:
            return self.upload_limits[job.guild_id]
        guild = self.bot.get_guild(job.guild_id) if job.guild_id else None
        return int(guild.filesize_limit) if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def _post_clip(self, job: JobRecord, live: Live, clip: Path) -> discord.Message:
        """Fit the clip to the upload limit and post it; after a 413, shrink and try again
        (never the same file twice). MediaError when it cannot fit even after shrinking."""
        limit = self._upload_limit(job, live)
        original_size = await asyncio.to_thread(os.path.getsize, clip)
        fitted = clip.with_name(f"{clip.stem}.fit.mp4")
        try:
            for attempt in range(MAX_SHRINKS_AFTER_413 + 1):
                info = await asyncio.to_thread(media.fit_to_size, clip, fitted, limit)
                content = render.result_text(
                    job.request,
                    user_id=job.user_id,
                    job_id=job.id,
                    cost_usd=job.cost_usd,
                    reencoded=info.size_bytes != original_size,
                    seconds=job.seconds,
                )
                try:
                    return await self._send_result(job, live, fitted, content)
                except discord.HTTPException as exc:
                    if exc.status != 413 or attempt == MAX_SHRINKS_AFTER_413:
                        raise
                    limit = smaller_upload_limit(info.size_bytes)
                    log.info(
                        "job %s: %d bytes refused (413); re-encoding under %d bytes",
                        job.id,
                        info.size_bytes,
                        limit,
                    )
            raise AssertionError("unreachable")
        except discord.HTTPException as exc:
            if exc.status == 413:
                raise PermanentPostError(
                    "the clip is larger than this server accepts even after re-encoding; "
                    "ask for a shorter or smaller clip"
                ) from None
            raise
        finally:
            await asyncio.to_thread(fitted.unlink, missing_ok=True)

    async def _send_result(
        self, job: JobRecord, live: Live, path: Path, content: str
    ) -> discord.Message:
        filename = result_filename(job.id)
        mentions = requester_only(job.user_id)
        if live.token_valid():
            assert live.interaction is not None
            try:
                return await live.interaction.followup.send(
                    content,
                    file=discord.File(path, filename=filename),
                    view=result_view(job.id),
                    allowed_mentions=mentions,
                    wait=True,
                )
            except discord.HTTPException as exc:
                if exc.status not in (401, 403, 404):
                    raise
                live.token_ok = False
        channel = await self.status.channel(job)
        if channel is None:
            raise PermanentPostError("the channel of this job no longer exists")
        try:
            return await channel.send(
                content,
                file=discord.File(path, filename=filename),
                view=result_view(job.id),
                allowed_mentions=mentions,
                **self.status.reply_to(job, live),
            )
        except discord.Forbidden:
            raise PermanentPostError(
                "I'm no longer allowed to post videos in that channel (Send Messages, Attach Files)"
            ) from None
        except discord.NotFound:
            raise PermanentPostError("the channel of this job no longer exists") from None

    async def job_notice(self, job: JobRecord, text: str) -> None:
        """Something the member should know about a job that goes on: privately while the
        interaction token lasts, else a channel reply that pings only them."""
        live = await self.status.get(job)
        line = f"Job {job.id}: {text}"
        if live.token_valid() and live.interaction is not None:
            try:
                await live.interaction.followup.send(
                    line, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
                return
            except discord.HTTPException as exc:
                log.info("job %s: private notice failed (%s); using the channel", job.id, exc)
        channel = await self.status.channel(job)
        if channel is None:
            return
        try:
            await channel.send(
                f"<@{job.user_id}> {line}",
                allowed_mentions=requester_only(job.user_id),
                **self.status.reply_to(job, live),
            )
        except discord.HTTPException as exc:
            log.warning("job %s: could not post a notice: %s", job.id, exc)

    async def job_ended(self, job: JobRecord, outcome: str, reason: str) -> None:
        live = await self.status.get(job)
        refunded = job.guild_id is not None
        text = render.ended_text(job_id=job.id, outcome=outcome, reason=reason, refunded=refunded)
        await self.status.close(live)
        self.status.forget(job.id)
        via_token = await self.status.write(job, live, text, final=True)
        if via_token:
            await self._private_ending(job, live, outcome)
            return
        # Off the token: a reply that pings the requester (and nobody else).
        channel = await self.status.channel(job)
        if channel is None:
            return
        try:
            await channel.send(
                f"<@{job.user_id}> {text}",
                allowed_mentions=requester_only(job.user_id),
                **self.status.reply_to(job, live),
            )
        except discord.HTTPException as exc:
            log.warning("job %s: could not post its ending: %s", job.id, exc)

    async def _private_ending(self, job: JobRecord, live: Live, outcome: str) -> None:
        """Show the refund in the requester's private summary (with the allowance left)."""
        if live.interaction is None:
            return
        left = await allowance_left(self.bot, requester(live.interaction))
        try:
            await live.interaction.edit_original_response(
                content=render.ended_summary(
                    job.request, job_id=job.id, outcome=outcome, allowance_left=left
                ),
                allowed_mentions=NO_MENTIONS,
            )
        except discord.HTTPException as exc:
            log.info("job %s: private summary not updated: %s", job.id, exc)
