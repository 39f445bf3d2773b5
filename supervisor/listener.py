"""Hot reload: LISTEN for tenant changes on a dedicated connection, plus periodic full resyncs.

NOTIFY is lost while the listener is disconnected, so every (re)connect starts with a full resync,
and a resync also runs every `resync_interval` seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import asyncpg
from aiogram.utils.backoff import Backoff, BackoffConfig

from shared.db import LISTEN_SESSION, connect_dedicated, session_name
from shared.logs import get_logger

log = get_logger(__name__)

CHANNEL = "tenant_changed"
_LOST = -1  # queued when the listen session closes (no tenant has a negative id)
_RECONNECT = BackoffConfig(min_delay=0.5, max_delay=15.0, factor=2.0, jitter=0.1)


class TenantListener:
    def __init__(
        self,
        dsn: str,
        instance: str,
        resync: Callable[[], Awaitable[None]],
        changed: Callable[[int], Awaitable[None]],
        *,
        resync_interval: float = 60.0,
    ) -> None:
        self._dsn = dsn
        self._instance = instance
        self._resync = resync
        self._changed = changed
        self._interval = resync_interval
        self._queue: asyncio.Queue[int | None] = asyncio.Queue()
        self._conn: asyncpg.Connection | None = None

    def _on_terminated(self, conn: object) -> None:
        if conn is self._conn:
            self._queue.put_nowait(_LOST)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._queue.put_nowait(int(json.loads(payload)["id"]))
        except (ValueError, KeyError, TypeError):
            self._queue.put_nowait(None)  # unreadable: fall back to a full resync

    async def run(self) -> None:
        backoff = Backoff(_RECONNECT)
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect_dedicated(
                    self._dsn, application_name=session_name(LISTEN_SESSION, self._instance), keepalive=True
                )
                await conn.add_listener(CHANNEL, self._on_notify)
                # A terminated session wakes the consumer at once: changes made meanwhile are not lost
                # (the resync after the reconnect reads them), but every second until then would be.
                self._conn = conn
                conn.add_termination_listener(self._on_terminated)
                backoff.reset()
                await self._resync()
                await self._consume(conn)
            except asyncio.CancelledError:
                raise
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                log.warning("tenant listener disconnected; will resync after reconnect", error=type(exc).__name__)
                await asyncio.sleep(next(backoff))
            finally:
                self._conn = None  # our own close below is not a loss to report
                if conn is not None:
                    conn.terminate()

    async def _consume(self, conn: asyncpg.Connection) -> None:
        loop = asyncio.get_running_loop()
        next_resync = loop.time() + self._interval
        while True:
            timeout = max(0.0, next_resync - loop.time())
            try:
                tenant_id = await asyncio.wait_for(self._queue.get(), timeout=min(timeout, 5.0))
            except TimeoutError:
                # A silent connection may be a dead one: ask it something.
                await conn.fetchval("SELECT 1", timeout=5)
                if loop.time() >= next_resync:
                    await self._resync()
                    next_resync = loop.time() + self._interval
                continue
            if tenant_id == _LOST:
                raise asyncpg.InterfaceError("the listen session was closed")
            if tenant_id is None:
                await self._resync()
            else:
                await self._changed(tenant_id)
