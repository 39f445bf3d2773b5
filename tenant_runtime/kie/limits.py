"""Per-API-key protections for KIE calls: sliding-window rate limits, a circuit breaker, backoff.

Tables are keyed by `key_id(api_key)`, a hash, so none of them holds a tenant's secret. Entries are
tiny and bounded by the number of tenants, so they are never evicted.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

CircuitState = Literal["closed", "open", "half_open"]


def key_id(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class RateLimit:
    calls: int
    per_s: float


@dataclass
class _Window:
    stamps: deque[float] = field(default_factory=deque)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SlidingWindowLimiter:
    """At most `limit.calls` acquisitions per `limit.per_s` seconds per key; the excess waits its turn.

    KIE answers excess calls with 429 instead of queueing them, so waiting here keeps a busy tenant's
    jobs flowing instead of spending retries.
    """

    def __init__(self, limit: RateLimit) -> None:
        self._limit = limit
        self._windows: dict[str, _Window] = {}

    async def acquire(self, key: str) -> float:
        """Wait for a slot; return the seconds spent waiting."""
        window = self._windows.setdefault(key, _Window())
        started = time.monotonic()
        # Sleeping while holding the lock makes later callers queue behind earlier ones (FIFO).
        async with window.lock:
            while True:
                now = time.monotonic()
                horizon = now - self._limit.per_s
                while window.stamps and window.stamps[0] <= horizon:
                    window.stamps.popleft()
                if len(window.stamps) < self._limit.calls:
                    window.stamps.append(now)
                    return now - started
                await asyncio.sleep(window.stamps[0] - horizon)


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class CircuitBreaker:
    """Fail fast for a key after `threshold` consecutive failures, for `cooldown_s` seconds.

    After the cool-down one probe call is let through (half-open): its success closes the circuit,
    its failure opens it again for another cool-down.
    """

    def __init__(self, threshold: int, cooldown_s: float) -> None:
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._circuits: dict[str, _Circuit] = {}

    def state(self, key: str) -> CircuitState:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.opened_at is None:
            return "closed"
        if circuit.probing or time.monotonic() - circuit.opened_at >= self._cooldown_s:
            return "half_open"
        return "open"

    def allow(self, key: str) -> bool:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.opened_at is None:
            return True
        if circuit.probing or time.monotonic() - circuit.opened_at < self._cooldown_s:
            return False
        circuit.probing = True
        return True

    def retry_after(self, key: str) -> float:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.opened_at is None:
            return 0.0
        return max(0.0, circuit.opened_at + self._cooldown_s - time.monotonic())

    def record_success(self, key: str) -> None:
        self._circuits.pop(key, None)

    def record_failure(self, key: str) -> bool:
        """Count a failure; return True when this failure opened the circuit."""
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        was_probe, circuit.probing = circuit.probing, False
        if was_probe or (circuit.opened_at is None and circuit.failures >= self._threshold):
            circuit.opened_at = time.monotonic()
            return True
        return False

    def release(self, key: str) -> None:
        """The call gave no verdict (cancelled, or a local bug): free the probe slot."""
        circuit = self._circuits.get(key)
        if circuit is not None:
            circuit.probing = False


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 5.0
    budget_s: float = 20.0
    """Total time one call may spend, retries and waits included, before giving up."""


class Backoff:
    """Exponential backoff with equal jitter, bounded by attempts and by a total time budget."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._deadline = time.monotonic() + policy.budget_s
        self.attempt = 1

    def next_delay(self) -> float | None:
        """The pause before the next attempt, or None when the call should give up."""
        if self.attempt >= self._policy.attempts:
            return None
        cap = min(self._policy.max_delay_s, self._policy.base_delay_s * 2 ** (self.attempt - 1))
        # Equal jitter: spread retries from many tenants, but never retry immediately.
        delay = cap / 2 + random.uniform(0, cap / 2)
        if time.monotonic() + delay > self._deadline:
            return None
        self.attempt += 1
        return delay
