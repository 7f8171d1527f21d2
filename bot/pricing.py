"""What a clip costs, per second of output, for each provider.

ByteCompute publishes its prices (model page for `Lightricks/LTX-2.3`): $0.02 per second up to
921,600 pixels (1280x720), $0.04 per second above that.

Leonardo publishes no per-second price for `ltxv-2.3-*`; every create call returns the real
cost of the job instead. Until that is known we quote with `LeonardoRates`, whose defaults are
Lightricks' own published LTX-2.3 API prices rounded up (fast $0.06/s and pro $0.08/s at
1080p; 1440p costs 2x and 2160p 4x the 1080p rate, as on LTX's own price list). Overrides come
from the settings `LEONARDO_FAST_USD_PER_SECOND` / `LEONARDO_PRO_USD_PER_SECOND`.
"""

from __future__ import annotations

from dataclasses import dataclass

SD_MAX_PIXELS = 921_600  # 1280 x 720: the last size billed at the SD rate
BYTECOMPUTE_SD_USD_PER_SECOND = 0.02
BYTECOMPUTE_HD_USD_PER_SECOND = 0.04

LEONARDO_PRO = "ltxv-2.3-pro"
LEONARDO_FAST = "ltxv-2.3-fast"


def is_hd(width: int, height: int) -> bool:
    """True when a size is billed at the HD rate (more than 921,600 pixels)."""
    return width * height > SD_MAX_PIXELS


def bytecompute_price_per_second(width: int, height: int) -> float:
    if is_hd(width, height):
        return BYTECOMPUTE_HD_USD_PER_SECOND
    return BYTECOMPUTE_SD_USD_PER_SECOND


@dataclass(frozen=True)
class LeonardoRates:
    """USD per second of output at 1080p, with multipliers for the larger tiers."""

    fast_1080: float = 0.06
    pro_1080: float = 0.08
    multiplier_1440: float = 2.0
    multiplier_2160: float = 4.0

    def base_rate(self, model: str) -> float:
        return self.pro_1080 if model == LEONARDO_PRO else self.fast_1080


DEFAULT_LEONARDO_RATES = LeonardoRates()


def leonardo_tier(width: int, height: int) -> int:
    """The resolution tier (1080, 1440 or 2160) a size falls in, by pixel count."""
    pixels = width * height
    if pixels <= 1920 * 1080:
        return 1080
    if pixels <= 2560 * 1440:
        return 1440
    return 2160


def leonardo_price_per_second(
    width: int,
    height: int,
    *,
    model: str = LEONARDO_FAST,
    rates: LeonardoRates = DEFAULT_LEONARDO_RATES,
) -> float:
    rate = rates.base_rate(model)
    tier = leonardo_tier(width, height)
    if tier == 1440:
        rate *= rates.multiplier_1440
    elif tier == 2160:
        rate *= rates.multiplier_2160
    return round(rate, 6)


# ----- Lightricks' own LTX API (PROVIDERS.md C.10) ------------------------------------------

LTX_FAST = "ltx-2-3-fast"
LTX_PRO = "ltx-2-3-pro"


@dataclass(frozen=True)
class LtxRates:
    """USD per second at each tier. Seen on `docs.ltx.io/pricing` (Oct 2026, partial): fast
    720p $0.03, pro 1440p $0.16 (so pro 1080p $0.08, at 2x for 1440p), audio-to-video,
    retake and extend (pro, 1080p) $0.10. Not published for LTX-2.3: fast 1080p (we take the
    $0.06 Leonardo's quotes use, twice the 720p rate) and pro 720p (quoted at the 1080p rate,
    an upper bound). 1440p costs 2x and 2160p 4x the 1080p rate, as on LTX's list."""

    fast_720: float = 0.03
    fast_1080: float = 0.06
    pro_1080: float = 0.08
    edit_1080: float = 0.10  # audio-to-video (per second of audio), retake, extend
    multiplier_1440: float = 2.0
    multiplier_2160: float = 4.0


DEFAULT_LTX_RATES = LtxRates()


def ltx_price_per_second(
    width: int,
    height: int,
    *,
    model: str = LTX_FAST,
    edit: bool = False,
    rates: LtxRates = DEFAULT_LTX_RATES,
) -> float:
    """The rate of one second billed by the LTX API (`edit`: audio-to-video, retake, extend)."""
    if edit:
        base = rates.edit_1080
    elif model == LTX_PRO:
        base = rates.pro_1080
    else:
        base = rates.fast_720 if not is_hd(width, height) else rates.fast_1080
    tier = leonardo_tier(width, height)  # the same pixel-count tiers
    if tier == 1440:
        base = max(base, rates.fast_1080) * rates.multiplier_1440
    elif tier == 2160:
        base = max(base, rates.fast_1080) * rates.multiplier_2160
    return round(base, 6)
