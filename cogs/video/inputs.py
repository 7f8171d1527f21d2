"""The checks and saving of `/video`'s attachments (images, soundtrack, a clip to edit).

`attachment_problem` runs before `defer` (no I/O: only what Discord told about each file);
`save_input` runs after it, in a thread, and checks each file by its bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import discord

from bot import media
from bot.providers.base import parse_resolution


def attachment_problem(
    attachments: Mapping[str, discord.Attachment | None], resolution: str | None
) -> str | None:
    """A member-facing problem with the attachments or `resolution`, or None."""
    image = attachments.get("image")
    first, last = attachments.get("first_frame"), attachments.get("last_frame")
    if image is not None and (first is not None or last is not None):
        return (
            "Use either `image` (image-to-video) or `first_frame`/`last_frame` "
            "(frame-to-video), not both."
        )
    if last is not None and first is None:
        return "`last_frame` needs a `first_frame` too (or attach it as `image`)."
    sound = attachments.get("soundtrack")
    if sound is not None and sound.size > media.MAX_AUDIO_BYTES:
        return (
            f"`soundtrack` is {sound.size / 2**20:.1f} MB; sound files must be at most "
            f"{media.MAX_AUDIO_BYTES / 2**20:.0f} MB. Attach a shorter one."
        )
    for name, att in attachments.items():
        if name != "soundtrack" and att is not None and att.size > media.MAX_IMAGE_BYTES:
            return (
                f"`{name}` is {att.size / 2**20:.1f} MB; images must be at most "
                f"{media.MAX_IMAGE_BYTES / 2**20:.0f} MB. Attach a smaller PNG, JPEG or WebP."
            )
    if resolution and parse_resolution(resolution) is None:
        return "`resolution` must look like `1280x720` (WIDTHxHEIGHT, 16–8192 px each)."
    return None


def save_input(name: str, data: bytes, input_dir: Path) -> Any:
    """An attachment checked by its bytes and saved: soundtrack, the clip to edit, or image."""
    if name == "soundtrack":
        return media.save_input_audio(data, input_dir, name)
    if name == "source":
        return media.save_source_clip(data, input_dir, name)
    return media.save_input_image(data, input_dir, name)
