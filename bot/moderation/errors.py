"""The one error of moderation's admin functions: bad input, with a message to show."""

from __future__ import annotations


class ModerationError(Exception):
    """Bad admin input; `message` can be shown as is and says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
