"""The offline nudity classifier: NudeNet's bundled ONNX detector on onnxruntime (CPU).

Why NudeNet (`pip install -e '.[safety]'`): its 12 MB model (`320n.onnx`) ships inside the
PyPI package and is loaded from there, so nothing is fetched at run time (checked with the
network cut off: see README, "Output safety check"); it runs on onnxruntime's CPU provider in
about 0.1 s per frame. The session is limited to one thread so a check never takes both
cores from the event loop and the encoder.

NudeNet is a detector: it finds body parts (faces and feet too) with a confidence each.
The clip's score is the highest confidence of an *exposed explicit* part over the sampled
frames (`EXPLICIT_LABELS`); covered parts, faces, feet, bellies and armpits do not count.
Detections under 0.2 are not reported by NudeNet and count as 0.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

EXPLICIT_LABELS: frozenset[str] = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
MODEL_FILE = "320n.onnx"


class ClassifierUnavailableError(RuntimeError):
    """The optional safety extra is not installed (or its model file is missing)."""


class Classifier(Protocol):
    name: str

    def score_frame(self, frame: Any) -> dict[str, float]:
        """Highest confidence per explicit label found in one BGR frame (empty: none)."""
        ...


@dataclass(frozen=True)
class ClipScore:
    """The classifier's verdict on one clip."""

    score: float  # max over frames and explicit labels, 0..1
    labels: dict[str, float] = field(default_factory=dict)  # label -> max confidence
    frames: int = 0
    cpu_seconds: float = 0.0  # process CPU time of scoring (all threads)


class NudeNetClassifier:
    """NudeNet's detector with a single-threaded onnxruntime CPU session."""

    name = "nudenet"

    def __init__(self) -> None:
        try:
            import nudenet
            import onnxruntime
        except ImportError as exc:  # the optional extra is missing
            raise ClassifierUnavailableError(
                f"the safety classifier is not installed ({exc.name}); "
                "install it with: pip install 'ltx-discord-bot[safety]'"
            ) from None
        model = Path(nudenet.__file__).with_name(MODEL_FILE)
        if not model.is_file():
            raise ClassifierUnavailableError(f"NudeNet's bundled model {MODEL_FILE} is missing")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._detector = nudenet.NudeDetector.__new__(nudenet.NudeDetector)
        self._detector.onnx_session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._detector.input_width = self._detector.input_height = 320
        self._detector.input_name = self._detector.onnx_session.get_inputs()[0].name
        self.version = getattr(nudenet, "__version__", "") or _dist_version("nudenet")
        self._lock = threading.Lock()  # one onnxruntime run at a time

    def score_frame(self, frame: Any) -> dict[str, float]:
        with self._lock:
            detections = self._detector.detect(frame)
        found: dict[str, float] = {}
        for item in detections:
            label, confidence = str(item.get("class")), float(item.get("score", 0.0))
            if label in EXPLICIT_LABELS and confidence > found.get(label, 0.0):
                found[label] = round(confidence, 4)
        return found


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


_loaded: Classifier | None = None
_load_error: str | None = None
_load_lock = threading.Lock()


def load_classifier() -> Classifier:
    """The process's classifier, loaded once (blocking: call it off the event loop).

    Raises ClassifierUnavailableError when the safety extra is not installed."""
    global _loaded, _load_error
    with _load_lock:
        if _loaded is not None:
            return _loaded
        if _load_error is not None:
            raise ClassifierUnavailableError(_load_error)
        try:
            _loaded = NudeNetClassifier()
        except ClassifierUnavailableError as exc:
            _load_error = str(exc)
            raise
        return _loaded


def classifier_status() -> tuple[bool, str]:
    """(available, one line for `ltx-discord-bot check`): loads the model to be sure."""
    try:
        started = time.perf_counter()
        classifier = load_classifier()
    except ClassifierUnavailableError as exc:
        return False, str(exc)
    except Exception as exc:  # a broken install: say so instead of crashing `check`
        return False, f"the safety classifier failed to load: {type(exc).__name__}: {exc}"
    version = getattr(classifier, "version", "")
    took = time.perf_counter() - started
    return True, f"{classifier.name} {version} (bundled model, CPU) loaded in {took:.1f} s"


def score_frames(classifier: Classifier, frames: list[Any]) -> ClipScore:
    """Score every frame; the clip's score is the highest explicit-label confidence."""
    started = time.process_time()
    labels: dict[str, float] = {}
    for frame in frames:
        for label, confidence in classifier.score_frame(frame).items():
            labels[label] = max(confidence, labels.get(label, 0.0))
    ordered = dict(sorted(labels.items(), key=lambda kv: -kv[1]))
    return ClipScore(
        score=max(ordered.values(), default=0.0),
        labels=ordered,
        frames=len(frames),
        cpu_seconds=time.process_time() - started,
    )
