"""Point discord.py at a different Discord API base (`DISCORD_API_BASE_URL`).

discord.py keeps two process-wide addresses:

* `discord.http.Route.BASE` — every REST call (bot HTTP client *and* interaction webhooks);
* `DiscordWebSocket.DEFAULT_GATEWAY` — where `Client.connect` opens the gateway. Since 2.x
  the library no longer asks `GET /gateway/bot`; it always dials `wss://gateway.discord.gg`.

With a custom base (an HTTP proxy such as nirn-proxy, or a fake Discord in tests) the gateway
must come from that base too, so:

1. `apply_api_base(url)` once at start-up (before the client logs in) sets `Route.BASE`;
2. the bot's `connect` calls `await prepare_gateway(self)` before `super().connect()`. With a
   custom base it asks `GET {base}/gateway/bot` and makes the returned URL the default
   gateway. discord.py then resumes on the `resume_gateway_url` the gateway's READY names,
   and falls back to that default after an invalidated session, so reconnects and resumes
   stay on the same server without further help.

Attachments: with a custom base, attachment URLs point wherever that server says (a fake
serves them itself). `attachment_url_allowed` accepts Discord's CDN hosts over https and the
custom base's own host, so the bot's download allow-list works in both worlds.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

log = logging.getLogger(__name__)

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY = yarl.URL("wss://gateway.discord.gg/")
DISCORD_CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})


class GatewayDiscoveryError(RuntimeError):
    """`GET /gateway/bot` on the custom API base did not give a usable websocket URL."""


def _normalise(base_url: str) -> str:
    base = base_url.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"DISCORD_API_BASE_URL must be an http(s) URL like {DISCORD_API_BASE}, got {base!r}"
        )
    return base


def current_api_base() -> str:
    """The REST base discord.py uses right now."""
    return Route.BASE


def is_custom_api_base() -> bool:
    """True when REST calls go somewhere other than Discord's own v10 API."""
    return Route.BASE != DISCORD_API_BASE


def apply_api_base(base_url: str) -> None:
    """Send discord.py's REST calls to `base_url` (e.g. `http://127.0.0.1:8080/api/v10`).

    Idempotent. Passing Discord's default base restores both the REST base and the built-in
    gateway address, so a process (or a test session) can switch back and forth. The setting
    is process-wide (discord.py keeps it on classes): one API base per process at a time.
    """
    base = _normalise(base_url)
    if base == DISCORD_API_BASE:
        DiscordWebSocket.DEFAULT_GATEWAY = DISCORD_GATEWAY
    if base == Route.BASE:
        return
    Route.BASE = base
    log.info("Discord API base set to %s", base)


def _websocket_url(url: str) -> yarl.URL:
    try:
        parsed = yarl.URL(url)
    except (TypeError, ValueError) as exc:
        raise GatewayDiscoveryError(f"GET /gateway/bot returned a malformed URL: {url!r}") from exc
    if parsed.scheme not in ("ws", "wss") or not parsed.host:
        raise GatewayDiscoveryError(
            f"GET /gateway/bot must return a ws:// or wss:// URL, got {url!r}"
        )
    # discord.py appends its own ?v=&encoding=&compress= query.
    return parsed.with_query(None).with_fragment(None)


async def prepare_gateway(client: discord.Client) -> None:
    """Make `client.connect()` dial the gateway that belongs to the configured API base.

    Call it from the bot's `connect` override, after login (so the HTTP session exists)::

        async def connect(self, *, reconnect: bool = True) -> None:
            await discord_api.prepare_gateway(self)
            await super().connect(reconnect=reconnect)

    With the default base it only makes sure the built-in gateway is used. With a custom base
    it asks `GET {base}/gateway/bot` (discord.py retries 5xx/429 itself) and raises
    `GatewayDiscoveryError` when that yields no websocket URL.
    """
    if not is_custom_api_base():
        DiscordWebSocket.DEFAULT_GATEWAY = DISCORD_GATEWAY
        return
    try:
        _shards, url, _limits = await client.http.get_bot_gateway()
    except discord.GatewayNotFound as exc:
        raise GatewayDiscoveryError(
            f"GET {Route.BASE}/gateway/bot failed; check DISCORD_API_BASE_URL and the token"
        ) from exc
    gateway = _websocket_url(url)
    DiscordWebSocket.DEFAULT_GATEWAY = gateway
    log.info("gateway for the custom API base: %s", gateway)


def attachment_url_allowed(url: str) -> bool:
    """Whether `url` is a Discord attachment the bot may download.

    Discord's CDN hosts over https always; with a custom API base also any URL on that
    base's own scheme, host and port (a proxy or a fake Discord serving attachments).
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname in DISCORD_CDN_HOSTS:
        return True
    if not is_custom_api_base():
        return False
    base = urlsplit(Route.BASE)
    try:
        return (
            parts.scheme == base.scheme
            and parts.hostname is not None
            and parts.hostname == base.hostname
            and parts.port == base.port
        )
    except ValueError:  # a malformed port
        return False
