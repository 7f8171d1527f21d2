"""`/video` and its buttons. Thin: parse the interaction, call bot/, render the answer.

Flow of one job, as the member sees it:

1. Cheap local checks (channel permissions, option combination, attachment size,
   resolution format) answer ephemerally at once; otherwise the command is deferred
   (ephemeral "thinking") before any network or disk work.
2. Attachments are downloaded and checked by their bytes, the request is negotiated and
   the job admitted (job row + quota reservation) by `bot.jobs.service`.
3. The deferred answer becomes the private summary (settings, adjustments, cost, allowance
   left) and a public follow-up shows the job's status with a Cancel button
   (`cogs/video/status.py`).
4. The tracker calls back (`cogs/video/delivery.py`): the clip is posted as a plain
   attachment with Again/Delete buttons (`cogs/video/buttons.py`), pinging only the requester.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot import media
from bot.db import utcnow
from bot.jobs import SourceMessage
from bot.jobs.failover import Plan
from bot.jobs.service import NoProviderAvailable, Requester, RequestRefused
from bot.limits import CLIP_SECONDS
from bot.providers.base import MAX_PROMPT_CHARS, EditSpec
from cogs.ui import text as render
from cogs.ui.failover import no_provider_text, switch_line
from cogs.video.buttons import JobButton, cancel_view
from cogs.video.common import NO_MENTIONS, allowance_left, requester, send_ephemeral
from cogs.video.delivery import ClipDelivery
from cogs.video.edits import EditFlow
from cogs.video.inputs import attachment_problem, save_input
from cogs.video.offer import OFFER_TIMEOUT, offer_alternative
from cogs.video.presses import ResultPresses
from cogs.video.safety import HoldButton
from cogs.video.status import Live, StatusBoard

if TYPE_CHECKING:
    from bot.client import VideoBot

log = logging.getLogger(__name__)
T = TypeVar("T")

PROMPT_MAX = 2000  # what /video accepts (providers take up to 5000; echo is shortened)
assert PROMPT_MAX <= MAX_PROMPT_CHARS
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


def missing_permissions(interaction: discord.Interaction) -> list[str]:
    """What the bot lacks in the interaction's channel to post progress and the clip."""
    perms = interaction.app_permissions
    in_thread = isinstance(interaction.channel, discord.Thread)
    send = "send_messages_in_threads" if in_thread else "send_messages"
    needed = ("view_channel", send, "attach_files", "embed_links", "read_message_history")
    return [PERMISSION_NAMES[name] for name in needed if not getattr(perms, name)]


def token_started(interaction: discord.Interaction) -> float:
    """time.monotonic() of the interaction's creation (its token's clock), from its snowflake
    time; clock skew is clamped (a token never counts as more than a minute old here)."""
    age = (utcnow() - interaction.created_at).total_seconds()
    return time.monotonic() - min(max(age, 0.0), 60.0)


class VideoCog(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.status = StatusBoard(bot)
        self.delivery = ClipDelivery(bot, self.status)
        self.offer_timeout = OFFER_TIMEOUT  # seconds an alternative provider is offered
        self.edits = EditFlow(self)
        self.presses = ResultPresses(self)
        if not any(p.limits.supports_soundtrack for p in bot.providers.values()):
            # Offered only when a configured provider makes clips to a soundtrack: the
            # option leaves the command's schema (discord.py has no public remover).
            self.video._params.pop("soundtrack", None)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(JobButton, HoldButton)
        self.bot.delivery.target = self.delivery

    async def cog_unload(self) -> None:
        if self.bot.delivery.target is self.delivery:
            self.bot.delivery.target = None
        self.bot.remove_dynamic_items(JobButton, HoldButton)
        await self.status.shutdown()

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
        soundtrack="Sound file (2–20 s: MP3, WAV, OGG, FLAC, M4A) the clip is made to",
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
        duration: app_commands.Range[int, int(CLIP_SECONDS.low), int(CLIP_SECONDS.high)]
        | None = None,
        resolution: str | None = None,
        aspect_ratio: app_commands.Choice[str] | None = None,
        fps: app_commands.Choice[int] | None = None,
        provider: str | None = None,
        seed: app_commands.Range[int, 0, 4294967295] | None = None,
        audio: bool | None = None,
        soundtrack: discord.Attachment | None = None,
    ) -> None:
        # Cheap local checks answer at once (that is the acknowledgement); everything that
        # touches the network or disk happens after defer().
        attachments = {
            "image": image,
            "first_frame": first_frame,
            "last_frame": last_frame,
            "soundtrack": soundtrack,
        }
        problem = self.precheck(interaction, attachments, resolution)
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

    def precheck(
        self,
        interaction: discord.Interaction,
        attachments: Mapping[str, discord.Attachment | None],
        resolution: str | None,
    ) -> str | None:
        """A member-facing problem found without I/O, or None."""
        if interaction.guild_id is None:
            return "`/video` works in servers only."
        self.delivery.upload_limits[interaction.guild_id] = int(interaction.filesize_limit)
        missing = missing_permissions(interaction)
        if missing:
            return render.missing_permissions_text(missing)
        return attachment_problem(attachments, resolution)

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
        *,
        source: SourceMessage | None = None,
        edit: Mapping[str, Any] | None = None,
    ) -> None:
        """After defer: download inputs, validate, moderate, choose the provider (failover:
        `bot.jobs.failover`), then admit (or first offer the alternative) and show status.

        Shared by `/video`, its Again button and Animate (`source`: the message the images
        came from, kept with the job and named in its audit entry). `edit`: the EditSpec
        fields of an Extend / Retake; its clip is `inputs["source"]`."""
        service = self.bot.service
        who = requester(interaction)
        started = token_started(interaction)
        input_dir = service.new_input_dir() if inputs else None
        options = {**options, "seed": self._seed_for(provider, options.get("seed"))}

        async def plan() -> Plan:
            saved: dict[str, Any] = {}
            for name, given in inputs.items():
                assert input_dir is not None
                data = given if isinstance(given, bytes) else await given.read()
                saved[name] = await asyncio.to_thread(save_input, name, data, input_dir)
            if edit is not None:
                saved["edit"] = EditSpec(source=saved.pop("source"), **edit)
            request = service.build_request(prompt=prompt, provider=provider, **options, **saved)
            return await service.plan(who, request)

        planned = await self._guarded(interaction, input_dir, plan())
        if planned is None:
            return
        if planned.needs_consent:
            await offer_alternative(self, interaction, who, planned, input_dir, started, source)
            return
        await self.admit_and_show(interaction, who, planned, input_dir, started, source)

    async def admit_and_show(
        self,
        interaction: discord.Interaction,
        who: Requester,
        plan: Plan,
        input_dir: Path | None,
        started: float,
        source: SourceMessage | None = None,
    ) -> None:
        """Reserve and enqueue the planned request, then the summary and the public status."""
        admit = self.bot.service.admit_keeping_inputs(
            who, plan.request, input_dir=input_dir, source=source
        )
        admitted = await self._guarded(interaction, input_dir, admit)
        if admitted is None:
            return
        job_id, req = admitted.job_id, admitted.request
        # Registered before any await, so tracker callbacks wait for the status message.
        live = Live(
            interaction=interaction,
            started=started,
            header=render.public_header(req, job_id=job_id, user_id=who.user_id),
        )
        self.status.register(job_id, live)
        try:
            await self._show_started(interaction, live, job_id, who, plan)
        except Exception:
            log.exception("job %s: showing its start failed; it runs on", job_id)
        finally:
            live.ready.set()
        if admitted.note is not None:  # admitted, but the hand-over went wrong: it still runs
            try:
                await interaction.followup.send(
                    admitted.note, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
            except discord.HTTPException:
                log.warning("job %s: could not show its hand-over note", job_id)

    async def _guarded(
        self, interaction: discord.Interaction, input_dir: Path | None, step: Awaitable[T]
    ) -> T | None:
        """Run a step that may refuse; on any refusal or error the inputs go, the member is
        told what to change (nothing charged) and None is returned."""
        try:
            return await step
        except NoProviderAvailable as exc:
            message = no_provider_text(exc.found)
        except (RequestRefused, media.MediaError) as exc:
            message = exc.message
        except discord.HTTPException:
            message = "I couldn't download your attachment from Discord; attach it again and retry."
        except Exception:
            log.exception("starting a job failed")
            message = "Something went wrong on my side; nothing was charged. Try again."
        self.bot.service.discard_inputs(input_dir)
        await self.refuse(interaction, message)
        return None

    async def _show_started(
        self, interaction: discord.Interaction, live: Live, job_id: int, who: Requester, plan: Plan
    ) -> None:
        """The private summary (saying when another provider makes it), then the public
        status message with its Cancel button."""
        job = await self.bot.service.job(job_id)
        assert job is not None
        left = await allowance_left(self.bot, who)
        live.line = self._queued_line(job_id, live)
        content = render.summary(job.request, job_id=job_id, allowance_left=left)
        if plan.switch is not None:
            content = render.shorten_block(f"{switch_line(plan.switch, job.provider)}\n{content}")
        try:
            await interaction.edit_original_response(
                content=content, allowed_mentions=NO_MENTIONS, view=None
            )
        except discord.HTTPException:
            # A follow-up now would replace the private "thinking" message (and stay
            # private): show the status in the channel instead.
            log.warning("job %s: could not show the private summary; using the channel", job_id)
            live.token_ok = False
            await self.status.write(job, live, live.line, final=False)
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
            await self.status.write(job, live, live.line, final=False)
            return
        live.last_edit = time.monotonic()
        live.public_id = live.public.id
        await self.bot.service.remember_status_message(job_id, live.public.id)

    def _queued_line(self, job_id: int, live: Live) -> str:
        position = self.bot.service.queue_position(job_id)
        state = "waiting for the video service" if position is None else "queued"
        return render.progress_line(state=state, elapsed_s=live.elapsed(), position=position)

    async def refuse(self, interaction: discord.Interaction, message: str) -> None:
        """Answer in the (ephemeral) deferred response: what to change, nothing charged."""
        try:
            await interaction.edit_original_response(
                content=render.shorten_block(f"⚠️ {message}"),
                allowed_mentions=NO_MENTIONS,
                view=None,
            )
        except discord.HTTPException:
            log.warning("could not tell interaction %s why it was refused", interaction.id)

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
