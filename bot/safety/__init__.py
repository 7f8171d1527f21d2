"""The output safety check: a look at what a provider made before it is posted.

- `classifier`: NudeNet's bundled ONNX model on onnxruntime (CPU, offline), frame scores;
- `policy`: modes off / spoiler / hold, the threshold, defaults, the admin setter;
- `review`: the check of one clip (sampled frames, provider flag, recorded once) and a
  moderator's Release / Discard of a held clip.

The optional extra `pip install -e '.[safety]'` brings the classifier; without it only the
provider's own flag (Leonardo's `nsfw`) counts, and `ltx-discord-bot check` says so.
"""

from bot.safety.classifier import (
    EXPLICIT_LABELS,
    ClassifierUnavailableError,
    ClipScore,
    classifier_status,
    load_classifier,
    score_frames,
)
from bot.safety.policy import (
    DEFAULT_MODE,
    DEFAULT_THRESHOLD,
    MODES,
    SafetyPolicy,
    decide,
    guild_policy,
    set_safety,
)
from bot.safety.review import (
    MSG_DISCARDED,
    MSG_HELD,
    Outcome,
    discard,
    expire,
    expired_message,
    get_check,
    held_clips,
    hold_posted,
    release,
    review_clip,
    scan_clip,
)
from bot.store.safety import ClipCheck

__all__ = [
    "DEFAULT_MODE",
    "DEFAULT_THRESHOLD",
    "EXPLICIT_LABELS",
    "MODES",
    "MSG_DISCARDED",
    "MSG_HELD",
    "ClassifierUnavailableError",
    "ClipCheck",
    "ClipScore",
    "Outcome",
    "SafetyPolicy",
    "classifier_status",
    "decide",
    "discard",
    "expire",
    "expired_message",
    "get_check",
    "guild_policy",
    "held_clips",
    "hold_posted",
    "load_classifier",
    "release",
    "review_clip",
    "scan_clip",
    "score_frames",
    "set_safety",
]
