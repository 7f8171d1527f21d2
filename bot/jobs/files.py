"""Every file a job owns under `data_dir`: input images, clips, inputs kept for "Again", and
the poster frame waiting for the mod-log.

Inputs stay in the job's `input_dir` until the provider accepts the job; clips are
downloaded to `clips/<id>.mp4.part`, renamed when complete and removed after delivery or
failure; `clean_clips` removes leftovers at start.

Copies for "Again" are staged in `kept-inputs/.staged-<random>` *before* the job is
admitted (the tracker removes a job's inputs as soon as the provider accepts it, which a
fast provider does at once), then renamed to `kept-inputs/<id>`. They live
`KEPT_INPUTS_SECONDS`, and all of them together at most `kept_max_bytes` (oldest go
first); `prune_every` prunes on a timer and `sweep` at start also removes input folders
and staged copies orphaned by a crash.

A delivered clip's poster frame (`posters/<id>.jpg`) is written before the generation's
audit entry is committed and waits there for the mod-log worker, which may post after the
clip is gone: the worker removes it once the entry is posted or dropped, and
`sweep_posters` removes any left behind (no entry queued for it, e.g. no log channel).

All methods block (run them in a thread from async code), except `prune_every`. Nothing is
removed except through `_inside`, the one path check: only inside `data_dir`, never
`data_dir` itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from collections.abc import Collection, Iterable
from pathlib import Path

from bot.providers.base import NegotiatedRequest
from bot.store.jobs import JobRecord

log = logging.getLogger(__name__)

IMAGE_OPTIONS = ("image", "first_frame", "last_frame")
# Inputs kept for "Again": the images and a soundtrack (edits re-fetch their clip instead).
KEPT_OPTIONS = (*IMAGE_OPTIONS, "soundtrack")
# Input images are kept this long after admission so "Again" can reuse them.
KEPT_INPUTS_SECONDS = 24 * 3600
# All kept copies together (3 images of up to 10 MB per job): the oldest go first.
KEPT_INPUTS_MAX_BYTES = 512 * 1024 * 1024
KEPT_PRUNE_INTERVAL_SECONDS = 600.0
_STAGED_PREFIX = ".staged-"


def file_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


class JobFiles:
    """The job folders and files under one data directory."""

    def __init__(self, data_dir: Path, *, kept_max_bytes: int = KEPT_INPUTS_MAX_BYTES) -> None:
        self.data_dir = data_dir
        self.inputs_dir = data_dir / "inputs"
        self.clips_dir = data_dir / "clips"
        self.kept_dir = data_dir / "kept-inputs"
        self.posters_dir = data_dir / "posters"
        self.kept_max_bytes = kept_max_bytes

    # ----- the one path check, and the removals that use it ----------------------------

    def _inside(self, path: Path) -> Path | None:
        """`path` resolved when it is inside the data directory (and not it), else None."""
        root = self.data_dir.resolve()
        resolved = path.resolve()
        if not resolved.is_relative_to(root) or resolved == root:
            log.warning("not removing %s: outside the data directory", path)
            return None
        return resolved

    def remove_dir(self, path: Path) -> None:
        """Remove a folder (only ever inside the data directory, never the data directory)."""
        try:
            resolved = self._inside(path)
            if resolved is not None:
                shutil.rmtree(resolved, ignore_errors=True)
        except OSError:
            log.warning("could not remove %s", path, exc_info=True)

    def remove_file(self, path: Path) -> None:
        """Remove a file (only ever inside the data directory)."""
        try:
            resolved = self._inside(path)
            if resolved is not None:
                resolved.unlink(missing_ok=True)
        except OSError:
            log.warning("could not remove %s", path, exc_info=True)

    # ----- inputs and clips --------------------------------------------------------------

    def new_input_dir(self) -> Path:
        path = self.inputs_dir / uuid.uuid4().hex
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
            self.remove_file(path)

    def clean_clips(self, active_ids: Collection[int]) -> None:
        """Remove partial downloads and clips of jobs that are no longer active."""
        if not self.clips_dir.is_dir():
            return
        for path in self.clips_dir.iterdir():
            stem = path.name.split(".", 1)[0]
            if path.name.endswith(".part") or not stem.isdigit() or int(stem) not in active_ids:
                self.remove_file(path)

    # ----- poster frames waiting for the mod-log ----------------------------------------

    def poster(self, job_id: int) -> Path:
        return self.posters_dir / f"{job_id}.jpg"

    def save_poster(self, job_id: int, data: bytes) -> Path:
        """Write the job's poster frame (atomically: a reader never sees half a file)."""
        self.posters_dir.mkdir(parents=True, exist_ok=True)
        dest = self.poster(job_id)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        except OSError:
            self.remove_file(tmp)
            raise
        return dest

    def read_poster(self, job_id: int) -> bytes | None:
        try:
            return self.poster(job_id).read_bytes()
        except OSError:
            return None

    def remove_poster(self, job_id: int) -> None:
        self.remove_file(self.poster(job_id))

    def sweep_posters(self, waiting: Collection[int], *, older_than: float = 3600.0) -> int:
        """Remove poster frames no queued mod-log entry waits for (`waiting`: job ids),
        once older than `older_than` seconds (a fresh one may belong to an entry about to
        be committed). Returns how many were removed."""
        cutoff = time.time() - older_than
        removed = 0
        for path in _entries(self.posters_dir):
            stem = path.name.split(".", 1)[0]
            if stem.isdigit() and int(stem) in waiting:
                continue
            try:
                if path.stat().st_mtime > cutoff:
                    continue
            except OSError:
                continue
            self.remove_file(path)
            removed += 1
        return removed

    def sweep(self, active_input_dirs: Iterable[Path]) -> None:
        """At start: input folders no unfinished job owns (a crash between saving the
        images and admitting the job), staged copies for "Again" of jobs never admitted,
        and kept copies past their time or the byte cap."""
        keep = set()
        for path in active_input_dirs:
            try:
                keep.add(path.resolve())
            except OSError:
                continue
        for entry in _entries(self.inputs_dir):
            if entry.resolve() not in keep:
                log.info("removing input folder %s: no unfinished job owns it", entry.name)
                self.remove_dir(entry)
        for entry in _entries(self.kept_dir):
            if entry.name.startswith(_STAGED_PREFIX):
                self.remove_dir(entry)
        self.prune_kept_inputs()

    # ----- "Again": input images kept after submission -----------------------------------

    def stage_kept_inputs(self, request: NegotiatedRequest) -> Path | None:
        """Copy a request's input images aside for "Again", before it is admitted.

        Returns the staged folder for `commit_kept_inputs` (or `discard_staged` when the
        job is not admitted); None for text-to-video.
        """
        images = {n: getattr(request, n) for n in KEPT_OPTIONS if getattr(request, n)}
        if not images:
            return None
        staged = self.kept_dir / f"{_STAGED_PREFIX}{uuid.uuid4().hex}"
        staged.mkdir(parents=True, exist_ok=True)
        try:
            for name, image in images.items():
                shutil.copyfile(image.path, staged / name)
        except OSError:
            self.remove_dir(staged)
            raise
        return staged

    def commit_kept_inputs(self, staged: Path | None, job_id: int) -> None:
        """The staged copy becomes the one kept for `job_id`; then the cap is applied."""
        if staged is None:
            return
        dest = self.kept_dir / str(job_id)
        if dest.exists():
            self.remove_dir(dest)
        os.replace(staged, dest)
        os.utime(dest)
        self.prune_kept_inputs()

    def discard_staged(self, staged: Path | None) -> None:
        if staged is not None:
            self.remove_dir(staged)

    def keep_inputs(self, job_id: int, request: NegotiatedRequest) -> bool:
        """Copy a job's input images aside for "Again" at once (stage + commit).

        Returns False for text-to-video.
        """
        staged = self.stage_kept_inputs(request)
        self.commit_kept_inputs(staged, job_id)
        return staged is not None

    def kept_inputs(self, job_id: int) -> dict[str, bytes] | None:
        """The images kept for `job_id` by option name, or None when gone."""
        src = self.kept_dir / str(job_id)
        try:
            if time.time() - src.stat().st_mtime > KEPT_INPUTS_SECONDS:
                self.remove_dir(src)
                return None
            return {p.name: p.read_bytes() for p in src.iterdir() if p.name in KEPT_OPTIONS}
        except OSError:
            return None

    def prune_kept_inputs(self) -> int:
        """Remove kept copies older than `KEPT_INPUTS_SECONDS`, then the oldest ones until
        all of them together fit in `kept_max_bytes`. Returns how many were removed."""
        cutoff = time.time() - KEPT_INPUTS_SECONDS
        kept: list[tuple[float, int, Path]] = []
        removed = 0
        for entry in _entries(self.kept_dir):
            if entry.name.startswith(_STAGED_PREFIX):
                continue  # a job being admitted; orphans are swept at start
            try:
                mtime = entry.stat().st_mtime
                size = sum(f.stat().st_size for f in entry.iterdir() if f.is_file())
            except OSError:
                continue
            if mtime < cutoff:
                self.remove_dir(entry)
                removed += 1
            else:
                kept.append((mtime, size, entry))
        total = sum(size for _, size, _ in kept)
        for _mtime, size, entry in sorted(kept, key=lambda k: (k[0], k[2].name)):
            if total <= self.kept_max_bytes:
                break
            self.remove_dir(entry)
            total -= size
            removed += 1
        return removed

    async def prune_every(self, interval: float = KEPT_PRUNE_INTERVAL_SECONDS) -> None:
        """Prune kept copies every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.prune_kept_inputs)
            except Exception:
                log.exception("pruning kept input images failed")


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []
