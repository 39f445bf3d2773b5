"""The alert loop every process runs (one `periodic()` tick every ALERT_INTERVAL_SECONDS).

Every process publishes its own health. Then one of them, the sender, evaluates and sends:

- **One sender.** A tick runs in one transaction on a pooled connection that first takes the platform
  advisory lock with `pg_try_advisory_xact_lock` (never waiting), then the sender lease (a row renewed
  on each tick, taken over once stale). The lock makes two ticks never overlap; the lease keeps one
  process the sender while it lives, so the process that knows it was the sender can still speak
  when the database is gone. Everything a tick decides and sends is committed with the same
  transaction: a sender that dies mid-tick leaves nothing half-recorded, and a new sender reads
  exactly what was told. A sender frozen inside its transaction is cut off by the server
  (`idle_in_transaction_session_timeout`), which frees the lock; a session lock on a connection of its
  own would stay held by a frozen process, and cost every replica one more connection.
- **Level-triggered.** Incidents are what `detect()` finds true now; each is told once when it starts and
  once when it ends, per channel (a failed channel is retried alone).
- **Rate-limited.** At most ALERT_MAX_PER_MINUTE messages a minute, counted in `alert_deliveries`
  whoever sent them; beyond it, everything due goes out as one digest.
- **Database unreachable.** Nothing can be read then, so only the process that held the lease when the
  database went away tells it, from memory, after `db_alert_after` seconds; and tells the recovery.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg

from shared.db import LOCK_NS_PLATFORM, PLATFORM_LOCK_ALERTS
from shared.logs import get_logger
from shared.periodic import LOOPS
from shared.settings import Settings
from supervisor.alerts.channels import Channel, ChannelError, channels_from
from supervisor.alerts.detect import Thresholds, detect
from supervisor.alerts.health import HealthPublisher, LoopWatch, health_of
from supervisor.alerts.incidents import Due, due_notices, reconcile, record_delivery
from supervisor.alerts.message import AlertMessage, digest_message, notice_message
from supervisor.alerts.model import Event, Incident, Kind, Notice
from supervisor.lifecycle import Lifecycle
from supervisor.locks import Locker

__all__ = ["AlertService"]

log = get_logger(__name__)

DB_ALERT_AFTER_SECONDS = 30.0
SEND_BUDGET_SECONDS = 25.0  # every send of one tick, inside the tick's transaction
CHANNEL_COOLDOWN_SECONDS = 30.0  # a channel that failed is not tried again for this long
PRUNE_EVERY_SECONDS = 3600.0
KEEP_DELIVERIES = "30 days"

_LEASE_SQL = """
INSERT INTO alert_sender (id, identity, renewed_at) VALUES (true, $1, now())
ON CONFLICT (id) DO UPDATE SET identity = EXCLUDED.identity, renewed_at = now()
WHERE alert_sender.identity = EXCLUDED.identity OR alert_sender.renewed_at < now() - make_interval(secs => $2)
RETURNING identity
"""


class AlertService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        identity: str,
        channels: Sequence[Channel],
        *,
        health: HealthPublisher | None = None,
        db_reachable: Callable[[], bool] = lambda: True,
        language: str = "ru",
        max_per_minute: int = 10,
        interval: float = 5.0,
        thresholds: Thresholds | None = None,
        db_alert_after: float = DB_ALERT_AFTER_SECONDS,
        lease_seconds: float | None = None,
        cooldown: float = CHANNEL_COOLDOWN_SECONDS,
    ) -> None:
        self._pool = pool
        self._identity = identity
        self._channels = list(channels)
        self._health = health
        self._db_reachable = db_reachable
        self._language = language
        self._max_per_minute = max_per_minute
        # Several missed ticks before another process takes over: a slow tick is not a dead sender.
        self._lease_seconds = lease_seconds if lease_seconds is not None else max(15.0, 3 * interval)
        self._cooldown = cooldown
        self._thresholds = thresholds or Thresholds()
        self._db_alert_after = db_alert_after
        self._cooling: dict[str, float] = {}  # channel -> monotonic time it may be tried again
        self._leased_at: float | None = None  # monotonic time this process last renewed the lease
        self._sender: str | None = None  # who held the lease at our last look, for logging a takeover
        self._pruned_at = 0.0
        self._db_down_since: float | None = None
        self._db_incident: Notice | None = None  # the outage this process has told (alerted channels below)
        self._db_told: set[str] = set()
        self._db_recovered: set[str] = set()

    @classmethod
    def build(
        cls,
        settings: Settings,
        pool: asyncpg.Pool,
        identity: str,
        lifecycle: Lifecycle,
        locker: Locker,
        db_reachable: Callable[[], bool],
        telegram_reachable: Callable[[], bool] = lambda: True,
    ) -> AlertService:
        loops = LoopWatch(LOOPS)
        return cls(
            pool,
            identity,
            channels_from(settings),
            health=HealthPublisher(identity, lambda: health_of(lifecycle, locker, loops, telegram_reachable)),
            db_reachable=db_reachable,
            language=settings.alert_language,
            max_per_minute=settings.alert_max_per_minute,
            interval=settings.alert_interval_seconds,
        )

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self._channels]

    async def tick(self) -> None:
        now = time.monotonic()
        if not self._db_reachable():
            await self._database_down(now)
            return
        self._db_down_since = None
        if self._db_incident is not None:
            await self._database_back()
        async with self._pool.acquire() as conn:
            if self._health is not None:
                await self._health.publish_once(conn)
            if not self._channels:
                return
            async with conn.transaction():
                # A sender that stalls inside this transaction is cut off by the server, lock and all.
                await conn.execute("SET LOCAL idle_in_transaction_session_timeout = '60s'")
                if not await conn.fetchval(
                    "SELECT pg_try_advisory_xact_lock($1, $2)", LOCK_NS_PLATFORM, PLATFORM_LOCK_ALERTS
                ):
                    return
                if not await self._hold_lease(conn, now):
                    return
                found = await detect(conn, self._thresholds, self._language)
                stored = await reconcile(conn, found, self.channel_names)
                await self._deliver(conn, due_notices(stored, self._ready_channels(now)))
                if now - self._pruned_at > PRUNE_EVERY_SECONDS:
                    await conn.execute(
                        f"DELETE FROM alert_deliveries WHERE sent_at < now() - interval '{KEEP_DELIVERIES}'"
                    )
                    self._pruned_at = now

    # --- the sender ---------------------------------------------------------------------------------

    async def _hold_lease(self, conn: asyncpg.Connection, now: float) -> bool:
        before = await conn.fetchval("SELECT identity FROM alert_sender")
        if await conn.fetchval(_LEASE_SQL, self._identity, self._lease_seconds) is None:
            self._leased_at = None
            self._sender = before
            return False
        if before != self._identity:
            log.info("alert sender: this process sends operator alerts now", previous=before)
        self._leased_at = now
        self._sender = self._identity
        return True

    def _ready_channels(self, now: float) -> list[str]:
        return [c.name for c in self._channels if self._cooling.get(c.name, 0.0) <= now]

    async def _deliver(self, conn: asyncpg.Connection, due: list[Due]) -> None:
        if not due:
            return
        sent = await conn.fetchval("SELECT count(*) FROM alert_deliveries WHERE sent_at > now() - interval '1 minute'")
        budget = self._max_per_minute - sent
        if budget <= 0:
            return  # the next tick after the window tells everything still due
        try:
            async with asyncio.timeout(SEND_BUDGET_SECONDS):
                if len(due) <= budget:
                    for item in due:
                        message = notice_message(item.notice, self._language, self._identity)
                        ok = await self._send(message, item.channels)
                        await record_delivery(
                            conn,
                            self._identity,
                            item.notice.event,
                            [item.notice],
                            ok,
                            message.text,
                            self.channel_names,
                        )
                else:
                    await self._deliver_digests(conn, due)
        except TimeoutError:
            log.warning("alert delivery ran out of time; the rest goes at the next tick")

    async def _deliver_digests(self, conn: asyncpg.Connection, due: list[Due]) -> None:
        """Everything due in one message per channel (each channel gets what it misses)."""
        channels = sorted({name for item in due for name in item.channels})
        for name in channels:
            notices = [item.notice for item in due if name in item.channels]
            message = digest_message(notices, self._language, self._identity)
            ok = await self._send(message, frozenset({name}))
            await record_delivery(conn, self._identity, Event.DIGEST, notices, ok, message.text, self.channel_names)

    async def _send(self, message: AlertMessage, names: frozenset[str]) -> list[str]:
        """Send to these channels at once; return the names of those that took it."""
        targets = [c for c in self._channels if c.name in names]
        results = await asyncio.gather(*(c.send(message) for c in targets), return_exceptions=True)
        ok = []
        for channel, result in zip(targets, results, strict=True):
            if isinstance(result, ChannelError):
                self._cooling[channel.name] = time.monotonic() + self._cooldown
                log.warning("alert channel failed; retried later", channel=channel.name, error=str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                ok.append(channel.name)
        if ok:
            log.info("operator alert sent", alert_event=message.event, keys=list(message.keys), channels=ok)
        return ok

    # --- the database is unreachable: from memory ------------------------------------------------

    async def _database_down(self, now: float) -> None:
        if self._db_down_since is None:
            self._db_down_since = now
        if now - self._db_down_since < self._db_alert_after or not self._was_sender(self._db_down_since):
            return
        if self._db_incident is None:
            opened = datetime.now(UTC)
            self._db_incident = Notice(Event.ALERT, Incident(Kind.DATABASE, self._identity), opened)
        missing = frozenset(self.channel_names) - self._db_told
        if missing:
            message = notice_message(self._db_incident, self._language, self._identity)
            self._db_told |= set(await self._send(message, missing))

    def _was_sender(self, down_since: float) -> bool:
        """Held the lease when the database went away (nobody else can have taken it since)."""
        return self._leased_at is not None and down_since - self._leased_at < self._lease_seconds

    async def _database_back(self) -> None:
        incident = self._db_incident
        assert incident is not None
        recovery = Notice(Event.RECOVERY, incident.incident, incident.opened_at, datetime.now(UTC))
        missing = frozenset(self._db_told) - self._db_recovered
        if missing:
            message = notice_message(recovery, self._language, self._identity)
            self._db_recovered |= set(await self._send(message, missing))
        if self._db_recovered >= self._db_told:
            self._db_incident, self._db_told, self._db_recovered = None, set(), set()
