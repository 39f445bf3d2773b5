"""Every background loop of the process, supervised (the way arq's `poll()` drives its worker).

`periodic()` runs a tick every few seconds forever; `supervise()` runs a long-lived loop (a dedicated
connection's life) and starts it again when it ends. An exception is logged, counted and followed by
a backoff, never a silent death; `LOOPS` keeps each loop's last success for `/health`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram.utils.backoff import Backoff, BackoffConfig

from shared import metrics
from shared.logs import get_logger

__all__ = ["LOOPS", "LoopState", "periodic", "supervise"]

log = get_logger(__name__)

_RESTART = BackoffConfig(min_delay=0.5, max_delay=30.0, factor=2.0, jitter=0.1)


@dataclass
class LoopState:
    name: str
    every: float | None  # seconds between ticks; None for a long-lived loop
    last_ok: float | None = None  # monotonic time of the last successful tick (or of the start)
    failures: int = 0
    restarts: int = 0

    def stale(self, now: float) -> bool:
        """A periodic loop that has not completed a tick in three periods (and 30 s) is stuck or failing."""
        if self.every is None or self.last_ok is None:
            return False
        return now - self.last_ok > max(30.0, 3 * self.every)


LOOPS: dict[str, LoopState] = {}


async def periodic(name: str, every: float, tick: Callable[[], Awaitable[object]]) -> None:
    """Run `tick` every `every` seconds until cancelled. A failing tick is logged and counted, and the
    next one waits with backoff (up to 30 s) instead of hammering what is failing."""
    state = LOOPS[name] = LoopState(name, every, last_ok=time.monotonic())
    backoff = Backoff(_RESTART)
    delay = every
    while True:
        await asyncio.sleep(delay)
        try:
            await tick()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _raise_if_cancelled()
            state.failures += 1
            metrics.LOOP_FAILURES.labels(name).inc()
            log.warning("background loop tick failed", loop=name, error=f"{type(exc).__name__}: {exc}"[:300])
            delay = max(every, next(backoff))
            continue
        state.last_ok = time.monotonic()
        backoff.reset()
        delay = every


async def supervise(
    name: str, run: Callable[[], Awaitable[None]], *, finished: Callable[[], bool] = lambda: False
) -> None:
    """Run a long-lived loop until cancelled or `finished()`; when it returns or raises otherwise, log,
    count and start it again."""
    state = LOOPS[name] = LoopState(name, None, last_ok=time.monotonic())
    backoff = Backoff(_RESTART)
    while True:
        started = time.monotonic()
        try:
            await run()
            _raise_if_cancelled()
            if finished():
                return
            log.warning("background loop ended; restarting", loop=name)
        except asyncio.CancelledError:
            raise
        except Exception:
            _raise_if_cancelled()
            if finished():
                return
            log.exception("background loop crashed; restarting", loop=name)
        state.restarts += 1
        metrics.LOOP_RESTARTS.labels(name).inc()
        if time.monotonic() - started > 60:
            backoff.reset()
        await asyncio.sleep(next(backoff))
        state.last_ok = time.monotonic()


def _raise_if_cancelled() -> None:
    """A cancellation some library swallowed (asyncio.wait_for in 3.11 can) still ends the loop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
