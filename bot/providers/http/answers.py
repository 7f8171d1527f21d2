"""Reading answer bodies: `TolerantModel` (the base of every response model: unknown fields
kept and logged at debug level, since the providers do not publish complete response
schemas), `parse_answer`, and lenient readers for URLs and numbers in JSON."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from bot.providers.base import TransientError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class TolerantModel(BaseModel):
    """Response model that accepts and keeps unknown fields, logging them at debug level."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="after")
    def _log_unknown(self) -> TolerantModel:
        if self.model_extra:
            log.debug(
                "%s: unknown response fields %s", type(self).__name__, sorted(self.model_extra)
            )
        return self


def parse_answer(model: type[M], data: Any, *, label: str) -> M:
    """Validate an answer into `model`; a shape we cannot read is a (retryable) bad answer."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:3])
        raise TransientError(f"{label} sent an answer we cannot read ({where})") from None


def find_url(data: Any, *, depth: int = 0) -> str | None:
    """The first http(s) URL in a JSON answer, preferring the usual key names."""
    preferred = ("url", "download_url", "video_url", "signed_url", "href", "location", "uri")
    if isinstance(data, str):
        return data if data.startswith(("http://", "https://")) else None
    if depth > 3:
        return None
    if isinstance(data, Mapping):
        for key in preferred:
            found = find_url(data.get(key), depth=depth + 1) if key in data else None
            if found:
                return found
        for value in data.values():
            found = find_url(value, depth=depth + 1)
            if found:
                return found
    if isinstance(data, list):
        for item in data:
            found = find_url(item, depth=depth + 1)
            if found:
                return found
    return None


def finite_number(value: Any, *, percent: bool = False) -> float | None:
    """A finite number from a JSON value (NaN and infinities, which JSON parsers accept,
    count as absent); with `percent`, a trailing "%" on a string is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str):
        value = value.strip()
        if percent:
            value = value.rstrip("%")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer beyond any float
        return None
    return number if math.isfinite(number) else None
