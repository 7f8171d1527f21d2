"""Discord timestamp markup (`<t:…:R>`) for what the cogs show; rounded up so nobody is
told to come back too early."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def discord_time(at: datetime, style: str = "t") -> str:
    """`<t:unix:style>`; `at` must be timezone-aware."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("timezone-aware datetime required")
    return f"<t:{math.ceil(at.astimezone(UTC).timestamp())}:{style}>"


def when(at: datetime) -> str:
    """The time and how long until it, e.g. "<t:…:t> (<t:…:R>)"."""
    return f"{discord_time(at, 't')} ({discord_time(at, 'R')})"
