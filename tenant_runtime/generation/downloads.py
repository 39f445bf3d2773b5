"""Downloading a result file for upload when Telegram could not fetch its URL itself.

Result URLs come from KIE callbacks, which anyone holding one job's callback URL can send (KIE's
optional signature covers the task id and a timestamp, not the body). So the URL is untrusted, and
fetching it must never reach this host or its network: the bytes would be relayed to the user.

* http and https only; any other scheme is refused before anything is opened.
* The address checked is the one the socket connects to, in the connector's socket factory, after
  DNS. A name that resolves to a public address when checked and to 127.0.0.1 when used (DNS
  rebinding) cannot slip through, and neither can an IP literal or an IPv4 address inside IPv6.
  Refused: loopback, private, link-local (the cloud metadata address), shared, multicast, reserved,
  unspecified, and anything else not globally routable.
* Redirects are followed by hand, at most `max_redirects`, each hop checked the same way.
* Size and time are capped: Content-Length above the cap is refused unread, and the body is read in
  chunks and abandoned at the cap; one deadline covers every hop.

`allow_loopback` (the ALLOW_LOOPBACK_DOWNLOADS setting) lets loopback through for tests and the
sandbox, whose fakes listen on 127.0.0.1; every other range stays refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

if TYPE_CHECKING:
    from aiohappyeyeballs import AddrInfoType

__all__ = ["DownloadRefused", "Downloader", "address_allowed"]

MAX_BYTES = 50 * 1024 * 1024  # what Telegram accepts from bots
TOTAL_SECONDS = 60.0
CONNECT_SECONDS = 10.0
MAX_REDIRECTS = 5
CHUNK = 256 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Not globally reachable per IANA, though the standard library calls most of it global (3.11).
_ALSO_REFUSED = (ipaddress.ip_network("192.0.0.0/24"),)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DownloadRefused(Exception):
    """The URL may not be fetched, or what it answered may not be relayed; the message says which
    rule (never the URL, which may carry a signed query)."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a tunnel or translation form of an IPv6 address leads to."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_allowed(ip: IPAddress, *, allow_loopback: bool = False) -> bool:
    """Whether a result download may connect to `ip`."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
            return address_allowed(ip.ipv4_mapped, allow_loopback=allow_loopback)
        inner = _embedded_ipv4(ip)
        if inner is not None and not address_allowed(inner, allow_loopback=allow_loopback):
            return False
    if ip.is_loopback:
        return allow_loopback
    if any(ip in network for network in _ALSO_REFUSED):
        return False
    refused = ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    if isinstance(ip, ipaddress.IPv6Address):
        refused = refused or ip.is_site_local  # deprecated fec0::/10, still routed inside some networks
    return ip.is_global and not refused


@dataclass(frozen=True)
class Downloader:
    allow_loopback: bool = False
    max_bytes: int = MAX_BYTES
    total_seconds: float = TOTAL_SECONDS
    connect_seconds: float = CONNECT_SECONDS
    max_redirects: int = MAX_REDIRECTS

    def _socket(self, addr_info: AddrInfoType) -> socket.socket:
        """The connector's socket factory: called with each address it is about to connect to."""
        family, kind, proto, _name, sockaddr = addr_info
        ip = ipaddress.ip_address(sockaddr[0])
        if not address_allowed(ip, allow_loopback=self.allow_loopback):
            # An OSError is a failed connection attempt to aiohttp: the next address is tried, and
            # with none left the request fails with ClientConnectorError, refused below.
            raise PermissionError(f"result download to a non-public address ({_kind(ip)}) refused")
        return socket.socket(family, kind, proto)

    async def fetch(self, url: str) -> bytes:
        """The body at `url`; DownloadRefused when a rule forbids it, aiohttp.ClientError or
        TimeoutError when the transfer fails."""
        target = _checked(URL(url))
        connector = aiohttp.TCPConnector(socket_factory=self._socket, limit=1, use_dns_cache=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_seconds)
        # No cookies, no proxy from the environment, no automatic redirects, bytes as they are sent.
        async with (
            asyncio.timeout(self.total_seconds),
            aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
            ) as session,
        ):
            for _hop in range(self.max_redirects + 1):
                try:
                    async with session.get(
                        target, allow_redirects=False, headers={"Accept-Encoding": "identity"}
                    ) as response:
                        if response.status in _REDIRECTS:
                            location = response.headers.get("Location")
                            if not location:
                                raise DownloadRefused("redirect without a Location")
                            target = _checked(_join(target, location))
                            continue
                        response.raise_for_status()
                        return await self._body(response)
                except aiohttp.ClientConnectorError as exc:
                    if isinstance(exc.os_error, PermissionError):
                        raise DownloadRefused(str(exc.os_error)) from None
                    raise
                except aiohttp.InvalidURL:  # e.g. 127.0.0.1 spelled as one number: aiohttp refuses it
                    raise DownloadRefused("malformed URL") from None
            raise DownloadRefused(f"more than {self.max_redirects} redirects")

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        if response.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise DownloadRefused("compressed body (asked for identity)")
        if response.content_length is not None and response.content_length > self.max_bytes:
            raise DownloadRefused(f"larger than {self.max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise DownloadRefused(f"larger than {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _join(base: URL, location: str) -> URL:
    try:
        return base.join(URL(location))
    except ValueError:
        raise DownloadRefused("redirect to a malformed URL") from None


def _checked(url: URL) -> URL:
    if url.scheme not in ("http", "https") or not url.host:
        raise DownloadRefused(f"scheme {url.scheme or 'none'!r} refused: http and https only")
    return url


def _kind(ip: IPAddress) -> str:
    for name in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    return "not global"
