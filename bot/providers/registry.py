"""Build the configured providers from Settings (the only place that reads provider keys)."""

from __future__ import annotations

from pathlib import Path

import httpx

from bot.config import Settings
from bot.providers.base import Provider


def build_providers(
    settings: Settings, client: httpx.AsyncClient, data_dir: Path
) -> dict[str, Provider]:
    """Instantiate every configured provider, in preference order."""
    providers: dict[str, Provider] = {}
    if settings.bytecompute_api_key is not None:
        from bot.providers.bytecompute import ByteComputeProvider

        providers["bytecompute"] = ByteComputeProvider(
            client,
            api_key=settings.bytecompute_api_key.get_secret_value(),
            base_url=settings.bytecompute_base_url,
        )
    if settings.leonardo_api_key is not None:
        from bot.pricing import LeonardoRates
        from bot.providers.leonardo import LeonardoProvider

        providers["leonardo"] = LeonardoProvider(
            client,
            api_key=settings.leonardo_api_key.get_secret_value(),
            base_url=settings.leonardo_base_url,
            rates=LeonardoRates(
                fast_1080=settings.leonardo_fast_usd_per_second,
                pro_1080=settings.leonardo_pro_usd_per_second,
            ),
        )
    if settings.ltx_api_key is not None:
        from bot.providers.ltx import LtxProvider

        providers["ltx"] = LtxProvider(
            client,
            api_key=settings.ltx_api_key.get_secret_value(),
            base_url=settings.ltx_base_url,
            model=settings.ltx_model,
        )
    if settings.simulator_on:
        from bot.providers.simulator import SimulatorProvider

        providers["simulator"] = SimulatorProvider(
            data_dir / "simulator", delay_seconds=settings.simulator_delay_seconds
        )
    return providers


def make_http_client() -> httpx.AsyncClient:
    """The one shared outbound HTTP client (providers and downloads)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=10.0),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        headers={"User-Agent": "ltx-discord-bot/0.1 (+https://github.com/)"},
    )
