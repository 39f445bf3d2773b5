"""Noticing that this process's event loop stood still (SIGSTOP, a stalled VM, a long GC pause).

A process that stood still cannot know what happened meanwhile: its lock session may have been
terminated and a peer may already serve its tenants. The session's end reaches it only as an event it
has not processed yet, and on waking another ready callback (a poll that was due) may run first. So a
stall, however short the trust window says it was, voids the lock confirmation until a beat that began
after it succeeds (chaos seed 5: a process frozen for 3.7 s, its lock session terminated meanwhile,
polled once beside the peer that had taken the bot).

A ticker notes the time every TICK_SECONDS; a gap past LIMIT_SECONDS is a stall. The gap is also read
directly (`stalled_since`), because right after waking the ticker itself may not have run yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from shared.logs import get_logger

__all__ = ["LIMIT_SECONDS", "TICK_SECONDS", "StallWatch"]

log = get_logger(__name__)

TICK_SECONDS = 0.1
# A peer takes a freed lock at its next beat (within a heartbeat, 1 s): a shorter stall seldom spans both
# a session's end and a peer's beat, and a busy loop's lag (milliseconds; a few hundred at a
# 10,000-tenant boot) stays under it.
LIMIT_SECONDS = 1.0


class StallWatch:
    def __init__(self, on_stall: Callable[[], None] = lambda: None) -> None:
        self._on_stall = on_stall
        self._ticked_at = time.monotonic()
        self._noticed_at = float("-inf")  # monotonic time the last stall was noticed

    def stalled_since(self, since: float) -> bool:
        """Did the loop stand still at any time after `since` (monotonic), up to now?"""
        now = time.monotonic()
        return now - self._ticked_at > LIMIT_SECONDS or self._noticed_at >= since

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Watch while the body runs."""
        task = asyncio.create_task(self._run(), name="stall-watch")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])

    async def _run(self) -> None:
        while True:
            self._ticked_at = time.monotonic()
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            if now - self._ticked_at > LIMIT_SECONDS:
                self._noticed_at = now
                stalled = round(now - self._ticked_at, 2)
                log.warning("event loop stood still: locks unconfirmed until the next beat", stalled_s=stalled)
                self._on_stall()
