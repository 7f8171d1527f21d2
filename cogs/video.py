"""`/video` and its buttons. Thin: parse the interaction, call bot/, render the answer."""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import media, moderation, quota
from bot.db import utcnow
from bot.providers.base import MAX_PROMPT_CHARS, parse_resolution
from bot.service import Requester, RequestRefused
from bot.store import jobs as job_store
from bot.store.jobs import JobRecord
from bot.tracker import DeliveryReceipt
from cogs import render

if TYPE_CHECKING:
    from bot.client import VideoBot

log = logging.getLogger(__name__)

PROMPT_MAX = 2000  # what /video accepts (providers take up to 5000; echo is shortened)
assert PROMPT_MAX <= MAX_PROMPT_CHARS
TOKEN_LIFETIME_S = 14 * 60  # interaction tokens die after 15 minutes; stop using them before
PROGRESS_MIN_INTERVAL_S = 5.0
REQUIRED_PERMS = ("send_messages", "attach_files", "embed_links", "read_message_history")
ASPECTS = ["16:9", "9:16", "1:1", "4:3", "3:4", "4:5"]
FPS_CHOICES = [24, 25, 30, 50]
COMMON_SIZES = [
    (1920, 1080),
    (1280, 720),
    (1024, 576),
    (960, 544),
    (768, 512),
    (1080, 1920),
    (720, 1280),
    (576, 1024),
    (1080, 1080),
    (768, 768),
    (512, 512),
    (1440, 1080),
    (960, 720),
    (1080, 1440),
    (720, 960),
    (864, 1080),
    (768, 960),
    (2560, 1440),
    (1440, 2560),
    (3840, 2160),
    (2160, 3840),
]


def is_moderator(member: discord.abc.User, channel: Any) -> bool:
    if not isinstance(member, discord.Member):
        return False
    perms = channel.permissions_for(member) if channel is not None else member.guild_permissions
    return bool(perms.manage_messages or perms.manage_guild or perms.administrator)


def missing_permissions(interaction: discord.Interaction) -> list[str]:
    perms = interaction.app_permissions
    return [name.replace("_", " ").title() for name in REQUIRED_PERMS if not getattr(perms, name)]


async def send_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer whether or not the interaction was acknowledged already."""
    text = render.shorten_block(text)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(
                text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
        else:
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
    except discord.HTTPException:
        log.warning("could not send an ephemeral message for interaction %s", interaction.id)


# ----- persistent buttons (custom_id carries the job id; they work across restarts) -------


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"ltx:cancel:(?P<job>\d+)"
):
    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.secondary,
                custom_id=f"ltx:cancel:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = _cog(interaction)
        await cog.press_cancel(interaction, self.job_id)


class AgainButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"ltx:again:(?P<job>\d+)"
):
    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Again", style=discord.ButtonStyle.primary, custom_id=f"ltx:again:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> AgainButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _cog(interaction).press_again(interaction, self.job_id)


class DeleteButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"ltx:delete:(?P<job>\d+)"
):
    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Delete", style=discord.ButtonStyle.danger, custom_id=f"ltx:delete:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> DeleteButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _cog(interaction).press_delete(interaction, self.job_id)


def _cog(interaction: discord.Interaction) -> VideoCog:
    cog = interaction.client.get_cog("VideoCog")  # type: ignore[attr-defined]
    assert isinstance(cog, VideoCog)
    return cog


def cancel_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def result_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(AgainButton(job_id))
    view.add_item(DeleteButton(job_id))
    return view


# ----- per-job live state (in memory; the DB is the source of truth) ----------------------


@dataclass
class Live:
    interaction: discord.Interaction | None
    started: float
    token_ok: bool = True
    last_edit: float = 0.0
    public: discord.WebhookMessage | None = None  # the public status message (follow-up)
    status_message: discord.Message | None = None  # our own channel message after token expiry
    header: str = ""

    def token_valid(self) -> bool:
        return (
            self.interaction is not None
            and self.token_ok
            and time.monotonic() - self.started < TOKEN_LIFETIME_S
        )


class VideoCog(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.live: dict[int, Live] = {}

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(CancelButton, AgainButton, DeleteButton)
        self.bot.delivery.target = self

    async def cog_unload(self) -> None:
        if self.bot.delivery.target is self:
            self.bot.delivery.target = None
        self.bot.remove_dynamic_items(CancelButton, AgainButton, DeleteButton)

    # ----- /video ---------------------------------------------------------------------

    @app_commands.command(name="video", description="Generate a short video clip with sound")
    @app_commands.guild_only()
    @app_commands.describe(
        prompt="What should happen in the clip",
        image="Image to animate (image-to-video)",
        first_frame="First frame (frame-to-video)",
        last_frame="Last frame (frame-to-video, needs first_frame)",
        duration="Length in seconds",
        resolution="WIDTHxHEIGHT, e.g. 1280x720",
        aspect_ratio="Aspect ratio (ignored when resolution is given)",
        fps="Frames per second",
        provider="Which video service to use",
        seed="Seed for reproducible results",
        audio="Generate sound (default: yes)",
    )
    @app_commands.choices(
        aspect_ratio=[app_commands.Choice(name=a, value=a) for a in ASPECTS],
    )
    @app_commands.choices(
        fps=[app_commands.Choice(name=str(f), value=f) for f in FPS_CHOICES],
    )
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
        problem = self._precheck(interaction, image, first_frame, last_frame, resolution)
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
        attachments = {"image": image, "first_frame": first_frame, "last_frame": last_frame}
        await self.start_job(interaction, prompt, provider, options, attachments)

    def _precheck(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment | None,
        first_frame: discord.Attachment | None,
        last_frame: discord.Attachment | None,
        resolution: str | None,
    ) -> str | None:
        if interaction.guild is None:
            return "`/video` works in servers only."
        missing = missing_permissions(interaction)
        if missing:
            return (
                "I can't post videos in this channel: I'm missing "
                + ", ".join(f"**{m}**" for m in missing)
                + ". Ask an admin to grant them, or use another channel."
            )
        if image is not None and (first_frame is not None or last_frame is not None):
            return (
                "Use either `image` (image-to-video) or `first_frame`/`last_frame` "
                "(frame-to-video), not both."
            )
        if last_frame is not None and first_frame is None:
            return "`last_frame` needs a `first_frame` too."
        for name, att in (
            ("image", image),
            ("first_frame", first_frame),
            ("last_frame", last_frame),
        ):
            if att is not None and att.size > media.MAX_IMAGE_BYTES:
                return (
                    f"`{name}` is {att.size / 1e6:.1f} MB; images must be at most "
                    f"{media.MAX_IMAGE_BYTES / 1e6:.0f} MB."
                )
        if resolution and parse_resolution(resolution) is None:
            return "`resolution` must look like `1280x720` (WIDTHxHEIGHT)."
        return None

    async def start_job(
        self,
        interaction: discord.Interaction,
        prompt: str,
        provider: str | None,
        options: dict[str, Any],
        attachments: dict[str, discord.Attachment | None],
    ) -> None:
        """After defer: download inputs, validate, negotiate, reserve, enqueue, show summary."""
        service = self.bot.service
        assert interaction.guild is not None and interaction.channel is not None
        member = interaction.user
        role_ids = [r.id for r in getattr(member, "roles", [])]
        who = Requester(
            user_id=member.id,
            guild_id=interaction.guild.id,
            channel_id=interaction.channel.id,
            role_ids=role_ids,
        )
        input_dir = service.new_input_dir()
        admitted = None
        try:
            images = {}
            for name, att in attachments.items():
                if att is None:
                    continue
                data = await att.read()
                images[name] = await _to_thread(media.save_input_image, data, input_dir, name)
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
                interaction, "I couldn't download your attachment from Discord; please try again."
            )
            return
        except Exception:
            if admitted is None:
                service.discard_inputs(input_dir)
            log.exception("starting a job failed")
            await self._refuse(
                interaction,
                "Something went wrong on my side; nothing was charged. Please try again.",
            )
            return
        job_id = admitted.job_id
        left = await self._allowance_left(who)
        position = self.bot.tracker.queue_position(job_id)
        live = Live(interaction=interaction, started=time.monotonic())
        live.header = render.public_header(admitted.request, job_id=job_id, user_id=member.id)
        self.live[job_id] = live
        try:
            await interaction.edit_original_response(
                content=render.summary(
                    admitted.request, job_id=job_id, allowance_left=left, position=position
                ),
                allowed_mentions=discord.AllowedMentions.none(),
            )
            live.public = await interaction.followup.send(
                render.shorten_block(
                    f"{live.header}\n"
                    + render.progress_line(
                        state="starting",
                        elapsed_s=0,
                        progress=None,
                        eta_s=None,
                        position=position,
                    )
                ),
                view=cancel_view(job_id),
                allowed_mentions=discord.AllowedMentions.none(),
                wait=True,
            )
            await job_store.set_interaction_message(self.bot.db, job_id, live.public.id)
            live.last_edit = time.monotonic()
        except discord.HTTPException:
            live.token_ok = False
            log.warning("job %s: could not show its status via the interaction", job_id)

    async def _refuse(self, interaction: discord.Interaction, message: str) -> None:
        """Answer in the (ephemeral) deferred response: what to change, nothing charged."""
        try:
            await interaction.edit_original_response(
                content=render.shorten_block(f"⚠️ {message}"),
                allowed_mentions=discord.AllowedMentions.none(),
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
        name = getattr(interaction.namespace, "provider", None) or self.bot.service.default_provider
        aspect = getattr(interaction.namespace, "aspect_ratio", None)
        prov = self.bot.providers.get(name)
        sizes: list[tuple[int, int]] = []
        if prov is not None and prov.limits.sizes:
            sizes = list(prov.limits.sizes)
        elif prov is not None:
            lim = prov.limits
            sizes = [
                (w, h)
                for (w, h) in COMMON_SIZES
                if (not lim.max_width or max(w, h) <= max(lim.max_width, lim.max_height))
                and (not lim.max_height or min(w, h) <= min(lim.max_width, lim.max_height))
                and min(w, h) >= lim.min_edge
            ]
        if aspect:
            try:
                aw, ah = (int(x) for x in str(aspect).split(":"))
                sizes = [(w, h) for (w, h) in sizes if abs(w / h - aw / ah) < 0.02]
            except ValueError:
                pass
        labels = [f"{w}x{h}" for w, h in sizes]
        return [
            app_commands.Choice(name=label, value=label)
            for label in labels
            if current.lower() in label
        ][:25]

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

    async def press_cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await job_store.get_job(self.bot.db, job_id)
        if job is None:
            await send_ephemeral(interaction, "That job no longer exists.")
            return
        if interaction.user.id != job.user_id and not is_moderator(
            interaction.user, interaction.channel
        ):
            await send_ephemeral(
                interaction,
                "Only the member who asked for this video (or a moderator) can cancel it.",
            )
            return
        ok = await self.bot.tracker.cancel(
            job_id,
            by=interaction.user.id,
            reason="cancelled by the requester"
            if interaction.user.id == job.user_id
            else f"cancelled by moderator {interaction.user}",
        )
        await send_ephemeral(
            interaction,
            f"Job {job_id} cancelled." if ok else f"Job {job_id} has already finished.",
        )

    async def press_again(self, interaction: discord.Interaction, job_id: int) -> None:
        job = await job_store.get_job(self.bot.db, job_id)
        if job is None:
            await send_ephemeral(interaction, "That job no longer exists.")
            return
        req = job.request
        if req.image is not None or req.first_frame is not None:
            await send_ephemeral(
                interaction,
                "Input images are not kept after a job is submitted, so **Again** works for "
                "text-to-video only. Run `/video` again with your images.",
            )
            return
        problem = self._precheck(interaction, None, None, None, None)
        if problem is not None:
            await send_ephemeral(interaction, problem)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        options = {
            "duration": req.duration,
            "resolution": req.resolution,
            "fps": req.fps,
            "seed": secrets.randbelow(2**32),
            "audio": req.audio,
        }
        await self.start_job(interaction, req.prompt, req.provider, options, {})

    async def press_delete(self, interaction: discord.Interaction, job_id: int) -> None:
        job = await job_store.get_job(self.bot.db, job_id)
        if job is None:
            await send_ephemeral(interaction, "That job no longer exists.")
            return
        is_owner = interaction.user.id == job.user_id
        if not is_owner and not is_moderator(interaction.user, interaction.channel):
            await send_ephemeral(
                interaction,
                "Only the member who asked for this video (or a moderator) can delete it.",
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            if interaction.message is not None:
                await interaction.message.delete()
        except discord.NotFound:
            pass
        except discord.HTTPException:
            await send_ephemeral(interaction, "I couldn't delete that message; please try again.")
            return
        async with self.bot.db.transaction() as conn:
            await moderation.audit(
                conn,
                guild_id=job.guild_id,
                kind="delete",
                summary=f"result of job {job_id} deleted by "
                f"{'the requester' if is_owner else 'a moderator'}",
                actor_id=interaction.user.id,
                target_id=job.user_id,
                channel_id=job.channel_id,
                job_id=job_id,
                data={"message_id": interaction.message.id if interaction.message else None},
                now=utcnow(),
            )
        self.bot.modlog.wake()
        await send_ephemeral(interaction, f"Deleted the video of job {job_id}.")

    # ----- delivery sink (called by the tracker) ---------------------------------------

    def _live(self, job: JobRecord) -> Live:
        live = self.live.get(job.id)
        if live is None:  # after a restart: no interaction, channel messages only
            live = Live(
                interaction=None, started=time.monotonic() - TOKEN_LIFETIME_S, token_ok=False
            )
            self.live[job.id] = live
        return live

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

    async def _status(
        self, job: JobRecord, text: str, *, force: bool = False, view: discord.ui.View | None = None
    ) -> None:
        """Update the status line (throttled): via the token while valid, else the channel."""
        live = self._live(job)
        now = time.monotonic()
        if not force and now - live.last_edit < PROGRESS_MIN_INTERVAL_S:
            return
        live.last_edit = now
        content = render.shorten_block(f"{live.header}\n{text}" if live.header else text)
        if live.token_valid() and live.public is not None:
            try:
                await live.public.edit(
                    content=content, view=view, allowed_mentions=discord.AllowedMentions.none()
                )
                return
            except discord.NotFound:
                live.token_ok = False
            except discord.HTTPException as exc:
                if exc.status in (401, 403, 404):
                    live.token_ok = False
                else:
                    raise
        await self._channel_status(job, live, content, view)

    async def _channel_status(
        self, job: JobRecord, live: Live, content: str, view: discord.ui.View | None
    ) -> None:
        if live.status_message is not None:
            try:
                await live.status_message.edit(content=content, view=view)
                return
            except discord.NotFound:
                live.status_message = None
        channel = await self._channel(job)
        if channel is None:
            return
        kwargs = self._reply_to(job)
        if view is not None:
            kwargs["view"] = view
        live.status_message = await channel.send(
            content, allowed_mentions=discord.AllowedMentions.none(), **kwargs
        )

    def _reply_to(self, job: JobRecord) -> dict[str, Any]:
        """send() arguments that make a channel message a reply to the job's status message."""
        if job.interaction_message_id is None or job.channel_id is None:
            return {}
        reference = discord.MessageReference(
            message_id=job.interaction_message_id,
            channel_id=job.channel_id,
            guild_id=job.guild_id,
            fail_if_not_exists=False,
        )
        return {"reference": reference, "mention_author": False}

    async def job_queued(self, job: JobRecord, position: int) -> None:
        live = self._live(job)
        await self._status(
            job,
            render.progress_line(
                state="queued",
                elapsed_s=time.monotonic() - live.started,
                progress=None,
                eta_s=None,
                position=position,
            ),
            view=cancel_view(job.id),
        )

    async def job_started(self, job: JobRecord) -> None:
        live = self._live(job)
        await self._status(
            job,
            render.progress_line(
                state="submitted",
                elapsed_s=time.monotonic() - live.started,
                progress=None,
                eta_s=None,
            ),
            force=True,
            view=cancel_view(job.id),
        )

    async def job_progress(
        self, job: JobRecord, progress: float | None, eta_seconds: float | None
    ) -> None:
        live = self._live(job)
        await self._status(
            job,
            render.progress_line(
                state="rendering",
                elapsed_s=time.monotonic() - live.started,
                progress=progress,
                eta_s=eta_seconds,
            ),
            view=cancel_view(job.id),
        )

    async def job_completed(self, job: JobRecord, clip: Path) -> DeliveryReceipt:
        live = self._live(job)
        limit = self._upload_limit(job, live)
        fitted = clip.with_suffix(".fit.mp4")
        try:
            original_size = await _to_thread(os.path.getsize, clip)
            info = await _to_thread(media.fit_to_size, clip, fitted, limit)
            reencoded = info.size_bytes != original_size
            path = fitted
            content = render.result_text(
                job.request,
                user_id=job.user_id,
                job_id=job.id,
                cost_usd=job.cost_usd,
                reencoded=reencoded,
            )
            message = await self._post_result(job, live, path, content)
        except media.MediaError as exc:
            await self._status(job, f"❌ {exc.message}", force=True, view=None)
            raise
        finally:
            fitted.unlink(missing_ok=True)
        await self._status(job, "✅ Done — see the video below.", force=True, view=None)
        self.live.pop(job.id, None)
        return DeliveryReceipt(channel_id=message.channel.id, message_id=message.id)

    def _upload_limit(self, job: JobRecord, live: Live) -> int:
        if live.token_valid() and live.interaction is not None:
            return int(live.interaction.filesize_limit)
        guild = self.bot.get_guild(job.guild_id) if job.guild_id else None
        return int(guild.filesize_limit) if guild is not None else 10 * 1024 * 1024

    async def _post_result(
        self, job: JobRecord, live: Live, path: Path, content: str
    ) -> discord.Message:
        mentions = discord.AllowedMentions(
            everyone=False, roles=False, users=[discord.Object(job.user_id)]
        )
        filename = f"ltx-job-{job.id}.mp4"
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
                if exc.status == 413:
                    raise media.MediaError(
                        "The clip is too large for this server's upload limit."
                    ) from exc
                if exc.status not in (401, 403, 404):
                    raise
                live.token_ok = False
        channel = await self._channel(job)
        if channel is None:
            raise media.MediaError("The channel for this job is gone.")
        try:
            return await channel.send(
                content,
                file=discord.File(path, filename=filename),
                view=result_view(job.id),
                allowed_mentions=mentions,
                **self._reply_to(job),
            )
        except discord.HTTPException as exc:
            if exc.status == 413:
                raise media.MediaError(
                    "The clip is too large for this server's upload limit."
                ) from exc
            raise

    async def job_ended(self, job: JobRecord, outcome: str, reason: str) -> None:
        live = self._live(job)
        text = render.ended_text(
            job_id=job.id, outcome=outcome, reason=reason, refunded=job.guild_id is not None
        )
        self.live.pop(job.id, None)
        if live.token_valid() and live.public is not None:
            await self._status(job, text, force=True, view=None)
            return
        channel = await self._channel(job)
        if channel is None:
            return
        await channel.send(
            f"<@{job.user_id}> {text}",
            allowed_mentions=discord.AllowedMentions(
                everyone=False, roles=False, users=[discord.Object(job.user_id)]
            ),
            **self._reply_to(job),
        )


async def _to_thread(func: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(func, *args)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(VideoCog(bot))  # type: ignore[arg-type]
