"""Poster frames of delivered clips: made from a real MP4, kept until the mod-log posted or
dropped the entry (over a real database and real files), swept when nothing waits for
them, and rendered as the embed image next to the input thumbnail."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from PIL import Image

from bot import moderation
from bot.db import Database, utcnow
from bot.errors import PermanentPostError
from bot.jobs.files import JobFiles
from bot.media import poster_jpeg, render_clip
from bot.moderation import AuditEntry, ModLog
from bot.store import audit as audit_store
from cogs.ui.modlog import render_entry
from tests.unit.test_moderation_modlog import CHANNEL, GUILD, Recorder, setup_channel

JPEG = b"\xff\xd8\xff\xe0 not really a frame"


async def delivered_entry(db: Database, job_id: int) -> int:
    async with db.transaction() as conn:
        return await moderation.audit(
            conn,
            guild_id=GUILD,
            kind="generation",
            summary=f"job {job_id} delivered",
            job_id=job_id,
            data={"outcome": "delivered"},
            now=utcnow(),
        )


def make_clip(path: Path) -> Path:
    render_clip(
        path, prompt="a harbour at dawn", width=320, height=256, fps=25, duration=2,
        audio=False, seed=1,
    )  # fmt: skip
    return path


def test_poster_frame_is_a_small_jpeg_of_the_clip(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    data = poster_jpeg(clip, max_edge=160)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and im.size == (160, 128)


async def test_frame_is_kept_only_with_a_log_channel_and_removed_once_posted(
    db: Database, tmp_path: Path
) -> None:
    files = JobFiles(tmp_path)
    clip = make_clip(tmp_path / "clip.mp4")
    poster = Recorder()
    modlog = ModLog(db, poster, prune_interval=None, frames=files)
    assert not await modlog.keep_frame(GUILD, 1, clip)  # no log channel: nothing to show it
    assert not files.poster(1).exists()
    await setup_channel(db)
    assert await modlog.keep_frame(GUILD, 1, clip)
    assert not await modlog.keep_frame(GUILD, 2, tmp_path / "missing.mp4")  # unreadable
    audit_id = await delivered_entry(db, 1)
    entry = await audit_store.get_entry(db, audit_id)
    assert entry is not None
    assert await modlog.attachment(entry) == files.read_poster(1)
    await modlog.run_once()
    assert (audit_id, CHANNEL) in poster.posted
    assert not files.poster(1).exists()


async def test_frame_goes_when_the_entry_is_dropped(db: Database, tmp_path: Path) -> None:
    files = JobFiles(tmp_path)
    await setup_channel(db)
    files.save_poster(5, JPEG)
    files.save_poster(6, JPEG)
    await delivered_entry(db, 5)
    permanent = Recorder(failures=100, exc=PermanentPostError("embed rejected"))
    await ModLog(db, permanent, prune_interval=None, frames=files).run_once()
    assert not files.poster(5).exists()
    await delivered_entry(db, 6)
    failing = ModLog(db, Recorder(failures=100), base_delay=0, max_attempts=2, frames=files)
    failing.prune_interval = None
    for _ in range(3):
        await failing.run_once()
    assert not files.poster(6).exists()


async def test_sweep_removes_frames_nothing_waits_for(db: Database, tmp_path: Path) -> None:
    files = JobFiles(tmp_path)
    await setup_channel(db)
    for job_id in (1, 2, 3):
        files.save_poster(job_id, JPEG)
    old = time.time() - 2 * 3600
    for job_id in (1, 2):
        os.utime(files.poster(job_id), (old, old))
    await delivered_entry(db, 2)  # queued, not posted yet: its frame stays
    removed = await ModLog(db, None, frames=files).sweep_frames()
    assert removed == 1
    assert not files.poster(1).exists()  # old, nothing waits for it
    assert files.poster(2).exists() and files.poster(3).exists()  # waited for / fresh


def test_embed_shows_the_poster_and_keeps_the_input_thumbnail() -> None:
    entry = AuditEntry(
        id=1,
        guild_id=GUILD,
        at=utcnow(),
        kind="generation",
        summary="job 1 delivered",
        job_id=1,
        data={
            "outcome": "delivered",
            "inputs": [{"name": "image", "sha256": "ab" * 8, "url": "https://cdn.example/i.png"}],
        },
    )
    with_poster = render_entry(entry, poster=True)
    assert with_poster.image.url == "attachment://poster.jpg"
    assert with_poster.thumbnail.url == "https://cdn.example/i.png"
    assert render_entry(entry).image.url is None
