"""Errors shared across bot/ that belong to no single provider, store or feature."""

from __future__ import annotations


class PermanentPostError(Exception):
    """Posting to Discord can never work (channel gone, no access, content rejected).

    Raised by whatever posts for bot/ (the clip delivery sink, the mod-log poster): the
    caller stops retrying and acts on it instead. `message` is safe to show a member.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
