"""Adjustments a provider reports after submit, folded into the negotiated request and its
cost (`merge_adjustments`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.negotiation.fit import PricePerSecond, clip_cost
from bot.providers.base import Adjustment, NegotiatedRequest, parse_resolution


def merge_adjustments(
    request: NegotiatedRequest,
    reported: Sequence[Adjustment],
    *,
    price_per_second: PricePerSecond | None = None,
) -> NegotiatedRequest:
    """Fold adjustments a provider reported after submit into the request (and its cost).

    Recognised fields (fps, duration, resolution/size, width, height) update the values;
    every reported adjustment is appended unless the same field → value is already listed.
    """
    update: dict[str, Any] = {}
    for adj in reported:
        name = adj.field.lower()
        if name in ("fps", "duration"):
            number = _as_int(adj.actual)
            if number is not None and number > 0:
                update[name] = number
        elif name in ("resolution", "size"):
            parsed = parse_resolution(str(adj.actual)) if adj.actual is not None else None
            if parsed is not None:
                update["width"], update["height"] = parsed
        elif name in ("width", "height"):
            number = _as_int(adj.actual)
            if number is not None and number > 0:
                update[name] = number
    known = {(a.field, str(a.actual)) for a in request.adjustments}
    merged = list(request.adjustments)
    merged.extend(a for a in reported if (a.field, str(a.actual)) not in known)
    update["adjustments"] = merged
    result = request.model_copy(update=update)
    if price_per_second is not None:
        result = result.model_copy(
            update={
                "cost_usd": clip_cost(
                    price_per_second, result.width, result.height, result.duration
                )
            }
        )
    return result


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("fps").removesuffix("s").strip()
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number.is_integer() else None
    return None
