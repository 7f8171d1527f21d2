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


class TransientPostError(Exception):
    """Discord could not be reached or failed (5xx, connection lost, timeout): the post may
    or may not exist. The caller retries with backoff — after looking for the post — for as
    long as an outage may last, without counting it as a failed attempt."""
