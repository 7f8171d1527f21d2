"""Lightricks' own LTX API (`api.ltx.video`, `ltx-2-3-fast` / `ltx-2-3-pro`), provider `ltx`.

- `limits`: what the models offer (sizes, fps, durations per model, concurrency);
- `wire`: request bodies of the v2 endpoints and the answer models (the published spec);
- `edits`: negotiation of audio-to-video, extend and retake (and the >10 s rule of t2v/i2v);
- `provider`: `LtxProvider`, the calls: upload, submit, poll, download, check.
"""

from bot.providers.ltx.limits import LIMITS, limits_for
from bot.providers.ltx.provider import LtxProvider

__all__ = ["LIMITS", "LtxProvider", "limits_for"]
