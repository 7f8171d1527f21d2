"""What a server does with a clip that scores at or over its threshold, and the admin setter.

Modes (`/videoadmin safety mode:… threshold:…`, stored per guild):

- `off`: no check, every clip is posted as it is;
- `spoiler` (the default): a clip at or over the threshold is posted behind Discord's
  spoiler cover (`SPOILER_` file name);
- `hold`: such a clip is not posted; it goes to the mod-log channel for a moderator's
  Release / Discard. Without a usable mod-log channel it is posted as a spoiler instead
  (nobody could review it) and the audit entry says so.

In an age-restricted channel (`channel.nsfw`; a thread inherits its parent's flag) nothing is
spoilered or held. The default threshold is 0.6: NudeNet's confidences for real explicit
content sit mostly above 0.7, while harmless frames (swimwear, skin-coloured scenes) rarely
reach 0.5.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bot.db import Database
from bot.limits import SAFETY_THRESHOLD
from bot.moderation.audit import Change, admin_change
from bot.moderation.errors import ModerationError
from bot.store.guilds import GuildSettings, get_guild_settings, update_guild_settings
from bot.store.safety import Action

Mode = Literal["off", "spoiler", "hold"]
MODES: tuple[Mode, ...] = ("off", "spoiler", "hold")
DEFAULT_MODE: Mode = "spoiler"
DEFAULT_THRESHOLD = 0.6

NOTE_AGE_RESTRICTED = "age-restricted channel: nothing is held or spoilered"
NOTE_NO_MODLOG = "hold mode without a usable mod-log channel: posted as a spoiler instead"
NOTE_UNCHECKED = "the clip could not be checked: treated as over the threshold"
NOTE_NO_CLASSIFIER = "the classifier is not installed: only the provider's flag counts"


class SafetyPolicy(BaseModel):
    """A guild's output safety settings with the defaults filled in."""

    model_config = ConfigDict(frozen=True)

    mode: Mode
    threshold: float
    mode_is_default: bool
    threshold_is_default: bool
    log_channel_id: int | None

    def describe(self) -> str:
        mode = f"{self.mode}{' (default)' if self.mode_is_default else ''}"
        threshold = f"{self.threshold:g}{' (default)' if self.threshold_is_default else ''}"
        return f"mode {mode}, threshold {threshold}"


def policy_from(settings: GuildSettings) -> SafetyPolicy:
    return SafetyPolicy(
        mode=settings.safety_mode or DEFAULT_MODE,
        threshold=DEFAULT_THRESHOLD
        if settings.safety_threshold is None
        else settings.safety_threshold,
        mode_is_default=settings.safety_mode is None,
        threshold_is_default=settings.safety_threshold is None,
        log_channel_id=settings.log_channel_id,
    )


async def guild_policy(db: Database, guild_id: int) -> SafetyPolicy:
    return policy_from(await get_guild_settings(db, guild_id))


def decide(
    policy: SafetyPolicy, score: float, *, age_restricted: bool, can_hold: bool
) -> tuple[Action, str | None]:
    """The action for a clip of `score` (pure). `can_hold`: a usable mod-log channel."""
    if policy.mode == "off":
        return "post", None
    if age_restricted:
        return "post", NOTE_AGE_RESTRICTED
    if score < policy.threshold:
        return "post", None
    if policy.mode == "spoiler":
        return "spoiler", None
    if not can_hold:
        return "spoiler", NOTE_NO_MODLOG
    return "hold", None


async def set_safety(
    db: Database,
    guild_id: int,
    *,
    mode: str | None,
    threshold: float | None,
    actor_id: int,
    now: datetime,
) -> Change:
    """`/videoadmin safety`: change the mode and/or threshold (audited with old → new)."""
    if mode is None and threshold is None:
        raise ModerationError("Give a `mode` (off, spoiler or hold), a `threshold`, or both.")
    if mode is not None and mode not in MODES:
        raise ModerationError("`mode` must be off, spoiler or hold.")
    if threshold is not None and not SAFETY_THRESHOLD.contains(threshold):
        raise ModerationError(f"`threshold` {SAFETY_THRESHOLD.message()}.")
    fields: dict[str, object] = {}
    if mode is not None:
        fields["safety_mode"] = mode
    if threshold is not None:
        fields["safety_threshold"] = threshold
    async with db.transaction() as conn:
        before = policy_from(await get_guild_settings(conn, guild_id))
        after = policy_from(await update_guild_settings(conn, guild_id, now=now, **fields))
        return await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            setting="safety",
            summary=f"output safety check: {before.describe()} → {after.describe()}",
            old={"mode": before.mode, "threshold": before.threshold},
            new={"mode": after.mode, "threshold": after.threshold},
            now=now,
        )
