"""The accepted range of every numeric setting, defined once.

A quantity that can be set both by an environment variable (`bot.config`) and by an admin
command (`/videoadmin allowance …`: `cogs.admin.allowance`, checked again in `bot.quota.admin` and
`bot.store.guilds`) uses the same `Bound` object in all those places, so the two cannot
drift apart. Each bound says next to it what it protects; where nothing but the number's
representation limits a setting, the upper bound is `LARGEST`.

A `Bound` is also pydantic metadata: `Annotated[int, ALLOWANCE_SECONDS]` validates the range
(and refuses NaN and infinities), and `bot.config.load_settings` turns any error on such a
field into `message()`: the accepted range, what the number means and an example to set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

# The largest whole number every place a setting goes carries exactly: a Discord INTEGER or
# NUMBER option (±2^53), a float (the ledger's REAL columns, where allowance seconds are
# compared with used seconds) and a SQLite INTEGER column (64-bit).
LARGEST = 2**53 - 1


def fmt_number(value: float) -> str:
    """`1,000,000`, `9,007,199,254,740,991`, `0.5`: whole numbers in full, with separators."""
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    return f"{value:,g}"


@dataclass(frozen=True)
class Bound:
    """Accepted values: `low` ≤ value ≤ `high` (`low` < value if `low_open`), finite.

    `meaning` says what the number is ("seconds of video per member …"); `example` is a
    value to suggest in a refusal.
    """

    low: int | float
    high: int | float
    meaning: str
    example: str
    low_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value) or value > self.high:
            return False
        return value > self.low if self.low_open else value >= self.low

    def describe(self) -> str:
        """The range in words: `0 or more`, `more than 0`, `from 1 to 10`."""
        low = fmt_number(self.low)
        if self.high == LARGEST:
            return f"more than {low}" if self.low_open else f"{low} or more"
        start = f"more than {low}, up to" if self.low_open else f"from {low} to"
        return f"{start} {fmt_number(self.high)}"

    def between(self) -> str:
        """The range as the admin commands word it: `between 0 and 10`."""
        low = f"more than {fmt_number(self.low)}" if self.low_open else fmt_number(self.low)
        return f"between {low} and {fmt_number(self.high)}"

    def message(self, *, whole_number: bool = False) -> str:
        """The refusal: range, meaning (and the representable maximum), an example."""
        kind = "a whole number, " if whole_number else ""
        cap = f"; at most {fmt_number(self.high)}" if self.high == LARGEST else ""
        return f"must be {kind}{self.describe()} ({self.meaning}{cap}); set e.g. {self.example}"

    def _check(self, value: Any) -> Any:
        if value is not None and not self.contains(value):
            raise ValueError(self.message())
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))


# ----- allowances: env QUOTA_SECONDS_PER_DAY and /videoadmin allowance default|role|member --

# Seconds of *video*, not wall-clock time (clips render in parallel; a large number means
# "practically unlimited"), so only the representation limits it. 0: no allowance.
ALLOWANCE_SECONDS = Bound(
    0, LARGEST, "seconds of video per member per rolling window, 24 h by default", "600"
)

# ----- env MAX_ACTIVE_JOBS_PER_MEMBER and /videoadmin allowance concurrency ---------------

# At least 1: with 0 no member could start a clip (and a stored 0 reads as "bot default").
# No upper limit but the representation: a cap above what members run is simply no cap.
JOBS_PER_MEMBER = Bound(1, LARGEST, "unfinished clips one member may have at once", "2")

# ----- admin-only settings (/videoadmin allowance …), unchanged ranges ---------------------

# Up to one day: a longer pause between clips is a block (`/videoadmin block … duration`).
COOLDOWN_SECONDS = Bound(0, 86_400, "seconds between two clips of one member", "30")

# A policy cap kept as it was (0 or empty means no budget; Discord itself would carry 2^53).
MONTHLY_BUDGET_USD = Bound(0, 1_000_000, "USD per calendar month for the whole server", "50")

# At least 1: an HD second must not count less than an SD one; 10: a policy cap kept as it was.
HD_WEIGHT = Bound(1, 10, "allowance seconds per second of video above 1280×720", "2")

# 1 h to 31 days (`bot.store.guilds.MAX_WINDOW_SECONDS`): a window at most one budget
# month long, as it was.
WINDOW_HOURS = Bound(1, 744, "hours in the rolling allowance window", "24")

# At most a year of history in `/videoadmin usage show|export`: one bar per day stays
# readable in the chart, and the daily CSV stays a few kilobytes.
USAGE_DAYS = Bound(1, 366, "days of history in a usage chart or export", "30")

# ----- member options: /video duration and the Animate modal's duration ---------------------

# What a member may ask for; the provider snaps it to the lengths it offers (an adjustment
# shown up front).
CLIP_SECONDS = Bound(1, 20, "seconds of video in one clip", "5")
# ----- output safety check: /videoadmin safety threshold, env SAFETY_HOLD_HOURS -------------

# A classifier score is a probability: 0 holds (or spoilers) every clip, 1 only a certain hit.
SAFETY_THRESHOLD = Bound(
    0, 1, "classifier score at or over which a clip is spoilered or held", "0.6"
)

# At least 1 h so moderators have a chance to look; at most 30 days so held clip files (the
# only copy the bot keeps) do not pile up on disk.
SAFETY_HOLD_HOURS = Bound(1, 720, "hours a held clip waits for a moderator before discard", "48")

# ----- environment-only settings ------------------------------------------------------------

# At most the simulator's job expiry (`bot.providers.simulator.JOB_EXPIRY`, 24 h): a longer
# delay would have the tracker expire every simulated clip before it is done.
SIMULATOR_DELAY_SECONDS = Bound(0, 86_400, "seconds a simulated clip takes to render", "3")

# More than 0: at rate 0 the provider's token bucket never refills and every call waits
# forever. Above that only the representation (a finite rate) limits it.
REQUESTS_PER_SECOND = Bound(0, LARGEST, "API calls per second to each provider", "2", low_open=True)

# 0 to 1: a share of the request budget the planned calls leave unused (0: no early status
# checks, only the predicted schedule). Above 1 would be more than the idle budget; the total
# stays within PROVIDER_REQUESTS_PER_SECOND either way (bot/jobs/tracker/idle.py).
IDLE_POLL_SHARE = Bound(
    0, 1, "share of a provider's idle request budget spent on early status checks", "0.5"
)

# 0 or more: a negative price makes a negative quote, which a reservation refuses, so every
# Leonardo clip would fail. Finite up to LARGEST: ×4 (2160p) × seconds stays a finite cost.
USD_PER_SECOND = Bound(0, LARGEST, "USD per second of 1080p video, for quotes", "0.06")

# At most 10 minutes: a stop that waits longer looks hung to the host (Docker, systemd),
# which then kills the process anyway, and the in-flight work resumes after the restart.
SHUTDOWN_GRACE_SECONDS = Bound(
    0, 600, "seconds in-flight submissions and uploads may finish at shutdown", "20"
)

# At least 30 s: the shared HTTP client waits 30 s for an answer (`make_http_client`), so a
# shorter silence would call a provider failing while its call is still within its timeout.
# At most a day: the longest a job may wait at a provider (`max_job_age_seconds`).
PROVIDER_NO_ANSWER_SECONDS = Bound(
    30, 86_400, "seconds without an answer before a provider counts as failing", "120"
)

# From 1 (Discord's own minimum) to 16,384: far above what any bot is asked to run (Discord
# asks for a shard per ~1,000 guilds); a larger number is a typo.
SHARD_COUNT = Bound(1, 16_384, "Discord shards across all processes", "2")

# At least 5 s: heartbeats come every third of it, and a shorter lease would be lost to one
# slow database round trip. At most 300 s: a crashed process's jobs wait this long before
# another process takes them over (the target is 30 s at the default 20).
LEASE_SECONDS = Bound(5, 300, "seconds a process holds a job without a heartbeat", "20")
