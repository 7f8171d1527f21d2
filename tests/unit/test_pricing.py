from __future__ import annotations

import pytest

from bot.config import load_settings
from bot.pricing import (
    LEONARDO_FAST,
    LEONARDO_PRO,
    LeonardoRates,
    bytecompute_price_per_second,
    is_hd,
    leonardo_price_per_second,
    leonardo_tier,
)


@pytest.mark.parametrize(
    ("width", "height", "hd", "rate"),
    [
        (512, 512, False, 0.02),
        (1280, 720, False, 0.02),  # exactly 921,600 px: still SD
        (720, 1280, False, 0.02),
        (960, 960, False, 0.02),  # 921,600 px too
        (1281, 720, True, 0.04),  # one column more: HD
        (1280, 721, True, 0.04),
        (1920, 1080, True, 0.04),
        (1080, 1920, True, 0.04),
    ],
)
def test_bytecompute_tiers(width: int, height: int, hd: bool, rate: float) -> None:
    assert is_hd(width, height) is hd
    assert bytecompute_price_per_second(width, height) == rate


def test_bytecompute_examples_from_the_price_page() -> None:
    # "A 5 s 720p clip ≈ $0.10; 10 s 1080p ≈ $0.40."
    assert bytecompute_price_per_second(1280, 720) * 5 == pytest.approx(0.10)
    assert bytecompute_price_per_second(1920, 1080) * 10 == pytest.approx(0.40)


@pytest.mark.parametrize(
    ("width", "height", "tier"),
    [
        (1920, 1080, 1080),
        (1080, 1920, 1080),
        (2560, 1440, 1440),
        (1440, 2560, 1440),
        (3840, 2160, 2160),
        (2160, 3840, 2160),
    ],
)
def test_leonardo_tiers(width: int, height: int, tier: int) -> None:
    assert leonardo_tier(width, height) == tier


def test_leonardo_default_rates_per_model_and_tier() -> None:
    assert leonardo_price_per_second(1920, 1080) == pytest.approx(0.06)  # fast is the default
    assert leonardo_price_per_second(1920, 1080, model=LEONARDO_FAST) == pytest.approx(0.06)
    assert leonardo_price_per_second(1920, 1080, model=LEONARDO_PRO) == pytest.approx(0.08)
    assert leonardo_price_per_second(2560, 1440, model=LEONARDO_PRO) == pytest.approx(0.16)
    assert leonardo_price_per_second(2160, 3840, model=LEONARDO_FAST) == pytest.approx(0.24)


def test_leonardo_rates_are_configurable() -> None:
    rates = LeonardoRates(fast_1080=0.1, pro_1080=0.5, multiplier_1440=3, multiplier_2160=5)
    assert leonardo_price_per_second(1080, 1920, rates=rates) == pytest.approx(0.1)
    assert leonardo_price_per_second(1440, 2560, model=LEONARDO_PRO, rates=rates) == 1.5
    assert leonardo_price_per_second(3840, 2160, model=LEONARDO_PRO, rates=rates) == 2.5


def test_leonardo_rates_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEONARDO_FAST_USD_PER_SECOND", "0.07")
    monkeypatch.setenv("LEONARDO_PRO_USD_PER_SECOND", "0.11")
    settings = load_settings()
    rates = LeonardoRates(
        fast_1080=settings.leonardo_fast_usd_per_second,
        pro_1080=settings.leonardo_pro_usd_per_second,
    )
    assert leonardo_price_per_second(1920, 1080, rates=rates) == pytest.approx(0.07)
    assert leonardo_price_per_second(1920, 1080, model=LEONARDO_PRO, rates=rates) == 0.11
