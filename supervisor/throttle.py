"""Throttling of failed sign-ins to the status page, per client address.

An operator token of 24+ random characters cannot be guessed online anyway; the throttle keeps a
guesser from burning CPU and log lines, and makes a weak token (set before the length rule existed)
slow to find. State is per process and in memory: a restart or another replica starts afresh, which
costs an attacker a factor of the replica count, not the protection.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from aiohttp import web

MAX_FAILURES = 10
WINDOW_SECONDS = 300.0
MAX_ADDRESSES = 10_000  # memory bound: the oldest address is forgotten first


class FailureThrottle:
    """At most `limit` failures per key within `window` seconds; then `retry_after` says how long to wait."""

    def __init__(
        self,
        limit: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        *,
        max_keys: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window = window
        self._max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> float | None:
        """Seconds until `key` may try again, or None when it may try now."""
        failures = self._failures.get(key)
        if failures is None:
            return None
        now = self._clock()
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        if len(failures) < self._limit:
            return None
        return failures[0] + self._window - now

    def failed(self, key: str) -> None:
        failures = self._failures.setdefault(key, deque(maxlen=self._limit))
        failures.append(self._clock())
        self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


def client_address(request: web.Request) -> str:
    """The address to throttle: the peer, or the address a proxy in front of us reports.

    On Render the peer is always the platform's proxy (a private address) and the client is the last
    entry of X-Forwarded-For, the one the proxy appended; entries before it are whatever the client
    sent. A peer with a public address is the client itself, and its X-Forwarded-For is not trusted.
    IPv6 clients are grouped by /64, the smallest block one subscriber usually gets.
    """
    peer = _ip(request.remote or "")
    if peer is not None and not peer.is_global:
        forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
        peer = _ip(forwarded) or peer
    if peer is None:
        return "unknown"
    if peer.version == 6:
        return str(ipaddress.ip_network(f"{peer}/64", strict=False))
    return str(peer)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
