"""Prometheus series of the process. Tenant labels are slugs, never secrets."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

UPDATES_RECEIVED = Counter(
    "tg_updates_received_total", "Telegram updates received", ["tenant", "source"], registry=REGISTRY
)
UPDATES_DUPLICATE = Counter(
    "tg_updates_duplicate_total", "Updates already accepted before (redeliveries)", ["tenant"], registry=REGISTRY
)
UPDATES_HANDLED = Counter("tg_updates_handled_total", "Updates handled", ["tenant"], registry=REGISTRY)
UPDATES_FAILED = Counter("tg_updates_failed_total", "Updates whose handler raised", ["tenant"], registry=REGISTRY)
HANDLER_SECONDS = Histogram(
    "tg_handler_seconds",
    "Time from accepting an update to finishing it",
    ["tenant"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RESTARTS = Counter("tenant_restarts_total", "Runtime restarts after a crash", ["tenant"], registry=REGISTRY)
TELEGRAM_429 = Counter("telegram_retry_after_total", "429 answers from Telegram", ["tenant"], registry=REGISTRY)
GENERATIONS = Counter("generations_total", "Generations by outcome", ["tenant", "outcome"], registry=REGISTRY)
REFUNDS = Counter("refunds_total", "Holds released after a failed generation", ["tenant"], registry=REGISTRY)
STAR_REFUNDS = Counter(
    "star_refunds_total",
    "Telegram's answers to Stars refunds (refunded, refused, unknown)",
    ["tenant", "outcome"],
    registry=REGISTRY,
)
TOPUPS = Counter("topups_total", "Balance top-ups", ["tenant", "kind"], registry=REGISTRY)
KIE_SECONDS = Histogram("kie_request_seconds", "KIE API latency", ["operation"], registry=REGISTRY)
KIE_ERRORS = Counter("kie_errors_total", "KIE API errors by body code", ["operation", "code"], registry=REGISTRY)
DB_POOL_SIZE = Gauge("db_pool_connections", "Connections in the pool", registry=REGISTRY)
DB_POOL_IDLE = Gauge("db_pool_idle_connections", "Idle connections in the pool", registry=REGISTRY)
LOOP_FAILURES = Counter(
    "background_loop_failures_total", "Exceptions in a background loop (it goes on)", ["loop"], registry=REGISTRY
)
LOOP_RESTARTS = Counter(
    "background_loop_restarts_total", "Background loops restarted after they ended", ["loop"], registry=REGISTRY
)
LOCKS_UNAVAILABLE = Gauge(
    "tenant_locks_unavailable",
    "Tenants this process could not lock because Postgres' lock table is full",
    registry=REGISTRY,
)
LIMIT_HITS = Counter(
    "limit_hits_total",
    "Messages, taps and generations refused by a tenant limit (rate, free_daily, open_jobs)",
    ["tenant", "limit"],
    registry=REGISTRY,
)
BANS = Counter("bans_total", "Bans and unbans by tenant admins", ["tenant", "action"], registry=REGISTRY)
PROMO_REDEMPTIONS = Counter(
    "promo_redemptions_total",
    "Promo code redemptions by outcome (redeemed, unknown, disabled, expired, used_up, already_used)",
    ["tenant", "outcome"],
    registry=REGISTRY,
)
BROADCAST_MESSAGES = Counter(
    "broadcast_messages_total",
    "Broadcast messages by outcome (sent, failed, blocked, unknown)",
    ["tenant", "outcome"],
    registry=REGISTRY,
)


class TenantStates(Collector):
    """`tenant_runtime_state` (1 for the tenant's current state) and `tenant_lock_held`, read from the
    slots when /metrics is scraped. Kept as gauges updated on every change, they cost a label lookup per
    tenant per transition: at 10,000 tenants a beat that took every lock spent a sixth of a second on them,
    with /health waiting. `source` yields (tenant slug, state, lock held) for every slot of the process."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[tuple[str, str, bool]]] = tuple

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = GaugeMetricFamily(
            "tenant_runtime_state", "1 for the tenant's current state", labels=["tenant", "state"]
        )
        held = GaugeMetricFamily("tenant_lock_held", "1 when this process holds the tenant's lock", labels=["tenant"])
        for slug, current, locked in self.source():
            state.add_metric([slug, current], 1)
            held.add_metric([slug], 1 if locked else 0)
        yield state
        yield held


TENANT_STATES = TenantStates()
REGISTRY.register(TENANT_STATES)
