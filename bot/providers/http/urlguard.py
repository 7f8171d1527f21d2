"""Outbound URLs: `URLGuard` decides whether a URL a provider handed us may be fetched
(public addresses only, unless the host is trusted); `provider_url` and `path_segment`
keep what a provider sends from breaking the URLs we build."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import quote

import httpx

from bot.providers.base import TransientError
from bot.providers.http.errors import UnsafeURLError

Resolver = Callable[[str, int], Awaitable[list[str]]]


def host_of(url: str) -> str:
    return httpx.URL(url).host.lower().rstrip(".")


def path_segment(value: str) -> str:
    """`value` (e.g. a job id from an answer) as one URL path segment: reserved and
    unprintable characters escaped, so it can neither break the URL nor add path levels."""
    return quote(value, safe="", errors="surrogatepass")


def provider_url(url: str | httpx.URL, *, base: httpx.URL | None = None) -> httpx.URL:
    """A URL from a provider's answer (absolute, or relative to `base`); one httpx cannot
    read is refused with UnsafeURLError."""
    try:
        return base.join(str(url)) if base is not None else httpx.URL(str(url))
    except httpx.InvalidURL:
        raise UnsafeURLError("the provider returned an invalid URL") from None


async def _system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 inside IPv6 (::ffff:a.b.c.d, 6to4 2002:aabb:ccdd::) is judged as that IPv4.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    # is_global also excludes shared address space (100.64.0.0/10: carrier NAT, some cloud
    # metadata services such as 100.100.100.200) that is neither private nor public.
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class URLGuard:
    """Allows http(s) URLs to public addresses, and any URL on a trusted host.

    Trusted hosts are the hosts of the configured base URLs (self-hosted gateways, proxies,
    the fake servers on 127.0.0.1). Everything else must resolve only to public addresses.
    """

    def __init__(
        self, trusted_hosts: Iterable[str] = (), *, resolver: Resolver | None = None
    ) -> None:
        self._trusted = {h.lower().rstrip(".") for h in trusted_hosts if h}
        self._resolve = resolver or _system_resolver

    @classmethod
    def for_base_urls(cls, *urls: str, resolver: Resolver | None = None) -> URLGuard:
        return cls([host_of(u) for u in urls if u], resolver=resolver)

    def trusts(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._trusted

    async def check(self, url: str | httpx.URL) -> httpx.URL:
        try:
            parsed = httpx.URL(str(url))
        except httpx.InvalidURL:
            raise UnsafeURLError("the provider returned an invalid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UnsafeURLError(f"refusing to fetch a {parsed.scheme or 'relative'} URL")
        host = parsed.host.lower().rstrip(".")
        if self.trusts(host):
            return parsed
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addresses = await self._resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise TransientError(f"cannot resolve {host} ({type(exc).__name__})") from None
        if not addresses or not all(_is_public(a) for a in addresses):
            raise UnsafeURLError(f"refusing to fetch {host}: it is a private or local address")
        return parsed
