"""`/video` and its buttons. Thin: parse the interaction, call bot/, render the answer.

Flow of one job, as the member sees it:

1. Cheap local checks (channel permissions, option combination, attachment size,
   resolution format) answer ephemerally at once; otherwise the command is deferred
   (ephemeral "thinking") before any network or disk work.
2. Attachments are downloaded and checked by their bytes, the request is negotiated and
   the job admitted (job row + quota reservation) by `bot.jobs.service`.
3. The deferred answer becomes the private summary (settings, adjustments, cost, allowance
   left) and a public follow-up shows the job's status with a Cancel button. The status is
   edited at most once per `progress_interval` seconds (updates in between are coalesced).
4. The tracker calls back (`DeliverySink`): the clip is posted as a plain attachment with
   Again/Delete buttons, pinging only the requester.

The interaction token lives 15 minutes: it is used for 14, and after that (or after a
401/403/404 from the webhook, or after a restart) progress and the result go through the
bot's own channel messages, replying to the public status message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import media, moderation, quota
from bot.db import utcnow
from bot.errors import PermanentPostError
from bot.jobs.service import Requester, RequestRefused
from bot.jobs.tracker import DeliveryReceipt
from bot.providers.base import MAX_PROMPT_CHARS, parse_resolution
from bot.scheduling import create_task
from bot.store import jobs as job_store
from bot.store.jobs import JobRecord
from cogs import render

if TYPE_CHECKING:
    from bot.client import VideoBot

log = logging.getLogger(__name__)

PROMPT_MAX = 2000  # what /video accepts (providers take up to 5000; echo is shortened)
assert PROMPT_MAX <= MAX_PROMPT_CHARS
TOKEN_LIFETIME_S = 14 * 60  # interaction tokens die after 15 minutes; stop using them before
PROGRESS_MIN_INTERVAL_S = 5.0  # at most one status edit per job per this many seconds
READY_TIMEOUT_S = 15.0  # how long tracker callbacks wait for the job's status message
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_SHRINKS_AFTER_413 = 3
STANDARD_UPLOAD_LIMITS = (100 * 1024 * 1024, 50 * 1024 * 1024, 25 * 1024 * 1024, 10 * 1024 * 1024)
ASPECTS = ["16:9", "9:16", "1:1", "4:3", "3:4", "4:5"]
FPS_CHOICES = [24, 25, 30, 50]
PERMISSION_NAMES = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "send_messages_in_threads": "Send Messages in Threads",
    "attach_files": "Attach Files",
    "embed_links": "Embed Links",
    "read_message_history": "Read Message History",
}
NO_MENTIONS = discord.AllowedMentions.none()


def requester_only(user_id: int) -> discord.AllowedMentions:
    """Mentions that can ping the requester and nobody else."""
    return discord.AllowedMentions(
        everyone=False, roles=False, users=[discord.Object(user_id)], replied_user=False
    )


def is_moderator(interaction: discord.Interaction) -> bool:
    """Manage Messages / Manage Server / Administrator in this channel (Discord-computed)."""
    perms = interaction.permissions
    return bool(perms.manage_messages or perms.manage_guild or perms.administrator)


def missing_permissions(interaction: discord.Interaction) -> list[str]:
    """What the bot lacks in the interaction's channel to post progress and the clip."""
    perms = interaction.app_permissions
    in_thread = isinstance(interaction.channel, discord.Thread)
    send = "send_messages_in_threads" if in_thread else "send_messages"
    needed = ("view_channel", send, "attach_files", "embed_links", "read_message_history")
    return [PERMISSION_NAMES[name] for name in needed if not getattr(perms, name)]


def requester(interaction: discord.Interaction) -> Requester:
    assert interaction.guild_id is not None and interaction.channel_id is not None
    return Requester(
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        role_ids=[r.id for r in getattr(interaction.user, "roles", ())],
    )


async def send_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer whether or not the interaction was acknowledged already."""
    text = render.shorten_block(text)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
    except discord.HTTPException:
        log.warning("could not send an ephemeral message for interaction %s", interaction.id)


def token_started(interaction: discord.Interaction) -> float:
    """time.monotonic() of the interaction's creation (its token's clock), from its snowflake
    time; clock skew is clamped (a token never counts as more than a minute old here)."""
    age = (utcnow() - interaction.created_at).total_seconds()
    return time.monotonic() - min(max(age, 0.0), 60.0)


def header_of(job: JobRecord) -> str:
    """The public status header of a job as it stands (provider-reported changes included)."""
    return render.public_header(
        job.request,
        job_id=job.id,
        user_id=job.user_id,
        adjustments=job.adjustments or job.request.adjustments,
        cost_usd=job.cost_usd,
    )


def smaller_upload_limit(rejected_size: int) -> int:
    """After a 413 for `rejected_size` bytes: the next standard limit below it, else half."""
    for limit in STANDARD_UPLOAD_LIMITS:
        if limit < rejected_size:
            return limit
    return rejected_size // 2


# ----- persistent buttons (custom_id carries the job id; they work across restarts) -------


BUTTON_LOOKS = {
    "cancel": ("Cancel", discord.ButtonStyle.secondary),
    "again": ("Again", discord.ButtonStyle.primary),
    "delete": ("Delete", discord.ButtonStyle.danger),
}


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"ltx:(?P<action>cancel|again|delete):(?P<job>\d+)",
):
    """Cancel / Again / Delete for one job; the custom_id carries both, so it outlives restarts."""

    def __init__(self, action: str, job_id: int) -> None:
        label, style = BUTTON_LOOKS[action]
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"ltx:{action}:{job_id}")
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        return cls(match["action"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = _cog(interaction)
        press = {"cancel": cog.press_cancel, "again": cog.press_again, "delete": cog.press_delete}
        await press[self.action](interaction, self.job_id)


def result_filename(job_id: int) -> str:
    return f"ltx-job-{job_id}.mp4"


def _cog(interaction: discord.Interaction) -> VideoCog:
    cog = interaction.client.get_cog("VideoCog")  # type: ignore[attr-defined]
    assert isinstance(cog, VideoCog)
    return cog


def cancel_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton("cancel", job_id))
    return view


def result_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton("again", job_id))
    view.add_item(JobButton("delete", job_id))
    return view


# ----- per-job live state (in memory; the DB is the source of truth) ----------------------


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


class VideoCog(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.live: dict[int, Live] = {}
        self.progress_interval = PROGRESS_MIN_INTERVAL_S
        self.upload_limits: dict[int, int] = {}  # guild id → latest attachment_size_limit

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(JobButton)
        self.bot.delivery.target = self

    async def cog_unload(self) -> None:
        if self.bot.delivery.target is self:
            self.bot.delivery.target = None
        self.bot.remove_dynamic_items(JobButton)
        flushers = [live.flusher for live in self.live.values() if live.flusher is not None]
        for task in flushers:
            task.cancel()
        await asyncio.gather(*flushers, return_exceptions=True)

    # ----- /video ---------------------------------------------------------------------

    @app_commands.command(name="video", description="Generate a short video clip with sound")
    @app_commands.guild_only()
    @app_commands.describe(
        prompt=f"What should happen in the clip (up to {PROMPT_MAX} characters)",
        image="Image to animate (image-to-video): PNG, JPEG or WebP",
        first_frame="First frame (frame-to-video): PNG, JPEG or WebP",
        last_frame="Last frame (frame-to-video, needs first_frame)",
        duration="Length in seconds (snapped to what the provider offers)",
        resolution="WIDTHxHEIGHT, e.g. 1280x720 (takes priority over aspect_ratio)",
        aspect_ratio="Aspect ratio (ignored when resolution is given)",
        fps="Frames per second",
        provider="Which video service to use",
        seed="Seed for reproducible results (random when left out)",
        audio="Generate sound (default: yes)",
    )
    @app_commands.choices(aspect_ratio=[app_commands.Choice(name=a, value=a) for a in ASPECTS])
    @app_commands.choices(fps=[app_commands.Choice(name=f"{f} fps", value=f) for f in FPS_CHOICES])
    async def video(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, PROMPT_MAX],
        image: discord.Attachment | None = None,
        first_frame: discord.Attachment | None = None,
        last_frame: discord.Attachment | None = None,
        duration: app_commands.Range[int, 1, 20] | None = None,
        resolution: str | None = None,
        aspect_ratio: app_commands.Choice[str] | None = None,
        fps: app_commands.Choice[int] | None = None,
        provider: str | None = None,
        seed: app_commands.Range[int, 0, 4294967295] | None = None,
        audio: bool | None = None,
    ) -> None:
        # Cheap local checks answer at once (that is the acknowledgement); everything that
        # touches the network or disk happens after defer().
        attachments = {"image": image, "first_frame": first_frame, "last_frame": last_frame}
        problem = self._precheck(interaction, attachments, resolution)
        if problem is not None:
            await send_ephemeral(interaction, problem)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        options = {
            "duration": duration,
            "resolution": resolution,
            "aspect_ratio": aspect_ratio.value if aspect_ratio else None,
            "fps": fps.value if fps else None,
            "seed": seed,
            "audio": audio,
        }
        inputs = {name: att for name, att in attachments.items() if att is not None}
        await self.start_job(interaction, prompt, provider, options, inputs)

    def _precheck(
        self,
        interaction: discord.Interaction,
        attachments: Mapping[str, discord.Attachment | None],
        resolution: str | None,
    ) -> str | None:
        """A member-facing problem found without I/O, or None."""
        if interaction.guild_id is None:
            return "`/video` works in servers only."
        self.upload_limits[interaction.guild_id] = int(interaction.filesize_limit)
        missing = missing_permissions(interaction)
        if missing:
            return render.missing_permissions_text(missing)
        image = attachments.get("image")
        first, last = attachments.get("first_frame"), attachments.get("last_frame")
        if image is not None and (first is not None or last is not None):
            return (
                "Use either `image` (image-to-video) or `first_frame`/`last_frame` "
                "(frame-to-video), not both."
            )
        if last is not None and first is None:
            return "`last_frame` needs a `first_frame` too (or attach it as `image`)."
        for name, att in attachments.items():
            if att is not None and att.size > media.MAX_IMAGE_BYTES:
                return (
                    f"`{name}` is {att.size / 2**20:.1f} MB; images must be at most "
                    f"{media.MAX_IMAGE_BYTES / 2**20:.0f} MB. Attach a smaller PNG, JPEG or WebP."
                )
        if resolution and parse_resolution(resolution) is None:
            return "`resolution` must look like `1280x720` (WIDTHxHEIGHT, 16–8192 px each)."
        return None

    def _seed_for(self, provider: str | None, seed: int | None) -> int | None:
        """The member's seed, or a random one when the provider takes seeds (so the result
        can be reproduced and is shown)."""
        if seed is not None:
            return seed
        prov = self.bot.providers.get(provider or self.bot.service.default_provider)
        if prov is not None and prov.limits.supports_seed:
            return secrets.randbelow(2**32)
        return None

    async def start_job(
        self,
        interaction: discord.Interaction,
        prompt: str,
        provider: str | None,
        options: dict[str, Any],
        inputs: Mapping[str, discord.Attachment | bytes],
    ) -> None:
        """After defer: download inputs, validate, negotiate, reserve, enqueue, show status."""
        service = self.bot.service
        who = requester(interaction)
        started = token_started(interaction)
        input_dir = service.new_input_dir() if inputs else None
        options = {**options, "seed": self._seed_for(provider, options.get("seed"))}
        try:
            images = {}
            for name, source in inputs.items():
                assert input_dir is not None
                data = source if isinstance(source, bytes) else await source.read()
                images[name] = await asyncio.to_thread(
                    media.save_input_image, data, input_dir, name
                )
            request = service.build_request(prompt=prompt, provider=provider, **options, **images)
            negotiated = await service.prepare(who, request)
            admitted = await service.admit(who, negotiated, input_dir=input_dir)
        except (RequestRefused, media.MediaError) as exc:
            service.discard_inputs(input_dir)
            await self._refuse(interaction, exc.message)
            return
        except discord.HTTPException:
            service.discard_inputs(input_dir)
            await self._refuse(
                interaction,
                "I couldn't download your attachment from Discord; attach it again and retry.",
            )
            return
        except Exception:
            service.discard_inputs(input_dir)
            log.exception("starting a job failed")
            await self._refuse(
                interaction, "Something went wrong on my side; nothing was charged. Try again."
            )
            return
        job_id, req = admitted.job_id, admitted.request
        # Registered before any await, so tracker callbacks wait for the status message.
        live = Live(
            interaction=interaction,
            started=started,
            header=render.public_header(req, job_id=job_id, user_id=who.user_id),
        )
        self.live[job_id] = live
        try:
            await self._show_started(interaction, live, job_id, who)
        except Exception:
            log.exception("job %s: showing its start failed; it runs on", job_id)
        finally:
            live.ready.set()

    async def _show_started(
        self, interaction: discord.Interaction, live: Live, job_id: int, who: Requester
    ) -> None:
        """The private summary, then the public status message with its Cancel button."""
        job = await job_store.get_job(self.bot.db, job_id)
        assert job is not None
        if job.request.image or job.request.first_frame:
            try:
                await asyncio.to_thread(self.bot.service.keep_inputs, job_id, job.request)
            except OSError:
                log.warning("job %s: could not keep its inputs for Again", job_id, exc_info=True)
        left = await self._allowance_left(who)
        live.line = self._queued_line(job_id, live)
        try:
            await interaction.edit_original_response(
                content=render.summary(job.request, job_id=job_id, allowance_left=left),
                allowed_mentions=NO_MENTIONS,
            )
        except discord.HTTPException:
            # A follow-up now would replace the private "thinking" message (and stay
            # private): show the status in the channel instead.
            log.warning("job %s: could not show the private summary; using the channel", job_id)
            live.token_ok = False
            await self._write(job, live, live.line, final=False)
            return
        try:
            live.public = await interaction.followup.send(
                render.status_text(live.header, live.line),
                view=cancel_view(job_id),
                allowed_mentions=NO_MENTIONS,
                wait=True,
            )
        except discord.HTTPException:
            log.warning("job %s: no public status via the interaction; using the channel", job_id)
            live.token_ok = False
            await self._write(job, live, live.line, final=False)
            return
        live.last_edit = time.monotonic()
        live.public_id = live.public.id
        await job_store.set_interaction_message(self.bot.db, job_id, live.public.id)

    def _queued_line(self, job_id: int, live: Live) -> str:
        position = self.bot.tracker.queue_position(job_id)
        state = "waiting for the video service" if position is None else "queued"
        return render.progress_line(state=state, elapsed_s=live.elapsed(), position=position)

    async def _refuse(self, interaction: discord.Interaction, message: str) -> None:
        """Answer in the (ephemeral) deferred response: what to change, nothing charged."""
        try:
            await interaction.edit_original_response(
                content=render.shorten_block(f"⚠️ {message}"), allowed_mentions=NO_MENTIONS
            )
        except discord.HTTPException:
            log.warning("could not tell interaction %s why it was refused", interaction.id)

    async def _allowance_left(self, who: Requester) -> float | None:
        assert who.guild_id is not None
        try:
            usage = await quota.usage(
                self.bot.db,
                guild_id=who.guild_id,
                user_id=who.user_id,
                role_ids=list(who.role_ids),
                now=utcnow(),
                default_seconds=self.bot.settings.quota_seconds_per_day,
            )
        except Exception:
            log.exception("reading the allowance failed")
            return None
        return usage.left

    @video.autocomplete("resolution")
    async def _resolution_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        labels = self.bot.service.resolution_choices(
            getattr(interaction.namespace, "provider", None),
            getattr(interaction.namespace, "aspect_ratio", None),
            current,
        )
        return [app_commands.Choice(name=label, value=label) for label in labels]

    @video.autocomplete("provider")
    async def _provider_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=name, value=name)
            for name in self.bot.providers
            if current.lower() in name
        ][:25]

    # ----- buttons --------------------------------------------------------------------

    async def _job_for_owner_or_moderator(
        self, interaction: discord.Interaction, job_id: int, verb: str
    ) -> tuple[JobRecord, bool] | None:
        """Defer, load the job and check the presser may `verb` it: (job, is_owner) or None
        after telling them why not."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await job_store.get_job(self.bot.db, job_id)
        if job is None:
            await send_ephemeral(interaction, "That job no longer exists.")
            return None
        is_owner = interaction.user.id == job.user_id
        if not is_owner and not is_moderator(interaction):
            await send_ephemeral(
                interaction,
                f"Only the member who asked for this video (or a moderator) can {verb} it.",
            )
            return None
        return job, is_owner

    async def press_cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        allowed = await self._job_for_owner_or_moderator(interaction, job_id, "cancel")
        if allowed is None:
            return
        job, is_owner = allowed
        reason = "stopped by the member who asked for it" if is_owner else "stopped by a moderator"
        ok = await self.bot.service.cancel(job_id, by=interaction.user.id, reason=reason)
        if ok and not is_owner:
            await self._audit(interaction, job, moderation.KIND_CANCEL, f"job {job_id} {reason}")
        await send_ephemeral(
            interaction,
            f"Job {job_id} cancelled; nothing was charged."
            if ok
            else f"Job {job_id} can't be cancelled any more (it has finished or is being posted).",
        )

    async def press_again(self, interaction: discord.Interaction, job_id: int) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        problem = self._precheck(interaction, {}, None)
        if problem is not None:
            await send_ephemeral(interaction, problem)
            return
        job = await job_store.get_job(self.bot.db, job_id)
        if job is None:
            await send_ephemeral(interaction, "That job no longer exists.")
            return
        req = job.request
        inputs: dict[str, bytes] = {}
        if req.image is not None or req.first_frame is not None:
            if interaction.user.id != job.user_id:
                # Someone else's pictures are theirs: only a text clip can be redone by others.
                await send_ephemeral(
                    interaction,
                    "**Again** reuses the original member's images, so only they can press it "
                    "for this clip. Run `/video` with your own images instead.",
                )
                return
            kept = await asyncio.to_thread(self.bot.service.kept_inputs, job_id)
            if not kept:
                await send_ephemeral(
                    interaction,
                    "The input images of that job are no longer kept, so **Again** can't reuse "
                    "them. Run `/video` again with your images.",
                )
                return
            inputs = kept
        options = {
            "duration": req.duration,
            "resolution": req.resolution,
            "fps": req.fps,
            "audio": req.audio,
            "seed": None,  # a new random one (when the provider takes seeds)
        }
        await self.start_job(interaction, req.prompt, req.provider, options, inputs)

    async def press_delete(self, interaction: discord.Interaction, job_id: int) -> None:
        allowed = await self._job_for_owner_or_moderator(interaction, job_id, "delete")
        if allowed is None:
            return
        job, is_owner = allowed
        message = interaction.message
        try:
            if message is not None:
                await message.delete()
        except discord.NotFound:
            pass
        except discord.HTTPException:
            await send_ephemeral(interaction, "I couldn't delete that message; try again.")
            return
        who = "the requester" if is_owner else "a moderator"
        await self._audit(
            interaction,
            job,
            moderation.KIND_DELETE,
            f"video of job {job_id} deleted by {who}",
            message_id=message.id if message else None,
        )
        await send_ephemeral(interaction, f"Deleted the video of job {job_id}.")

    async def _audit(
        self,
        interaction: discord.Interaction,
        job: JobRecord,
        kind: str,
        summary: str,
        **data: Any,
    ) -> None:
        async with self.bot.db.transaction() as conn:
            await moderation.audit(
                conn,
                guild_id=job.guild_id,
                kind=kind,
                summary=summary,
                actor_id=interaction.user.id,
                target_id=job.user_id,
                channel_id=job.channel_id,
                job_id=job.id,
                data={"prompt": job.prompt, **data},
                now=utcnow(),
            )
        self.bot.modlog.wake()

    # ----- delivery sink (called by the tracker) ---------------------------------------

    async def _live(self, job: JobRecord) -> Live:
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
        try:
            await asyncio.wait_for(live.ready.wait(), READY_TIMEOUT_S)
        except TimeoutError:
            log.warning("job %s: status message not ready; updating anyway", job.id)
        return live

    async def _update(self, job: JobRecord, live: Live, line: str) -> None:
        """Show `line` now, or when the job's edit interval has passed (coalesced)."""
        live.line = line
        if live.closed or live.flusher is not None:
            return
        wait = live.last_edit + self.progress_interval - time.monotonic()
        if wait <= 0:
            await self._write(job, live, line, final=False)
            return
        live.flusher = create_task(self._flush_later(job, live, wait), name=f"job-{job.id}-status")

    async def _flush_later(self, job: JobRecord, live: Live, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            live.flusher = None
        if not live.closed:
            await self._write(job, live, live.line, final=False)

    async def _close(self, live: Live) -> None:
        """No more throttled updates: the next write is the final state."""
        live.closed = True
        task = live.flusher
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _write(self, job: JobRecord, live: Live, line: str, *, final: bool) -> bool:
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
        channel = await self._channel(job)
        if channel is None:
            return
        kwargs = self._reply_to(job, live)
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

    async def _channel(self, job: JobRecord) -> discord.abc.Messageable | None:
        if job.channel_id is None:
            return None
        channel = self.bot.get_channel(job.channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(job.channel_id)
            except discord.HTTPException:
                return None
        return channel if isinstance(channel, discord.abc.Messageable) else None

    def _reply_to(self, job: JobRecord, live: Live) -> dict[str, Any]:
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

    async def job_queued(self, job: JobRecord, position: int) -> None:
        live = await self._live(job)
        line = render.progress_line(state="queued", elapsed_s=live.elapsed(), position=position)
        await self._update(job, live, line)

    async def job_started(self, job: JobRecord) -> None:
        live = await self._live(job)
        live.header = header_of(job)  # with what the provider reported on submission
        line = render.progress_line(state="sent to the video service", elapsed_s=live.elapsed())
        await self._update(job, live, line)

    async def job_progress(
        self, job: JobRecord, progress: float | None, eta_seconds: float | None
    ) -> None:
        live = await self._live(job)
        line = render.progress_line(
            state="rendering", elapsed_s=live.elapsed(), progress=progress, eta_s=eta_seconds
        )
        await self._update(job, live, line)

    async def job_completed(self, job: JobRecord, clip: Path) -> DeliveryReceipt:
        live = await self._live(job)
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
            await self._close(live)
            await self._write(job, live, "✅ Done — the video is posted below.", final=True)
        except Exception:
            log.exception("job %s: final status update failed", job.id)
        self.live.pop(job.id, None)
        return DeliveryReceipt(channel_id=message.channel.id, message_id=message.id)

    async def _earlier_post(self, job: JobRecord) -> discord.Message | None:
        """The clip message of `job` if a previous run posted it but died before recording it.

        The tracker records the message id right after posting; a crash in between would
        otherwise post the clip twice. Looks at the bot's own messages since the job began.
        """
        channel = await self._channel(job)
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
        (never the same file twice). MediaError (the tracker fails the job with its
        message) when it cannot fit or cannot be posted at all."""
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
                raise media.MediaError(
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
        channel = await self._channel(job)
        if channel is None:
            raise media.MediaError("the channel of this job no longer exists")
        try:
            return await channel.send(
                content,
                file=discord.File(path, filename=filename),
                view=result_view(job.id),
                allowed_mentions=mentions,
                **self._reply_to(job, live),
            )
        except discord.Forbidden:
            raise media.MediaError(
                "I'm no longer allowed to post videos in that channel (Send Messages, Attach Files)"
            ) from None
        except discord.NotFound:
            raise media.MediaError("the channel of this job no longer exists") from None

    async def job_ended(self, job: JobRecord, outcome: str, reason: str) -> None:
        live = await self._live(job)
        refunded = job.guild_id is not None
        text = render.ended_text(job_id=job.id, outcome=outcome, reason=reason, refunded=refunded)
        await self._close(live)
        self.live.pop(job.id, None)
        via_token = await self._write(job, live, text, final=True)
        if via_token:
            await self._private_ending(job, live, outcome)
            return
        # Off the token: a reply that pings the requester (and nobody else).
        channel = await self._channel(job)
        if channel is None:
            return
        try:
            await channel.send(
                f"<@{job.user_id}> {text}",
                allowed_mentions=requester_only(job.user_id),
                **self._reply_to(job, live),
            )
        except discord.HTTPException as exc:
            log.warning("job %s: could not post its ending: %s", job.id, exc)

    async def _private_ending(self, job: JobRecord, live: Live, outcome: str) -> None:
        """Show the refund in the requester's private summary (with the allowance left)."""
        if live.interaction is None:
            return
        left = await self._allowance_left(requester(live.interaction))
        try:
            await live.interaction.edit_original_response(
                content=render.ended_summary(
                    job.request, job_id=job.id, outcome=outcome, allowance_left=left
                ),
                allowed_mentions=NO_MENTIONS,
            )
        except discord.HTTPException as exc:
            log.info("job %s: private summary not updated: %s", job.id, exc)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(VideoCog(bot))  # type: ignore[arg-type]
