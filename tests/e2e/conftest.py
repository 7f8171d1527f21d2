"""Fixtures for running the real VideoBot against the fake Discord.

* `make_bot(**settings_overrides)`: `async with make_bot() as bot:` runs a VideoBot.
* `video_bot(**settings_overrides)`: the same, yielding a `VideoHarness` with helpers for
  `/video` tests (send a command, wait for the private answer / public status / result,
  decode a posted clip, read the quota ledger). Every command it sends records its
  acknowledgement latency (INTERACTION_CREATE on the wire → callback received); the
  terminal summary prints p50/p99 over the run.
"""

# Waiting helpers take `timeout=` like asyncio.wait_for (as the fakes do).
# ruff: noqa: ASYNC109

from __future__ import annotations

import io
import statistics
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from bot.client import VideoBot
from bot.config import Settings, load_settings
from bot.media import VideoInfo, probe
from bot.store import jobs as job_store
from bot.store.jobs import JobRecord
from tests.fakes.discord_server import FakeDiscord, FakeFile, FakeInteraction, FakeMessage, World
from tests.fakes.discord_server import running_bot as _running_bot

ACK_BOUND_S = 2.0  # generous: CI machines vary; the benchmark measures the real figure
ACK_LATENCIES: list[float] = []


def bot_settings(fake: FakeDiscord, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "discord_token": fake.token,
        "discord_api_base_url": fake.api_base,
        "database_url": f"sqlite:///{tmp_path / 'data' / 'bot.db'}",
        "bytecompute_api_key": None,
        "leonardo_api_key": None,
        "simulator_enabled": True,
        "default_provider": None,
        "simulator_delay_seconds": 0.5,
        "quota_seconds_per_day": 60,
        "dev_guild_id": None,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def make_bot(fake_discord: FakeDiscord, tmp_path: Path) -> Callable[..., Any]:
    """`async with make_bot(**settings) as bot:` runs a VideoBot against the fake until exit."""

    @asynccontextmanager
    async def _make(**overrides: Any) -> AsyncIterator[VideoBot]:
        settings = bot_settings(fake_discord, tmp_path, **overrides)
        bot = VideoBot(settings)
        async with _running_bot(bot, fake_discord) as running:
            yield running

    return _make


# ----- inputs -------------------------------------------------------------------------------


def image_bytes(
    width: int = 640,
    height: int = 512,
    *,
    fmt: str = "PNG",
    color: tuple[int, int, int] = (200, 60, 40),
) -> bytes:
    """A real image made with Pillow: one colour, with a few lines away from the corners."""
    im = Image.new("RGB", (width, height), color)
    for x in range(width // 4, 3 * width // 4, max(4, width // 16)):
        im.paste(
            (255 - color[0], 255 - color[1], 255 - color[2]), (x, height // 4, x + 2, height // 2)
        )
    out = io.BytesIO()
    im.save(out, format=fmt)
    return out.getvalue()


def image_file(filename: str = "input.png", **kwargs: Any) -> FakeFile:
    fmt = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"}[
        filename.rsplit(".", 1)[-1].lower()
    ]
    content_type = "image/" + ("jpeg" if fmt == "JPEG" else fmt.lower())
    return FakeFile(filename, image_bytes(fmt=fmt, **kwargs), content_type)


# ----- the harness --------------------------------------------------------------------------


def record_ack(inter: FakeInteraction) -> float:
    latency = inter.ack_latency
    assert latency is not None, f"interaction {inter.name!r} was never acknowledged"
    ACK_LATENCIES.append(latency)
    assert latency < ACK_BOUND_S, f"acknowledged after {latency:.3f} s"
    return latency


@dataclass
class VideoHarness:
    fake: FakeDiscord
    bot: VideoBot
    tmp_path: Path

    @property
    def world(self) -> World:
        assert self.fake.world is not None
        return self.fake.world

    async def command(
        self,
        options: Mapping[str, Any] | None = None,
        *,
        name: str = "video",
        user_id: int | None = None,
        channel_id: int | None = None,
        attachments: Mapping[str, FakeFile] | None = None,
        app_permissions: int | None = None,
    ) -> FakeInteraction:
        """Send `/name options`, wait for the acknowledgement and record its latency."""
        w = self.world
        inter = await self.fake.send_slash_command(
            w.guild_id,
            channel_id or w.channel_id,
            user_id or w.user_id,
            name,
            dict(options or {}),
            attachments=attachments,
            app_permissions=app_permissions,
        )
        await inter.wait_for_callback()
        record_ack(inter)
        return inter

    async def press(
        self, message: FakeMessage, custom_id: str, user_id: int | None = None
    ) -> FakeInteraction:
        inter = await self.fake.send_component(message, custom_id, user_id or self.world.user_id)
        await inter.wait_for_callback()
        record_ack(inter)
        return inter

    async def private(self, inter: FakeInteraction, timeout: float = 10.0) -> FakeMessage:
        """The deferred ephemeral answer once it has content (summary or refusal)."""
        msg = await inter.wait_for_original(lambda m: not m.loading and bool(m.content), timeout)
        assert msg.ephemeral, "private answers must be ephemeral"
        return msg

    async def reply(self, inter: FakeInteraction, timeout: float = 10.0) -> str:
        """The ephemeral answer to a button press (deferred, then a follow-up)."""
        msg = await self.private(inter, timeout)
        return msg.content

    async def refusal(self, options: Mapping[str, Any], **kwargs: Any) -> FakeMessage:
        """Run `/video` expecting an ephemeral refusal and nothing public."""
        inter = await self.command(options, **kwargs)
        msg = await self.private(inter)
        assert not [m for m in inter.followups if not m.ephemeral], "nothing public on refusal"
        return msg

    async def status(self, inter: FakeInteraction, timeout: float = 10.0) -> FakeMessage:
        """The public status message (the first non-ephemeral follow-up)."""
        return await inter.wait_for_followup(lambda m: not m.ephemeral, timeout)

    async def result(
        self, predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 20.0
    ) -> FakeMessage:
        """The first live message in the channel carrying a clip."""
        return await self.fake.wait_for_message(
            self.world.channel_id,
            lambda m: bool(m.attachments) and (predicate is None or predicate(m)),
            timeout,
        )

    def results(self) -> list[FakeMessage]:
        return [
            m
            for m in self.fake.messages(self.world.channel_id, include_deleted=True)
            if m.attachments and m.author_id == self.fake.bot_user_id
        ]

    def clip_path(self, message: FakeMessage) -> Path:
        """The posted clip written to a file (exactly one attachment, an MP4)."""
        assert len(message.attachments) == 1
        attachment = message.attachments[0]
        assert attachment.filename.endswith(".mp4")
        path = self.tmp_path / f"posted-{message.id}.mp4"
        path.write_bytes(attachment.data)
        return path

    def clip_info(self, message: FakeMessage) -> VideoInfo:
        """Decode the posted clip with PyAV (via bot.media.probe)."""
        return probe(self.clip_path(message))

    async def jobs(self) -> list[JobRecord]:
        w = self.world
        return list(
            reversed(await job_store.list_for_user(self.bot.db, w.guild_id, w.user_id, 100))
        )

    async def job(self, job_id: int) -> JobRecord:
        record = await job_store.get_job(self.bot.db, job_id)
        assert record is not None
        return record

    async def wait_job(self, job_id: int, *statuses: str, timeout: float = 20.0) -> JobRecord:
        async def check() -> JobRecord | None:
            record = await self.job(job_id)
            return record if record.status.value in statuses else None

        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = await check()
            if found is not None:
                return found
            if loop.time() > deadline:
                raise AssertionError(f"job {job_id} never reached {statuses}")
            await asyncio.sleep(0.02)

    async def ledger(self) -> list[tuple[Any, ...]]:
        rows = await self.bot.db.fetchall(
            "SELECT job_id, kind, seconds, user_id FROM quota_ledger ORDER BY id"
        )
        return [tuple(r) for r in rows]

    async def audit(self, kind: str) -> list[Any]:
        return list(
            await self.bot.db.fetchall(
                "SELECT actor_id, target_id, job_id, summary, data_json FROM audit_log "
                "WHERE kind = ? ORDER BY id",
                (kind,),
            )
        )

    def submits(self) -> int:
        return self.bot.tracker.stats["submit"]

    def attachment_downloads(self) -> int:
        return sum(1 for r in self.fake.requests if r.path.startswith("/attachments/"))


@pytest.fixture
def video_bot(make_bot: Callable[..., Any], fake_discord: FakeDiscord, tmp_path: Path) -> Any:
    """`async with video_bot(**settings) as v:` → a VideoHarness around a running bot."""

    @asynccontextmanager
    async def _make(*, progress_interval: float = 0.2, **overrides: Any) -> AsyncIterator[Any]:
        overrides.setdefault("simulator_delay_seconds", 0.4)
        async with make_bot(**overrides) as bot:
            cog = bot.get_cog("VideoCog")
            assert cog is not None
            cog.status.progress_interval = progress_interval  # type: ignore[attr-defined]
            yield VideoHarness(fake_discord, bot, tmp_path)

    return _make


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if len(ACK_LATENCIES) < 2:
        return
    ordered = sorted(ACK_LATENCIES)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    terminalreporter.write_line(
        f"/video e2e acknowledgement latency: n={len(ordered)} "
        f"p50={statistics.median(ordered) * 1000:.1f} ms p99={p99 * 1000:.1f} ms "
        f"max={ordered[-1] * 1000:.1f} ms"
    )


def corner_colors(path: Path, box: int = 24) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Mean RGB of the top-left `box`×`box` corner of the first and last decoded frames."""
    import av

    first: tuple[int, ...] | None = None
    last: tuple[int, ...] = ()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            corner = frame.to_image().crop((0, 0, box, box)).convert("RGB")
            mean = tuple(round(v) for v in ImageStat.Stat(corner).mean)
            if first is None:
                first = mean
            last = mean
    assert first is not None, "no video frames"
    return first, last


def near(color: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected, strict=True))
