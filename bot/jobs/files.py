"""Every file a job owns under `data_dir`: input images, clips, and inputs kept for "Again".

Inputs stay in the job's `input_dir` until the provider accepts the job; clips are
downloaded to `clips/<id>.mp4.part`, renamed when complete and removed after delivery or
failure; `clean_clips` removes leftovers at start. Copies for "Again" live in
`kept-inputs/<id>` for `KEPT_INPUTS_SECONDS`.

All methods block (run them in a thread from async code). Folders are removed only by
`remove_dir`, which refuses anything not inside `data_dir`.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Collection
from pathlib import Path

from bot.providers.base import NegotiatedRequest
from bot.store.jobs import JobRecord

log = logging.getLogger(__name__)

IMAGE_OPTIONS = ("image", "first_frame", "last_frame")
# Input images are kept this long after admission so "Again" can reuse them.
KEPT_INPUTS_SECONDS = 24 * 3600


def file_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


class JobFiles:
    """The job folders and files under one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.clips_dir = data_dir / "clips"
        self.kept_dir = data_dir / "kept-inputs"

    # ----- the one removal of a folder -------------------------------------------------

    def remove_dir(self, path: Path) -> None:
        """Remove a folder (only ever inside the data directory, never the data directory)."""
        try:
            root = self.data_dir.resolve()
            resolved = path.resolve()
            if not resolved.is_relative_to(root) or resolved == root:
                log.warning("not removing %s: outside the data directory", path)
                return
            shutil.rmtree(resolved, ignore_errors=True)
        except OSError:
            log.warning("could not remove %s", path, exc_info=True)

    # ----- inputs and clips --------------------------------------------------------------

    def new_input_dir(self) -> Path:
        path = self.data_dir / "inputs" / uuid.uuid4().hex
        path.mkdir(parents=True, exist_ok=True)
        return path

    def discard_inputs(self, path: Path | None) -> None:
        if path is not None:
            self.remove_dir(path)

    def clip(self, job_id: int) -> Path:
        return self.clips_dir / f"{job_id}.mp4"

    def partial_clip(self, job_id: int) -> Path:
        return self.clips_dir / f"{job_id}.mp4.part"

    def remove_job_files(self, job: JobRecord) -> None:
        """A job is over (or its clip must go): its inputs, clip and partial clip."""
        self.discard_inputs(job.input_dir)
        for path in (self.clip(job.id), self.partial_clip(job.id)):
            path.unlink(missing_ok=True)

    def clean_clips(self, active_ids: Collection[int]) -> None:
        """Remove partial downloads and clips of jobs that are no longer active."""
        if not self.clips_dir.is_dir():
            return
        for path in self.clips_dir.iterdir():
            stem = path.name.split(".", 1)[0]
            if path.name.endswith(".part") or not stem.isdigit() or int(stem) not in active_ids:
                path.unlink(missing_ok=True)

    # ----- "Again": input images kept after submission -----------------------------------

    def keep_inputs(self, job_id: int, request: NegotiatedRequest) -> bool:
        """Copy a job's input images aside for "Again".

        The tracker removes a job's inputs once submitted; these copies live
        `KEPT_INPUTS_SECONDS` and are pruned here. Returns False for text-to-video.
        """
        images = {n: getattr(request, n) for n in IMAGE_OPTIONS if getattr(request, n)}
        if not images:
            return False
        self.prune_kept_inputs()
        dest = self.kept_dir / str(job_id)
        dest.mkdir(parents=True, exist_ok=True)
        for name, image in images.items():
            shutil.copyfile(image.path, dest / name)
        return True

    def kept_inputs(self, job_id: int) -> dict[str, bytes] | None:
        """The images kept for `job_id` by option name, or None when gone."""
        src = self.kept_dir / str(job_id)
        try:
            if time.time() - src.stat().st_mtime > KEPT_INPUTS_SECONDS:
                self.remove_dir(src)
                return None
            return {p.name: p.read_bytes() for p in src.iterdir() if p.name in IMAGE_OPTIONS}
        except OSError:
            return None

    def prune_kept_inputs(self) -> int:
        """Remove kept input images older than `KEPT_INPUTS_SECONDS`."""
        cutoff = time.time() - KEPT_INPUTS_SECONDS
        removed = 0
        try:
            entries = list(self.kept_dir.iterdir())
        except OSError:
            return 0
        for entry in entries:
            try:
                if entry.stat().st_mtime < cutoff:
                    self.remove_dir(entry)
                    removed += 1
            except OSError:
                continue
        return removed
