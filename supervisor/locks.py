"""All of a process's tenant locks on ONE dedicated connection (the "locker" pattern of Que).

Pools reset advisory locks on release, so the locks live on a connection of their own. A heartbeat
runs every second; if none has succeeded within the trust window (shorter than the server's own
detection time, see KEEPALIVE_SETTINGS), this process assumes its locks are gone and steps down
before another process could have taken them. Tenants spread across processes: each takes about
ceil(tenants / live lockers) and releases the excess when a new process appears.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
from aiogram.utils.backoff import Backoff, BackoffConfig

from shared.db import LOCK_NS_TENANT, LOCK_SESSION, connect_dedicated, session_name
from shared.logs import get_logger

log = get_logger(__name__)

_RECONNECT = BackoffConfig(min_delay=0.5, max_delay=10.0, factor=2.0, jitter=0.1)

LockChange = Callable[[set[int], set[int]], Awaitable[None]]


class Locker:
    def __init__(
        self,
        dsn: str,
        instance: str,
        wanted: Callable[[], Mapping[int, int]],
        on_change: LockChange,
        *,
        heartbeat: float = 1.0,
        trust_window: float = 4.0,
    ) -> None:
        self._dsn = dsn
        self._instance = instance
        self._wanted = wanted  # tenant id -> lock key, for tenants this process can serve
        self._on_change = on_change  # (acquired tenant ids, released tenant ids)
        self._heartbeat = heartbeat
        self._trust_window = trust_window
        self._conn: asyncpg.Connection | None = None
        self.held: dict[int, int] = {}
        self.live_lockers = 0
        self._wake = asyncio.Event()
        self._stopping = False

    def poke(self) -> None:
        """Re-evaluate now (a tenant was added or removed) instead of at the next heartbeat."""
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(_RECONNECT)
        while not self._stopping:
            try:
                self._conn = await connect_dedicated(
                    self._dsn, application_name=session_name(LOCK_SESSION, self._instance), keepalive=True
                )
                backoff.reset()
                await self._loop(self._conn)
            except asyncio.CancelledError:
                raise
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                if self._stopping:
                    return
                log.warning("lock connection lost: all tenants step down to standby", error=type(exc).__name__)
                await self._step_down()
                await asyncio.sleep(next(backoff))

    async def _loop(self, conn: asyncpg.Connection) -> None:
        last_ok = time.monotonic()
        while not self._stopping:
            # Fails (TimeoutError) once the trust window since the last good heartbeat has passed.
            budget = max(0.1, self._trust_window - (time.monotonic() - last_ok))
            self.live_lockers = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE $1",
                LOCK_SESSION + "%",
                timeout=budget,
            )
            last_ok = time.monotonic()
            await self._rebalance(conn, budget=self._trust_window)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._heartbeat)

    async def _rebalance(self, conn: asyncpg.Connection, *, budget: float) -> None:
        wanted = dict(self._wanted())
        share = math.ceil(len(wanted) / max(1, self.live_lockers)) if wanted else 0
        gone = {tid for tid in self.held if wanted.get(tid) != self.held[tid]}
        keep = [tid for tid in self.held if tid not in gone]
        # Release the excess with the highest keys; another process picks them up on its next beat.
        excess = sorted(keep, key=lambda tid: self.held[tid], reverse=True)[: max(0, len(keep) - share)]
        to_release = gone | set(excess)
        if to_release:
            await conn.execute(
                "SELECT pg_advisory_unlock($1, k) FROM unnest($2::int[]) AS k",
                LOCK_NS_TENANT,
                [self.held[tid] for tid in to_release],
                timeout=budget,
            )
            await conn.execute(
                "DELETE FROM lock_holders WHERE instance = $1 AND tenant_id = ANY($2::bigint[])",
                self._instance,
                list(to_release),
                timeout=budget,
            )
            for tid in to_release:
                del self.held[tid]
        room = share - len(self.held)
        candidates = sorted((tid for tid in wanted if tid not in self.held), key=lambda tid: wanted[tid])
        acquired: set[int] = set()
        if room > 0 and candidates:
            # Every candidate, not just the lowest keys: the other processes keep the lowest keys and
            # release the highest, so a window over the lowest could miss every free lock for good.
            keys = [wanted[tid] for tid in candidates]
            got = await conn.fetch(
                "SELECT k FROM unnest($2::int[]) AS k WHERE pg_try_advisory_lock($1, k)",
                LOCK_NS_TENANT,
                keys,
                timeout=budget,
            )
            by_key = {v: k for k, v in wanted.items()}
            got_keys = sorted(r["k"] for r in got)
            # We may have won more than our share in one batch: hand the surplus straight back.
            surplus = got_keys[room:]
            if surplus:
                await conn.execute(
                    "SELECT pg_advisory_unlock($1, k) FROM unnest($2::int[]) AS k",
                    LOCK_NS_TENANT,
                    surplus,
                    timeout=budget,
                )
            for key in got_keys[:room]:
                acquired.add(by_key[key])
                self.held[by_key[key]] = key
            if acquired:
                await conn.execute(
                    """INSERT INTO lock_holders (tenant_id, instance) SELECT t, $1 FROM unnest($2::bigint[]) t
                       ON CONFLICT (tenant_id) DO UPDATE SET instance = EXCLUDED.instance, since = now(),
                       heartbeat_at = now()""",
                    self._instance,
                    list(acquired),
                    timeout=budget,
                )
        await conn.execute(
            "UPDATE lock_holders SET heartbeat_at = now() WHERE instance = $1", self._instance, timeout=budget
        )
        if acquired or to_release:
            await self._on_change(acquired, to_release)

    async def _step_down(self) -> None:
        released = set(self.held)
        self.held.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()
        if released:
            await self._on_change(set(), released)

    async def release_all(self) -> None:
        """On shutdown: free every lock at once so another process takes over immediately.

        Closing the session is what frees them: Postgres drops a session's advisory locks the moment
        its socket closes, and there is no statement in flight to wait for.
        """
        self._stopping = True
        self._wake.set()
        await self._step_down()
