"""`MediaError`: the one exception of `bot.media`, with a message the member can act on."""

from __future__ import annotations


class MediaError(Exception):
    """A media problem; `message` is safe to show to the member and says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
