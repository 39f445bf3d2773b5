"""The locker: one dedicated session holding this process's tenant locks, rebalanced every beat."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import time
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
from aiogram.utils.backoff import Backoff, BackoffConfig

from shared import metrics
from shared.db import DB_UNAVAILABLE, LOCK_SESSION, connect_dedicated, session_name
from shared.logs import get_logger
from supervisor.locks import holders, keys
from supervisor.locks.peers import Peer, fence_silent, publish_and_read
from supervisor.locks.stalls import StallWatch

log = get_logger(__name__)

# Exponential with jitter up to 30 s, reset only once a session has lived a while: a server that
# accepts connections and drops them again is not hammered twice a second.
_RECONNECT = BackoffConfig(min_delay=0.5, max_delay=30.0, factor=2.0, jitter=0.2)
_HEALTHY_SESSION_SECONDS = 30.0
DEGRADED_AFTER_SECONDS = 30.0  # below its share this long, the process says so in /health
_BATCH = 1000  # keys per pg_try_advisory_lock statement: a full lock table fails one batch, not all
_MIN_BATCH = 16  # the batch size a full lock table is approached with
_FULL_PAUSE_SECONDS = 30.0  # after "out of shared memory", no new locks for this long
_STICKY_SECONDS = 30.0  # a lock taken beyond the share is kept at least this long
HOLDERS_TOUCH_SECONDS = 10.0
RELEASE_PER_BEAT = 2500  # locks handed over a beat: half of 10,000 in two; the activations queue behind
LOCK_TABLE_MARGIN = 32  # slots left free after a full lock table, for connections and queries
ORPHAN_BEATS = 3  # a lock seen free on this many beats in a row is taken whatever the share
QUIESCE_SECONDS = 2.0  # how long a planned hand-over waits for the runtimes to step down before unlocking
# Tenants are handed only to a peer that beat within this many of our beats (at least HANDOVER_MIN_S):
# a peer frozen since its last beat counts as alive for the whole trust window, and what it was handed
# would sit unheld until ORPHAN_BEATS passed (chaos seed 404: held by nobody for 2 s).
HANDOVER_RECENT_BEATS = 1.5
HANDOVER_MIN_S = 0.5
RELEASED_CHANNEL = "tenant_locks_released"  # NOTIFY payload: the releasing process's identity
OnHeld = Callable[[Mapping[int, int]], None]
Quiesce = Callable[[list[int], float], Awaitable[bool]]


class LockConnectionLost(Exception):
    """The lock session is gone (closed, terminated by the server, or silent past the trust window)."""


_CONNECTION_LOST: tuple[type[BaseException], ...] = (*DB_UNAVAILABLE, LockConnectionLost)


class Locker:
    def __init__(
        self,
        dsn: str,
        identity: str,
        wanted: Callable[[], Mapping[int, int]],
        on_held: OnHeld,
        *,
        heartbeat: float = 1.0,
        trust_window: float = 4.0,
        on_database: Callable[[bool], None] = lambda _reachable: None,
        settling: Callable[[], bool] = lambda: False,
        quiesce: Quiesce | None = None,
    ) -> None:
        # Waits until the runtimes of tenants being handed over have stepped down (supervisor.lifecycle).
        self._quiesce = quiesce
        self._settling = settling  # still booting its tenants: publishes no ability, so nobody hands over yet
        self._dsn = dsn
        self._on_database = on_database  # told on every beat: the freshest word on the database's health
        self._identity = identity
        self._wanted = wanted  # tenant id -> lock key, for tenants this process is able to serve
        self._on_held = on_held
        self._heartbeat = heartbeat
        self._trust_window = trust_window
        self._conn: asyncpg.Connection | None = None
        self.held: dict[int, int] = {}
        self.live_lockers = 0
        self.able_lockers = 0
        self.unavailable = 0  # wanted tenants left unheld because the lock table is full
        self.share = 0
        self.below_share_since: float | None = None
        self._free_beats: dict[int, int] = {}  # tenant id -> consecutive beats its lock was seen free
        self._sticky: dict[int, float] = {}  # tenant id -> monotonic time it was taken beyond the share
        self._topology: tuple[str, ...] = ()
        self._full_until = 0.0
        self._cap: int | None = None  # most locks this session may hold, learnt from a full lock table
        self._batch = _BATCH
        self._holders_touched = 0.0
        self._errors_logged: set[str] = set()
        self._confirmed_at: float | None = None  # monotonic time of the last good beat
        self.epoch = 0  # +1 on every step-down: work started under an older epoch acts for nobody
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self.stalls = StallWatch(on_stall=self._wake.set)  # a stall voids the confirmation: beat now
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    def poke(self) -> None:
        """Re-evaluate now (a tenant was added, removed or became able) instead of at the next beat."""
        self._wake.set()

    def degraded(self) -> str | None:
        """Why this process serves less than it should, or None."""
        if self._conn is None:
            return "no lock session (database unreachable?)"
        if self.unavailable:
            return f"Postgres lock table full: {self.unavailable} tenants unheld"
        since = self.below_share_since
        if since is not None and time.monotonic() - since > DEGRADED_AFTER_SECONDS:
            return (
                f"holds {len(self.held)} tenants, below its share of {self.share} for {time.monotonic() - since:.0f} s"
            )
        return None

    def confirmed(self) -> bool:
        """True while the last good beat is within the trust window: what `held` says is still true.
        A process that froze past it acts for no tenant until a beat confirms again (peers fence a
        silent process only after three windows)."""
        at = self._confirmed_at
        return (
            self._conn is not None
            and not self._lost.is_set()
            and at is not None
            and time.monotonic() - at < self._trust_window
            and not self.stalls.stalled_since(at)
        )

    def holds(self, tenant_id: int, key: int) -> bool:
        """True while this process's lock session holds the tenant's lock under this key, confirmed."""
        return self.confirmed() and self.held.get(tenant_id) == key

    async def run(self) -> None:
        backoff = Backoff(_RECONNECT)
        async with self.stalls.watching():
            while not self._stopping:
                connected_at: float | None = None
                try:
                    self._lost.clear()
                    conn = self._conn = await connect_dedicated(
                        self._dsn, application_name=session_name(LOCK_SESSION, self._identity), keepalive=True
                    )
                    conn.add_termination_listener(self._on_terminated)
                    await conn.add_listener(RELEASED_CHANNEL, self._on_released)
                    connected_at = time.monotonic()
                    await self._adopt(conn)
                    await self._loop(conn)
                except _CONNECTION_LOST as exc:
                    if self._stopping:
                        return
                    log.warning("lock connection lost: all tenants step down to standby", error=type(exc).__name__)
                    self._on_database(False)
                    self._step_down()
                    if connected_at is not None and time.monotonic() - connected_at > _HEALTHY_SESSION_SECONDS:
                        backoff.reset()
                    await asyncio.sleep(next(backoff))
                except Exception:
                    # Not a lost connection, but this session's state is now unknown: start a clean one.
                    log.exception("locker failed: all tenants step down to standby")
                    self._step_down()
                    await asyncio.sleep(next(backoff))

    def _on_released(self, _conn: object, _pid: int, _channel: str, releaser: str) -> None:
        # A peer handed locks over: take them now, not at the next beat (held by nobody meanwhile).
        if releaser != self._identity:
            self._wake.set()

    def _on_terminated(self, conn: asyncpg.Connection) -> None:
        # Called by asyncpg as soon as the socket closes: step down now, not at the next beat.
        if conn is self._conn and not self._stopping:
            self._lost.set()
            self._wake.set()
            self._step_down()

    async def _adopt(self, conn: asyncpg.Connection) -> None:
        """A new session holds nothing; say so at once (a previous session's locks died with it)."""
        self.held.clear()
        self._on_held(self.held)
        await holders.clear(conn, self._identity)

    async def _loop(self, conn: asyncpg.Connection) -> None:
        last_ok = time.monotonic()
        while not self._stopping:
            if self._lost.is_set():
                raise LockConnectionLost
            # Fails (TimeoutError) once the trust window since the last good beat has passed.
            budget = max(0.1, self._trust_window - (time.monotonic() - last_ok))
            self._wake.clear()  # before the beat: a poke during it triggers the next one
            began = time.monotonic()
            try:
                async with asyncio.timeout(budget):
                    await self._beat(conn, budget)
            except asyncpg.exceptions.InsufficientResourcesError as exc:
                # The server is short of memory or lock slots: about statements, not this session.
                await self._after_statement_error(conn, exc, budget)
            except DB_UNAVAILABLE:
                raise
            except asyncpg.PostgresError as exc:
                await self._after_statement_error(conn, exc, budget)
            if self.stalls.stalled_since(began):
                continue  # what the beat saw may predate the stall: it confirms nothing; beat again now
            last_ok = self._confirmed_at = time.monotonic()
            self._on_database(True)
            self._on_held(self.held)
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation that races
            # with the event being set (shutdown does both at once).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat):
                    await self._wake.wait()

    async def _beat(self, conn: asyncpg.Connection, budget: float) -> None:
        wanted = dict(self._wanted())
        peers = await self._peers(conn, 0 if self._settling() else len(wanted), budget)
        share = self.share = math.ceil(len(wanted) / self.able_lockers) if wanted else 0
        released = await self._release(conn, wanted, share, peers, budget)
        await self._acquire(conn, wanted, share, released, budget)
        if len(self.held) >= share:
            self.below_share_since = None
        elif self.below_share_since is None:
            self.below_share_since = time.monotonic()
        metrics.LOCKS_UNAVAILABLE.set(self.unavailable)
        if time.monotonic() - self._holders_touched >= HOLDERS_TOUCH_SECONDS:
            # Only for people reading /status: one row per tenant, so not on every beat (10,000 row
            # updates a second at rest). Liveness is the `lockers` row, written on every beat.
            await holders.touch(conn, self._identity, budget)
            self._holders_touched = time.monotonic()

    async def _peers(self, conn: asyncpg.Connection, able: int, budget: float) -> list[Peer]:
        recent = max(HANDOVER_MIN_S, HANDOVER_RECENT_BEATS * self._heartbeat)
        rows = await publish_and_read(
            conn,
            self._identity,
            able,
            len(self.held),
            trust_window=self._trust_window,
            recent_window=recent,
            budget=budget,
        )
        peers = [
            Peer(r["identity"], r["able"], r["held"], r["fresh"], r["recent"]) for r in rows if r["pid"] is not None
        ]
        await fence_silent(conn, self._identity, [r for r in rows if r["pid"] is not None], self._trust_window, budget)
        live = [p for p in peers if p.fresh]
        self.live_lockers = 1 + len(live)
        self.able_lockers = 1 + sum(1 for p in live if p.able > 0)
        topology = tuple(sorted(p.identity for p in live if p.able > 0))
        if topology != self._topology:
            self._topology = topology
            self._sticky.clear()  # a peer came or went: the share is worth re-spreading
        return live

    async def _release(
        self, conn: asyncpg.Connection, wanted: Mapping[int, int], share: int, peers: list[Peer], budget: float
    ) -> set[int]:
        gone = {tid for tid, _ in self.held.items() - wanted.items()}  # in C: every beat, every held tenant
        now = time.monotonic()
        self._sticky = {tid: t for tid, t in self._sticky.items() if now - t < _STICKY_SECONDS and tid in self.held}
        # Excess goes only to peers with room for it that beat just now (so are not frozen since), highest
        # keys first (nlargest: at rest nothing moves and nothing is sorted), never what was just taken up.
        peer_room = sum(max(0, min(share, p.able) - p.held) for p in peers if p.able > 0 and p.recent)
        excess_n = min(max(0, len(self.held) - len(gone) - share), peer_room, RELEASE_PER_BEAT)
        keep = (t for t in self.held if t not in gone and t not in self._sticky)  # not even read when excess_n is 0
        handed_over = heapq.nlargest(excess_n, keep, key=self.held.__getitem__)
        to_release = gone | set(handed_over)
        if not to_release:
            return to_release
        released = {tid: self.held.pop(tid) for tid in to_release}
        for tid in to_release:
            self._sticky.pop(tid, None)
        if self._quiesce is not None:
            # Break before make: the runtimes step down while the locks are still held, so the next owner
            # never overlaps them; also for what is no longer wanted here (Telegram unreachable, or not).
            self._on_held(self.held)
            if not await self._quiesce(sorted(to_release), min(QUIESCE_SECONDS, budget / 2)):
                log.warning("releasing tenants before their runtimes stepped down", tenants=len(to_release))
        await keys.unlock(conn, list(released.values()), budget)
        await holders.forget(conn, self._identity, list(to_release), budget)
        # Whatever was freed (handed over, or no longer wanted here), a peer that wants it takes it now.
        await conn.execute("SELECT pg_notify($1, $2)", RELEASED_CHANNEL, self._identity, timeout=budget)
        return to_release

    async def _acquire(
        self, conn: asyncpg.Connection, wanted: Mapping[int, int], share: int, released: set[int], budget: float
    ) -> None:
        candidates = {tid: wanted[tid] for tid in wanted.keys() - self.held.keys()}
        if not candidates:
            self._free_beats = {}
            self.unavailable = 0
            return
        locked = await keys.locked(conn, budget)
        free = {tid for tid, key in candidates.items() if key not in locked}
        # Held by nobody because the server's lock table has no room left for them.
        self.unavailable = len(free) if self._cap is not None else 0
        if time.monotonic() < self._full_until:
            self._free_beats = {}
            return
        # Seen free on ORPHAN_BEATS beats in a row (the one it was released on not counted): every able
        # peer had a beat of its own to take it and none did, so it is ours whatever the share says.
        self._free_beats = {tid: self._free_beats.get(tid, 0) + 1 for tid in free if tid not in released}
        orphaned = {tid for tid, beats in self._free_beats.items() if beats >= ORPHAN_BEATS}
        limit = self._cap if self._cap is not None else len(wanted)
        room = max(0, min(share, limit) - len(self.held))
        by_key = sorted(free - orphaned, key=lambda tid: candidates[tid])[:room]
        attempt = (sorted(orphaned, key=lambda tid: candidates[tid]) + by_key)[: max(0, limit - len(self.held))]
        got: set[int] = set()
        for start in range(0, len(attempt), self._batch):
            batch = attempt[start : start + self._batch]
            try:
                taken = await keys.try_lock(conn, [candidates[tid] for tid in batch], budget)
            except asyncpg.exceptions.OutOfMemoryError:
                # The server's lock table is full: this batch may have taken some keys. Undo it (an unlock
                # needs no room; a query of pg_locks might not get any), keep what earlier batches took.
                await keys.unlock(conn, [candidates[tid] for tid in batch], budget)
                self._took(conn_got=got, candidates=candidates, orphaned=orphaned)
                await self._lock_table_full(conn, wanted, budget)
                if got:
                    await holders.record(conn, self._identity, got, budget)
                return
            got.update(tid for tid in batch if candidates[tid] in taken)
        self._took(conn_got=got, candidates=candidates, orphaned=orphaned)
        if got:
            await holders.record(conn, self._identity, got, budget)

    def _took(self, *, conn_got: set[int], candidates: Mapping[int, int], orphaned: set[int]) -> None:
        now = time.monotonic()
        for tid in conn_got:
            self.held[tid] = candidates[tid]
            if tid in orphaned:
                self._sticky[tid] = now

    async def _lock_table_full(self, conn: asyncpg.Connection, wanted: Mapping[int, int], budget: float) -> None:
        """The server's shared lock table is full, and a full table also refuses new connections and
        ordinary queries of every database on the server. Close in with smaller batches (each failure
        undone at once), then give back a margin and never hold more than that from now on."""
        if self._batch > _MIN_BATCH:
            self._batch = max(_MIN_BATCH, self._batch // 8)
            self._full_until = time.monotonic() + 1.0
            log.info("Postgres lock table nearly full; taking locks in smaller batches", batch=self._batch)
            return
        margin = max(LOCK_TABLE_MARGIN, math.ceil(len(self.held) * 0.03))
        give_back = sorted(self.held, key=lambda tid: -self.held[tid])[:margin]
        await keys.unlock(conn, [self.held[tid] for tid in give_back], budget)
        for tid in give_back:
            del self.held[tid]
        self._cap = len(self.held)
        self._full_until = time.monotonic() + _FULL_PAUSE_SECONDS
        log.error(
            "Postgres lock table is full; this process holds at most this many tenant locks from now on "
            "(raise max_locks_per_transaction for more)",
            cap=self._cap,
            wanted=len(wanted),
        )

    async def _after_statement_error(self, conn: asyncpg.Connection, exc: asyncpg.PostgresError, budget: float) -> None:
        kind = type(exc).__name__
        if kind not in self._errors_logged:
            self._errors_logged.add(kind)
            log.warning("lock statement failed; locks re-read from the server", error=kind, detail=str(exc)[:200])
        # When the server cannot even answer this, what the session holds stays as it was; the next beat retries.
        with contextlib.suppress(asyncpg.exceptions.InsufficientResourcesError):
            await self._resync_held(conn, dict(self._wanted()), budget)

    async def _resync_held(self, conn: asyncpg.Connection, wanted: Mapping[int, int], budget: float) -> None:
        """Make `held` the server's truth: what this session holds now; unlock what is not wanted."""
        mine = await keys.mine(conn, budget)
        tenant_by_key = {key: tid for tid, key in wanted.items()}
        stray = [key for key in mine if key not in tenant_by_key]
        if stray:
            await keys.unlock(conn, stray, budget)
        before = set(self.held)
        self.held = {tenant_by_key[key]: key for key in mine if key in tenant_by_key}
        if set(self.held) - before:
            await holders.record(conn, self._identity, set(self.held) - before, budget)

    def _step_down(self) -> None:
        self.epoch += 1
        self._confirmed_at = None
        self.held.clear()
        self._sticky.clear()
        self._free_beats = {}
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()
        self._on_held(self.held)

    async def release_all(self) -> None:
        """On shutdown: free every lock at once so another process takes over immediately.

        Closing the session is what frees them: Postgres drops a session's advisory locks the moment
        its socket closes, and there is no statement in flight to wait for.
        """
        self._stopping = True
        self._wake.set()
        self._step_down()
