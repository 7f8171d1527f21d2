"""Clip delivery: the tracker's `DeliverySink` for Discord.

The clip is fitted to the server's upload limit and posted as a plain attachment with
Again/Delete buttons, pinging only the requester; after a 413 it is re-encoded smaller and
posted again (never the same file twice). Endings (failed, cancelled, expired) are shown on
the status message and, off the interaction token, as a reply that pings the requester.

Exactly once: the clip's file name carries the job's random delivery key
(`ltx-job-<id>-<key>.mp4`) and channel posts send `ltx<key>` as an enforced nonce (Discord
returns the first message for a repeated nonce instead of creating one). Follow-ups
(webhooks) have no nonce, so their upload is made in a single HTTP attempt (no library
retry after a 5xx that may have been stored). When the tracker says an earlier attempt may
have been posted, the channel is searched from the provider's finish time for a message of
ours with the key; only the key matches, never the job number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import discord
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

from bot import media
from bot.errors import PermanentPostError, TransientPostError
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
from cogs.video.safety import SafetyGate, spoiler_name
from cogs.video.status import Live, StatusBoard

if TYPE_CHECKING:
    from bot.client import VideoBot

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_SHRINKS_AFTER_413 = 3
STANDARD_UPLOAD_LIMITS = (100 * 1024 * 1024, 50 * 1024 * 1024, 25 * 1024 * 1024, 10 * 1024 * 1024)


# Discord snowflakes come from Discord's clock; search a little before the provider's
# finish time as recorded by ours.
CLOCK_SKEW = timedelta(minutes=2)


def result_filename(job: JobRecord) -> str:
    """The posted clip's file name: the job number for people, the key for the lookup."""
    return f"ltx-job-{job.id}-{_key(job)}.mp4"


def result_nonce(job: JobRecord) -> str:
    """The nonce of channel posts (at most 25 characters, stable for the job)."""
    return f"ltx{_key(job)}"


def _key(job: JobRecord) -> str:
    if not job.delivery_key:
        raise RuntimeError(f"job {job.id} has no delivery key")  # the tracker sets it first
    return job.delivery_key


def is_post_of(job: JobRecord, message: discord.Message, me: discord.abc.User | None) -> bool:
    """`message` is ours and carries the job's delivery key (nothing else identifies it)."""
    if me is None or message.author.id != me.id:
        return False
    key = _key(job)
    return any(key in a.filename for a in message.attachments)


class _SingleAttempt:
    """An aiohttp session stand-in for discord.py's webhook adapter: a 5xx answer or a
    dropped connection raises at once instead of being retried by the library, because a
    webhook execute has no nonce and the retry could post a second clip. The tracker retries
    after looking for the first post."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    @contextlib.asynccontextmanager
    async def request(self, *args: Any, **kwargs: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        try:
            async with self._session.request(*args, **kwargs) as response:
                if response.status >= 500:
                    body = await response.text()
                    raise discord.DiscordServerError(response, body)
                yield response
        except OSError as exc:  # connection reset after the request went out
            raise PostOutcomeUnknownError(f"connection lost while posting: {exc!r}") from exc


class PostOutcomeUnknownError(Exception):
    """The post went out but no answer came back: it may or may not be stored."""


class _SingleAttemptAdapter(AsyncWebhookAdapter):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    async def request(self, route: Any, session: Any, **kwargs: Any) -> Any:
        return await super().request(route, cast(Any, _SingleAttempt(session)), **kwargs)


@contextlib.contextmanager
def _single_attempt_webhooks() -> Iterator[None]:
    token = async_context.set(_SingleAttemptAdapter())
    try:
        yield
    finally:
        async_context.reset(token)


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
        self.safety = SafetyGate(bot, self)

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

    async def job_completed(
        self, job: JobRecord, clip: Path, *, maybe_posted: bool
    ) -> DeliveryReceipt:
        live = await self.status.get(job)
        message = None
        try:
            # The output safety check (once per job; raises ClipHeldError while held).
            check = await self.safety.check(job, clip)
            spoiler = check is not None and check.action == "spoiler"
            if maybe_posted:  # a retry, or resumed after a restart: is it posted already?
                # A held clip cannot have been posted before a moderator released it.
                since = check.decided_at if check and check.decision == "released" else None
                message = await self._earlier_post(job, since=since)
            if message is None:
                message = await self._post_clip(job, live, clip, spoiler=spoiler)
        except media.MediaError as exc:  # can never be posted: the tracker fails the job
            raise PermanentPostError(exc.message) from exc
        except (
            discord.DiscordServerError,
            PostOutcomeUnknownError,
            aiohttp.ClientError,
            OSError,
            TimeoutError,
        ) as exc:  # Discord down or unreachable: not this job's fault, retried
            raise TransientPostError(repr(exc)) from exc
        # Posted: from here on nothing may raise, or the tracker would post it again.
        try:
            await self.status.close(live)
            await self.status.write(job, live, "✅ Done — the video is posted below.", final=True)
        except Exception:
            log.exception("job %s: final status update failed", job.id)
        self.status.forget(job.id)
        return DeliveryReceipt(channel_id=message.channel.id, message_id=message.id)

    async def _earlier_post(
        self, job: JobRecord, *, since: datetime | None = None
    ) -> discord.Message | None:
        """The clip message of `job` if an earlier attempt posted it without our knowing
        (answer lost, error after Discord stored it, a crash before recording it).

        Reads every message since the provider finished (the post cannot be older), oldest
        first, and matches only the job's delivery key. A channel that is gone is permanent;
        history we may not read is logged and the post goes ahead (channel posts still carry
        the nonce); any other error raises, so the tracker retries later instead of risking
        a second clip.
        """
        channel = await self.status.channel(job)
        if channel is None:  # gone or hidden: posting tells which (a follow-up may still work)
            return None
        since = (since or job.provider_done_at or job.created_at) - CLOCK_SKEW
        me = self.bot.user
        try:
            async for message in channel.history(limit=None, after=since, oldest_first=True):
                if is_post_of(job, message, me):
                    log.warning("job %s: found its earlier post %s", job.id, message.id)
                    return message
        except discord.NotFound:
            raise PermanentPostError("the channel of this job no longer exists") from None
        except discord.Forbidden:
            log.warning("job %s: may not read the channel history to avoid a repost", job.id)
        return None

    def _upload_limit(self, job: JobRecord, live: Live) -> int:
        if live.interaction is not None:
            return int(live.interaction.filesize_limit)
        if job.guild_id is not None and job.guild_id in self.upload_limits:
            return self.upload_limits[job.guild_id]
        guild = self.bot.get_guild(job.guild_id) if job.guild_id else None
        return int(guild.filesize_limit) if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def _post_clip(
        self, job: JobRecord, live: Live, clip: Path, *, spoiler: bool = False
    ) -> discord.Message:
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
                    return await self._send_result(job, live, fitted, content, spoiler=spoiler)
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

    def _result_view(self, job: JobRecord) -> discord.ui.View:
        edits = [op.value for op in self.bot.service.edits_for(job)]
        return result_view(job.id, edits, again=job.request.edit is None)

    async def _send_result(
        self, job: JobRecord, live: Live, path: Path, content: str, *, spoiler: bool = False
    ) -> discord.Message:
        filename = spoiler_name(result_filename(job)) if spoiler else result_filename(job)
        mentions = requester_only(job.user_id)
        edit = job.request.edit
        # An edited clip is a reply to the original clip (a follow-up cannot reply).
        reply = self.status.reply_to(job, live)
        if edit is not None and edit.source_message_id is not None and job.channel_id:
            reply = {
                "reference": discord.MessageReference(
                    message_id=edit.source_message_id,
                    channel_id=job.channel_id,
                    guild_id=job.guild_id,
                    fail_if_not_exists=False,
                ),
                "mention_author": False,
            }
        if live.token_valid() and edit is None:
            assert live.interaction is not None
            try:
                with _single_attempt_webhooks():
                    return await live.interaction.followup.send(
                        content,
                        file=discord.File(path, filename=filename),
                        view=self._result_view(job),
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
                view=self._result_view(job),
                allowed_mentions=mentions,
                nonce=result_nonce(job),  # discord.py sends enforce_nonce with it
                **reply,
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
        try:
            channel = await self.status.channel(job)
            if channel is None:
                return
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
