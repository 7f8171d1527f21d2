"""`ltx-discord-bot generate`: one job through the bot's own validation, service and tracker.

It uses a private temporary database, so it never competes with a running bot's tracker
for the jobs in the bot's database, and it is quota-free (no guild, no allowance).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bot.config import Settings
from bot.db import Database
from bot.jobs.service import Requester, RequestRefused, VideoService
from bot.jobs.tracker import DeliveryReceipt, JobTracker, tracker_settings_from
from bot.media import MediaError, probe, save_input_image
from bot.providers.registry import build_providers, make_http_client
from bot.store.jobs import JobRecord

CLI_USER = 0


class CliSink:
    """Prints one progress line and copies the finished clip to `--out`."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.done = asyncio.Event()
        self.outcome: str | None = None
        self.reason = ""
        self.started = time.monotonic()

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r[{elapsed:5.1f}s] {text}".ljust(70))
        sys.stderr.flush()

    async def job_queued(self, job: JobRecord, position: int) -> None:
        self._line(f"job {job.id}: queued (position {position})")

    async def job_started(self, job: JobRecord) -> None:
        self._line(f"job {job.id}: submitted to {job.provider}")

    async def job_progress(
        self, job: JobRecord, progress: float | None, eta_seconds: float | None
    ) -> None:
        pct = f"{progress * 100:3.0f}%" if progress is not None else "running"
        eta = f", about {eta_seconds:.0f}s left" if eta_seconds is not None else ""
        self._line(f"job {job.id}: {pct}{eta}")

    async def job_completed(
        self, job: JobRecord, clip: Path, *, maybe_posted: bool
    ) -> DeliveryReceipt:
        # Copying the clip again is harmless: a file, not a message.
        self.out.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, clip, self.out)
        self._line(f"job {job.id}: done")
        sys.stderr.write("\n")
        self.outcome = "delivered"
        self.done.set()
        return DeliveryReceipt(channel_id=None, message_id=None)

    async def job_notice(self, job: JobRecord, text: str) -> None:
        sys.stderr.write(f"\njob {job.id}: {text}\n")

    async def job_ended(self, job: JobRecord, outcome: str, reason: str) -> None:
        sys.stderr.write("\n")
        self.outcome = outcome
        self.reason = reason
        self.done.set()


async def generate(settings: Settings, args: argparse.Namespace) -> int:
    out: Path = args.out
    with tempfile.TemporaryDirectory(prefix="ltx-generate-") as tmp:
        work = Path(tmp)
        db = await Database.open(work / "generate.db")
        await db.migrate()
        client = make_http_client()
        providers = build_providers(settings, client, work)
        sink = CliSink(out)
        tracker = JobTracker(
            db,
            providers,
            data_dir=work,
            sink=sink,
            settings=tracker_settings_from(settings, providers),
        )
        service = VideoService(
            db,
            providers,
            tracker,
            data_dir=work,
            default_provider=args.provider or settings.effective_default_provider,
            default_quota_seconds=settings.quota_seconds_per_day,
            max_active_per_member=settings.max_active_jobs_per_member,
        )
        await tracker.start()
        try:
            input_dir = service.new_input_dir()
            images = {}
            for option in ("image", "first_frame", "last_frame"):
                path: Path | None = getattr(args, option)
                if path is None:
                    continue
                if not await asyncio.to_thread(path.is_file):
                    print(
                        f"error: --{option.replace('_', '-')}: no such file {path}", file=sys.stderr
                    )
                    return 2
                data = await asyncio.to_thread(path.read_bytes)
                images[option] = save_input_image(data, input_dir, option)
            request = service.build_request(
                prompt=args.prompt,
                provider=args.provider,
                duration=args.duration,
                resolution=args.resolution,
                aspect_ratio=args.aspect_ratio,
                fps=args.fps,
                seed=args.seed,
                audio=not args.no_audio,
                **images,
            )
            who = Requester(user_id=CLI_USER)
            negotiated = await service.prepare(who, request)
            print(
                f"{negotiated.mode.value} on {negotiated.provider} ({negotiated.model}): "
                f"{negotiated.duration}s {negotiated.resolution} {negotiated.fps}fps, "
                f"~${negotiated.cost_usd:.2f}",
                file=sys.stderr,
            )
            for adj in negotiated.adjustments:
                print(f"  adjusted: {adj.describe()}", file=sys.stderr)
            admitted = await service.admit(who, negotiated, input_dir=input_dir)
            if admitted.note is not None:
                print(f"warning: {admitted.note}", file=sys.stderr)
            await sink.done.wait()
        except (RequestRefused, MediaError) as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        finally:
            await tracker.stop()
            for provider in providers.values():
                await provider.aclose()
            await client.aclose()
            await db.close()
    if sink.outcome != "delivered":
        print(f"error: job {sink.outcome}: {sink.reason}", file=sys.stderr)
        return 1
    info = await asyncio.to_thread(probe, out)
    print(
        f"wrote {out} ({info.size_bytes / 1e6:.1f} MB, {info.duration_s:.2f}s, "
        f"{info.width}x{info.height}, {info.fps:g} fps, audio: {'yes' if info.has_audio else 'no'})"
    )
    return 0
