"""Errors shared across bot/ that belong to no single provider, store or feature."""

from __future__ import annotations

from datetime import datetime


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


class ClipHeldError(Exception):
    """Not posted on purpose: the clip waits for a moderator (the output safety check's
    `hold` mode) until `until`. The delivery sink raises it; the tracker keeps the job and its
    clip file and tries the delivery again at `until` (or at once when a moderator decides,
    `JobTracker.deliver_now`). Not a failed attempt."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"held for review until {until.isoformat()}")
        self.until = until
