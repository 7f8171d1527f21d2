"""What the configured providers offer a member: resolution choices for `/video`'s
autocomplete, and which edits (Extend / Retake) a delivered clip can get and from whom.

Pure functions over the providers (their `negotiate` and `limits`); no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from bot.negotiation import parse_aspect
from bot.providers.base import (
    EDIT_OPERATIONS,
    InvalidRequestError,
    Operation,
    Provider,
    VideoRequest,
    parse_resolution,
)
from bot.store.jobs import JobRecord

# Sizes offered by `/video resolution` autocomplete (each kept only where the provider
# accepts it unchanged), besides a provider's own fixed list.
COMMON_SIZES: tuple[tuple[int, int], ...] = (
    (1920, 1080),
    (1280, 720),
    (1024, 576),
    (960, 544),
    (768, 512),
    (640, 512),
    (1080, 1920),
    (720, 1280),
    (576, 1024),
    (1080, 1080),
    (960, 960),
    (768, 768),
    (512, 512),
    (1440, 1080),
    (1024, 768),
    (960, 720),
    (1080, 1440),
    (768, 1024),
    (720, 960),
    (864, 1080),
    (768, 960),
    (2560, 1440),
    (1440, 2560),
    (3840, 2160),
    (2160, 3840),
)


def resolution_choices(
    prov: Provider | None, aspect_ratio: str | None, typed: str = "", limit: int = 25
) -> list[str]:
    """WIDTHxHEIGHT values `prov` accepts unchanged, matching the aspect and text.

    When `typed` is a size the provider would change, the size it would make comes first.
    """
    if prov is None:
        return []
    sizes = list(prov.limits.sizes) or [s for s in COMMON_SIZES if _accepts(prov, s)]
    ratio = parse_aspect(aspect_ratio) if aspect_ratio else None
    if ratio is not None:
        sizes = [s for s in sizes if abs(s[0] / s[1] / ratio - 1) < 0.03]
    text = typed.strip().lower().replace("×", "x").replace(" ", "")
    labels = [f"{w}x{h}" for w, h in sizes if text in f"{w}x{h}"]
    wanted = parse_resolution(text) if text else None
    if wanted is not None:
        snapped = negotiated_size(prov, wanted)
        if snapped is not None:
            label = f"{snapped[0]}x{snapped[1]}"
            labels = [label, *(x for x in labels if x != label)]
    return labels[:limit]


def negotiated_size(prov: Provider, size: tuple[int, int]) -> tuple[int, int] | None:
    try:
        wanted = f"{size[0]}x{size[1]}"
        negotiated = prov.negotiate(VideoRequest(prompt="-", provider=prov.name, resolution=wanted))
    except (InvalidRequestError, ValidationError):
        return None
    return negotiated.width, negotiated.height


def _accepts(prov: Provider, size: tuple[int, int]) -> bool:
    return negotiated_size(prov, size) == size


def edit_provider(
    providers: Mapping[str, Provider], job: JobRecord, operation: Operation
) -> str | None:
    """The provider that makes `operation` of `job`'s clip: its own, else the first
    configured one that can (None: no configured provider can)."""
    names = [job.provider, *(n for n in providers if n != job.provider)]
    for name in names:
        provider = providers.get(name)
        if provider is not None and operation in provider.limits.edits:
            return name
    return None


def edits_for(providers: Mapping[str, Provider], job: JobRecord) -> list[Operation]:
    """The edits offered on `job`'s delivered clip (its buttons)."""
    return [op for op in EDIT_OPERATIONS if edit_provider(providers, job, op) is not None]
