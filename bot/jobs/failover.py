"""Failover between providers: which provider makes a new clip when the asked one is failing.

`choose()` is called by `VideoService.plan` after moderation. When the provider the member
chose (or the default) is healthy (`bot.jobs.health`), nothing changes. When it is failing,
the other configured providers are tried in turn: each must be healthy and able to make the
request — its own `negotiate()` decides (mode, images, options), so a provider plugs in
through the registry and its limits, with no provider names here — and the first that can
gives a fresh quote:

* with a guild fallback order (`/videoadmin provider order`), only the providers in it, in
  its order starting after the asked one, and the switch is automatic (`Switch.automatic`);
* without one, every other configured provider in the registry's order, and the member is
  asked first (an offer with the price: nothing is reserved until they accept).

When none can, `NoProviderAvailable` (a `RequestRefused`) says why for each; nothing is
charged. Jobs already admitted are never moved: a job stays with the provider that has it
(a new job is a new reservation, settled or refunded on its own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.db import Database
from bot.jobs.health import Verdict
from bot.moderation import Change, admin_change
from bot.providers.base import InvalidRequestError, NegotiatedRequest, Provider, VideoRequest
from bot.store import providers as provider_store

MAX_ORDER = 10  # providers in an order (more than any deployment configures)


class ProviderOrderError(Exception):
    """An order an admin typed that cannot be stored; `message` says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Switch:
    """The asked provider was failing (`verdict`); `automatic`: the guild's order chose."""

    asked: str
    verdict: Verdict
    automatic: bool


@dataclass(frozen=True)
class Plan:
    """What to admit: the request (negotiated by the provider that will make it)."""

    request: NegotiatedRequest
    switch: Switch | None = None

    @property
    def needs_consent(self) -> bool:
        """The member must accept the other provider (and its price) first."""
        return self.switch is not None and not self.switch.automatic


@dataclass(frozen=True)
class Skipped:
    provider: str
    reason: str
    verdict: Verdict | None = None  # set when it was skipped for failing


@dataclass
class NoProviderFound:
    asked: str
    verdict: Verdict
    skipped: list[Skipped] = field(default_factory=list)

    def message(self) -> str:
        """Plain text (the cog renders times as Discord timestamps instead)."""
        others = "; ".join(f"`{s.provider}`: {s.reason}" for s in self.skipped)
        tail = f" ({others})" if others else ""
        return (
            f"`{self.asked}` is failing right now ({self.verdict.reason}), and no other "
            f"provider here can make this clip{tail}. Try again later; nothing was charged."
        )


def candidates(
    asked: str, configured: Sequence[str], order: Sequence[str]
) -> tuple[list[str], bool]:
    """Providers to try instead of `asked`, in turn, and whether the guild's order gave them."""
    if order:
        names = [n for n in order if n in configured]
        if asked in names:
            at = names.index(asked)
            names = names[at + 1 :] + names[:at]
        return names, True
    return [n for n in configured if n != asked], False


def choose(
    request: VideoRequest,
    providers: Mapping[str, Provider],
    verdict_of: Callable[[str], Verdict],
    order: Sequence[str],
) -> Plan | NoProviderFound:
    """The plan for `request`: its own provider when healthy, else the first alternative
    that is healthy and can make it (re-negotiated: a new quote). Raises InvalidRequestError
    from the asked provider's negotiation when that one is healthy."""
    asked = request.provider
    verdict = verdict_of(asked)
    if not verdict.failing:
        return Plan(providers[asked].negotiate(request))
    names, automatic = candidates(asked, list(providers), order)
    skipped: list[Skipped] = []
    for name in names:
        other = verdict_of(name)
        if other.failing:
            skipped.append(Skipped(name, f"failing too: {other.reason}", other))
            continue
        try:
            negotiated = providers[name].negotiate(request.model_copy(update={"provider": name}))
        except InvalidRequestError as exc:
            skipped.append(Skipped(name, exc.message))
            continue
        return Plan(negotiated, Switch(asked, verdict, automatic))
    return NoProviderFound(asked, verdict, skipped)


# ----- the guild's order (admin) -------------------------------------------------------------


def parse_order(text: str, configured: Sequence[str]) -> list[str]:
    """`"leonardo, bytecompute"` → names; `none` / empty clears. Every name must be configured."""
    raw = text.replace(";", ",").replace(" ", ",")
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    if names in ([], ["none"], ["clear"], ["-"]):
        return []
    unknown = [n for n in names if n not in configured]
    if unknown:
        listed = ", ".join(f"`{n}`" for n in configured) or "none"
        shown = ", ".join(f"`{n[:40]}`" for n in unknown[:3])
        raise ProviderOrderError(
            f"{shown} {'is' if len(unknown) == 1 else 'are'} not a configured provider "
            f"(configured: {listed}). Give names separated by commas, or `none` to clear."
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ProviderOrderError(
            f"{', '.join(f'`{n}`' for n in repeated)} appears more than once; name each "
            "provider once."
        )
    if len(names) > MAX_ORDER:
        raise ProviderOrderError(f"Give at most {MAX_ORDER} providers.")
    return names


async def order(db: Database, guild_id: int) -> list[str]:
    return await provider_store.get_order(db, guild_id)


async def set_order(
    db: Database, guild_id: int, names: Sequence[str], *, actor_id: int, now: datetime
) -> Change:
    """Store the guild's fallback order (empty: none), audited in the same transaction."""
    async with db.transaction() as conn:
        old = await provider_store.get_order(conn, guild_id)
        await provider_store.set_order(conn, guild_id, names, now=now)

        def words(value: Sequence[str]) -> str:
            return " → ".join(value) if value else "none"

        summary = (
            f"provider fallback order: {words(old)} → {words(names)}"
            if list(old) != list(names)
            else f"provider fallback order unchanged ({words(names)})"
        )
        return await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            setting="provider_order",
            summary=summary,
            old=list(old),
            new=list(names),
            now=now,
        )
