"""Kept input images (issue 13 item 7): a byte cap, pruning on a timer, a sweep at start of
input folders orphaned by a crash, and the copy for "Again" made before the tracker can
take the job."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from bot.jobs import files as files_mod
from bot.jobs.files import JobFiles
from bot.providers.base import InputImage, Mode, NegotiatedRequest


def image_request(path: Path) -> NegotiatedRequest:
    return NegotiatedRequest(
        prompt="a kite",
        provider="fake",
        model="m",
        mode=Mode.IMAGE,
        duration=4,
        width=512,
        height=512,
        fps=25,
        cost_usd=0.1,
        image=InputImage(path=path, mime="image/png", width=512, height=512, sha256="0" * 64),
    )


def kept_job(files: JobFiles, tmp_path: Path, job_id: int, size: int, age: float) -> Path:
    src = tmp_path / f"src-{job_id}.png"
    src.write_bytes(b"x" * size)
    staged = files.stage_kept_inputs(image_request(src))
    assert staged is not None
    files.commit_kept_inputs(staged, job_id)
    dest = files.kept_dir / str(job_id)
    stamp = time.time() - age
    os.utime(dest, (stamp, stamp))
    return dest


def test_kept_inputs_are_capped_in_bytes_oldest_first(tmp_path: Path) -> None:
    files = JobFiles(tmp_path / "data", kept_max_bytes=2_500)
    for job_id, age in ((1, 300), (2, 200), (3, 100)):
        kept_job(files, tmp_path, job_id, 1_000, age)
    files.prune_kept_inputs()
    assert sorted(p.name for p in files.kept_dir.iterdir()) == ["2", "3"]
    assert files.kept_inputs(1) is None and files.kept_inputs(3) == {"image": b"x" * 1_000}


def test_the_copy_for_again_does_not_need_the_inputs_after_admission(tmp_path: Path) -> None:
    """Staged before admission: the tracker removing the inputs after submit cannot race."""
    files = JobFiles(tmp_path / "data")
    input_dir = files.new_input_dir()
    (input_dir / "image").write_bytes(b"png")
    staged = files.stage_kept_inputs(image_request(input_dir / "image"))
    assert staged is not None
    files.remove_dir(input_dir)  # what the tracker does once the provider accepted it
    files.commit_kept_inputs(staged, 7)
    assert files.kept_inputs(7) == {"image": b"png"}
    assert not staged.exists()


def test_sweep_at_start_removes_orphaned_inputs_and_staged_copies(tmp_path: Path) -> None:
    files = JobFiles(tmp_path / "data")
    active = files.new_input_dir()
    orphan = files.new_input_dir()
    (orphan / "image").write_bytes(b"lost in a crash")
    src = tmp_path / "src.png"
    src.write_bytes(b"png")
    staged = files.stage_kept_inputs(image_request(src))
    assert staged is not None
    old = kept_job(files, tmp_path, 1, 10, files_mod.KEPT_INPUTS_SECONDS + 60)
    fresh = kept_job(files, tmp_path, 2, 10, 60)
    files.sweep(active_input_dirs=[active])
    assert active.is_dir() and not orphan.exists() and not staged.exists()
    assert not old.exists() and fresh.is_dir()


def test_a_folder_outside_the_data_directory_is_never_removed(tmp_path: Path) -> None:
    files = JobFiles(tmp_path / "data")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    files.remove_dir(outside)
    files.remove_file(outside / "x")
    files.sweep(active_input_dirs=[outside])
    assert outside.is_dir()


async def test_kept_inputs_are_pruned_on_a_timer(tmp_path: Path) -> None:
    """No new image job needed: the housekeeping timer prunes expired copies."""
    files = JobFiles(tmp_path / "data")
    old = kept_job(files, tmp_path, 1, 10, files_mod.KEPT_INPUTS_SECONDS + 60)
    task = asyncio.create_task(files.prune_every(0.01))
    try:
        for _ in range(200):
            if not old.exists():
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert not old.exists()
