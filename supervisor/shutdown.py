"""Stopping the process inside Render's 30 s between SIGTERM and SIGKILL: locks first (the other
replica takes over at once), then a bounded drain, then connections. Closes only what boot built
(`Parts`), so it is also the cleanup of a boot that failed or was stopped half way."""

from __future__ import annotations

import asyncio
import contextlib
import time

from shared.logs import get_logger
from supervisor.compose import Parts

__all__ = ["DRAIN_SECONDS", "shutdown"]

log = get_logger(__name__)

DRAIN_SECONDS = 18.0  # plus ~7 s of closing: inside Render's 30 s between SIGTERM and SIGKILL


async def shutdown(parts: Parts, identity: str) -> None:
    """The drain is capped at DRAIN_SECONDS and each close at a few seconds: all within Render's 30 s."""
    started = time.monotonic()
    if parts.locker is not None:
        await parts.locker.release_all()
    for task in parts.tasks:
        task.cancel()
    await asyncio.gather(*parts.tasks, return_exceptions=True)
    if parts.platform is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(parts.platform[0].release(), timeout=2)
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            if parts.lifecycle is not None:
                await parts.lifecycle.stop_all(drain_timeout=DRAIN_SECONDS - 5)
            if parts.services is not None:
                await parts.services.jobs.drain(timeout=3)
    except TimeoutError:
        log.warning("drain did not finish in time; stopping anyway", seconds=DRAIN_SECONDS)
    await _close_pool(parts, identity)
    for closer in (
        parts.session.close if parts.session else None,
        parts.probe.close if parts.probe else None,
        parts.kie.aclose if parts.kie else None,
        parts.platform[1].session.close if parts.platform else None,
    ):
        if closer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closer(), timeout=2)
    log.info("shutdown complete", seconds=round(time.monotonic() - started, 3))


async def _close_pool(parts: Parts, identity: str) -> None:
    """This process's rows go first, so operators and the other replica stop counting it at once."""
    pool = parts.pool
    if pool is None:
        return
    with contextlib.suppress(Exception):
        await pool.execute("DELETE FROM lock_holders WHERE instance = $1", identity, timeout=2)
        await pool.execute("DELETE FROM instances WHERE name = $1", identity, timeout=2)
        await pool.execute("DELETE FROM lockers WHERE identity = $1", identity, timeout=2)
    try:
        await asyncio.wait_for(pool.close(), timeout=3)
    except TimeoutError:
        pool.terminate()
