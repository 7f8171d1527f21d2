"""VideoBot: wires the DB, the shared HTTP client, providers, tracker and mod-log; loads cogs."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import discord
import httpx
from discord.ext import commands

from bot import discord_api, textmatch
from bot.config import Settings
from bot.db import Database, utcnow
from bot.jobs.service import VideoService
from bot.jobs.tracker import DeliveryReceipt, DeliverySink, JobTracker, tracker_settings_from
from bot.moderation import ModLog, audit_generation
from bot.providers.base import Provider
from bot.providers.registry import build_providers, make_http_client
from bot.store import commands as command_store
from bot.store.jobs import JobRecord

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.video", "cogs.account", "cogs.admin")


class DeliveryRouter:
    """The tracker's sink: forwards to the video cog and records each outcome in the audit log.

    The tracker is built before the cogs load; while no sink is registered, calls raise so
    the tracker keeps the job and retries later instead of losing an event.
    """

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.target: DeliverySink | None = None

    def _sink(self) -> DeliverySink:
        if self.target is None:
            raise RuntimeError("no delivery sink registered yet")
        return self.target

    async def job_queued(self, job: JobRecord, position: int) -> None:
        await self._sink().job_queued(job, position)

    async def job_started(self, job: JobRecord) -> None:
        await self._sink().job_started(job)

    async def job_progress(
        self, job: JobRecord, progress: float | None, eta_seconds: float | None
    ) -> None:
        await self._sink().job_progress(job, progress, eta_seconds)

    async def job_completed(
        self, job: JobRecord, clip: Path, *, maybe_posted: bool
    ) -> DeliveryReceipt:
        receipt = await self._sink().job_completed(job, clip, maybe_posted=maybe_posted)
        try:  # the clip is still on disk: its poster frame for the mod-log entry below
            await self.bot.modlog.keep_frame(job.guild_id, job.id, clip)
        except Exception:
            log.exception("could not keep the poster frame of job %s", job.id)
        await self._audit(
            job,
            "delivered",
            None,
            receipt.channel_id,
            receipt.message_id,
        )
        return receipt

    async def job_notice(self, job: JobRecord, text: str) -> None:
        sink = self._sink()
        if hasattr(sink, "job_notice"):
            await sink.job_notice(job, text)

    async def job_ended(self, job: JobRecord, outcome: str, reason: str) -> None:
        await self._sink().job_ended(job, outcome, reason)
        await self._audit(job, outcome, reason, None, None)

    async def _audit(
        self,
        job: JobRecord,
        outcome: str,
        reason: str | None,
        channel_id: int | None,
        message_id: int | None,
    ) -> None:
        # The member already has their clip or message: an audit failure must not undo that.
        try:
            await audit_generation(
                self.bot.db,
                job,
                outcome=outcome,
                reason=reason,
                result_channel_id=channel_id,
                result_message_id=message_id,
            )
        except Exception:
            log.exception("could not write the audit entry of job %s", job.id)


def command_schema_hash(payload: list[dict[str, Any]]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class VideoBot(commands.Bot):
    """The bot. Services are created once in `setup_hook` and closed in `close`."""

    db: Database
    http_client: httpx.AsyncClient
    providers: dict[str, Provider]
    tracker: JobTracker
    service: VideoService
    modlog: ModLog

    def __init__(
        self, settings: Settings, *, auto_sync: bool = True, start_workers: bool = True
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # slash commands only: no privileged intents needed
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **_shard_options(self, settings),
        )
        self.settings = settings
        self.auto_sync = auto_sync
        self.start_workers = start_workers
        self.delivery = DeliveryRouter(self)
        self._services_ready = False
        discord_api.apply_api_base(settings.discord_api_base_url)

    async def setup_hook(self) -> None:
        settings = self.settings
        self.db = await Database.open(settings.database_target)
        await self.db.migrate()
        self.http_client = make_http_client()
        self.providers = build_providers(settings, self.http_client, settings.data_dir)
        tracker_settings = tracker_settings_from(settings, self.providers)
        self.tracker = JobTracker(
            self.db,
            self.providers,
            data_dir=settings.data_dir,
            sink=self.delivery,
            settings=tracker_settings,
        )
        self.service = VideoService(
            self.db,
            self.providers,
            self.tracker,
            data_dir=settings.data_dir,
            default_provider=settings.effective_default_provider,
            default_quota_seconds=settings.quota_seconds_per_day,
            max_active_per_member=settings.max_active_jobs_per_member,
        )
        # The admin cog attaches its Discord poster on load; frames: clips' poster images.
        self.modlog = ModLog(self.db, frames=self.service.files, owner=settings.instance)
        self._services_ready = True
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.auto_sync and self.settings.syncs_commands:  # one process: shard 0's
            await self.sync_commands(force=False)
        if self.start_workers:
            await self.service.start()
            await self.tracker.start()
            await self.modlog.start()
        log.info("ready: providers %s", ", ".join(self.providers) or "none")

    # ----- gateway URL discovery for a custom API base ------------------------------------

    async def connect(self, *, reconnect: bool = True) -> None:
        await discord_api.prepare_gateway(self)
        await super().connect(reconnect=reconnect)

    # ----- command sync ---------------------------------------------------------------

    def _sync_scope(self) -> tuple[str, discord.Object | None]:
        if self.settings.dev_guild_id:
            return f"guild:{self.settings.dev_guild_id}", discord.Object(self.settings.dev_guild_id)
        return "global", None

    def command_payload(self) -> list[dict[str, Any]]:
        _, guild = self._sync_scope()
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        commands_ = self.tree.get_commands(guild=guild)
        return sorted((cmd.to_dict(self.tree) for cmd in commands_), key=lambda c: c["name"])

    async def sync_commands(self, *, force: bool) -> bool:
        """Sync slash commands when their schema changed since the last sync (or if forced)."""
        scope, guild = self._sync_scope()
        digest = command_schema_hash(self.command_payload())
        stored = await command_store.synced_hash(self.db, scope)
        if stored == digest and not force:
            log.info("slash commands unchanged since last sync (%s); not syncing", scope)
            return False
        synced = await self.tree.sync(guild=guild)
        await command_store.record_sync(self.db, scope, digest, utcnow())
        log.info("synced %d slash commands (%s)", len(synced), scope)
        return True

    # ----- shutdown -------------------------------------------------------------------

    async def close(self) -> None:
        """Stop taking work, let the tracker finish in-flight calls, then close everything."""
        if self._services_ready:
            self._services_ready = False
            try:
                if self.start_workers:
                    await self.service.stop()
                    await self.tracker.stop()
                    await self.modlog.stop()
            finally:
                for extension in list(self.extensions):
                    try:
                        await self.unload_extension(extension)
                    except Exception:
                        log.exception("unloading %s failed", extension)
                await super().close()
                for provider in self.providers.values():
                    await provider.aclose()
                await self.http_client.aclose()
                await self.db.close()
                textmatch.default_sandbox().close()
            return
        await super().close()


class ShardedVideoBot(VideoBot, commands.AutoShardedBot):
    """The bot as one of several processes: connects only SHARD_IDS of SHARD_COUNT."""


def _shard_options(bot: discord.Client, settings: Settings) -> dict[str, Any]:
    if not isinstance(bot, discord.AutoShardedClient) or settings.shard_count is None:
        return {}
    return {"shard_ids": settings.shards, "shard_count": settings.shard_count}


def make_bot(settings: Settings, **kwargs: Any) -> VideoBot:
    """VideoBot, or with SHARD_COUNT set the AutoShardedBot for this process's shards."""
    cls = ShardedVideoBot if settings.shard_count is not None else VideoBot
    return cls(settings, **kwargs)
