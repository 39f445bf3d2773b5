"""What counts as an incident, read from Postgres as it is now: each kind appears while its condition
holds and disappears with it; a tenant some live process serves is no tenant incident."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.crypto import KeyRing, generate_key
from shared.periodic import LoopState
from supervisor.alerts.detect import Thresholds, detect
from supervisor.alerts.health import HealthPublisher, HealthReport, LoopWatch
from supervisor.alerts.model import Kind
from supervisor.tenants import NewTenant, TenantStore
from tenant_runtime.config import TenantConfig
from tests.helpers import make_token

LIMITS = Thresholds(backoff_seconds=300, replica_seconds=60, refund_seconds=3600)


@pytest.fixture
async def pool(module_pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    yield module_pool
    await module_pool.execute(
        "TRUNCATE alert_incidents, instance_health, tenant_runtime_states, instances, tenants CASCADE"
    )


async def _tenant(pool: asyncpg.Pool, slug: str) -> TenantConfig:
    bot_id = 870000000 + secrets.randbelow(10**6)
    store = TenantStore(pool, KeyRing([generate_key()]))
    return await store.add(NewTenant(slug, slug, make_token(bot_id, "d"), bot_id, "kie_" + "d" * 24, []))


async def _instance(pool: asyncpg.Pool, name: str, *, silent: str = "0 seconds") -> str:
    await pool.execute(
        "INSERT INTO instances (name, host, pid, version, heartbeat_at) VALUES ($1, 'h', 1, 't', now() - $2::text::interval)",
        name,
        silent,
    )
    return name


async def _state(pool: asyncpg.Pool, tenant: TenantConfig, instance: str, state: str, troubled: str | None) -> None:
    await pool.execute(
        "INSERT INTO tenant_runtime_states (tenant_id, instance, state, last_error, troubled_since) "
        "VALUES ($1, $2, $3, 'RuntimeError: boom', now() - $4::text::interval)",
        tenant.id,
        instance,
        state,
        troubled,
    )


async def _found(pool: asyncpg.Pool) -> dict[str, Kind]:
    async with pool.acquire() as conn:
        return {key: incident.kind for key, incident in (await detect(conn, LIMITS, "en")).items()}


async def test_tenant_incidents_follow_the_published_states(pool: asyncpg.Pool) -> None:
    live = await _instance(pool, "live.000001")
    other = await _instance(pool, "other.000002")
    gone = await _instance(pool, "gone.000003", silent="10 minutes")
    stuck, young, served, quarantined, orphan = [
        await _tenant(pool, f"det-{name}") for name in ("stuck", "young", "served", "quar", "orphan")
    ]
    await _state(pool, stuck, live, "starting", "6 minutes")  # restarting between backoffs for 6 minutes
    await _state(pool, young, live, "backoff", "2 minutes")
    await _state(pool, served, live, "backoff", "20 minutes")
    await _state(pool, served, other, "active", None)
    await _state(pool, quarantined, live, "quarantined", "1 minute")
    await _state(pool, orphan, gone, "backoff", "1 hour")  # only a process that is gone says so
    found = await _found(pool)
    tenant_keys = {k: v for k, v in found.items() if k.split(":")[1].startswith("det-")}
    assert tenant_keys == {"backoff:det-stuck": Kind.BACKOFF, "quarantined:det-quar": Kind.QUARANTINED}


async def test_a_rejected_token_is_an_incident_until_it_is_replaced(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, "det-token")
    await pool.execute("UPDATE tenants SET status = 'token_invalid' WHERE id = $1", tenant.id)
    assert (await _found(pool)).get("token_invalid:det-token") is Kind.TOKEN_INVALID
    await pool.execute("UPDATE tenants SET status = 'disabled' WHERE id = $1", tenant.id)
    assert "token_invalid:det-token" not in await _found(pool), "a disabled tenant alerts nobody"


async def test_kie_refusals_count_until_a_later_job_is_accepted(pool: asyncpg.Pool) -> None:
    credits, auth = await _tenant(pool, "det-credits"), await _tenant(pool, "det-auth")

    async def job(tenant: TenantConfig, n: int, *, task: str | None, detail: str | None, ago: str) -> None:
        await pool.execute(
            """INSERT INTO jobs (tenant_id, user_id, chat_id, model, params, kie_input, price, idempotency_key,
                   correlation_id, status, task_id, fail_detail, deadline_at, created_at)
               VALUES ($1, 1, 1, 'm', '{}', '{}', 10, $2, 'c', $3, $4, $5, now() + interval '1 hour',
                       now() - $6::text::interval)""",
            tenant.id,
            f"{tenant.slug}-{n}",
            "failed" if detail else "delivered",
            task,
            detail,
            ago,
        )

    await job(credits, 1, task="t-1", detail=None, ago="2 hours")
    await job(credits, 2, task=None, detail="createTask code 402", ago="1 hour")
    await job(auth, 1, task=None, detail="createTask code 401", ago="30 minutes")
    await job(auth, 2, task=None, detail="no KIE key", ago="10 minutes")  # says nothing about KIE's verdict
    found = await _found(pool)
    assert found.get("kie_credits:det-credits") is Kind.KIE_CREDITS
    assert found.get("kie_auth:det-auth") is Kind.KIE_AUTH
    await job(credits, 3, task="t-3", detail=None, ago="1 minute")  # topped up: KIE took the next task
    assert "kie_credits:det-credits" not in await _found(pool)
    await job(auth, 3, task=None, detail="createTask code 401", ago="25 hours")  # old news is no news
    await pool.execute("DELETE FROM jobs WHERE idempotency_key IN ('det-auth-1', 'det-auth-2')")
    assert "kie_auth:det-auth" not in await _found(pool)


async def test_stars_refunds_unanswered_for_an_hour(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, "det-refund")
    await pool.execute("INSERT INTO accounts (tenant_id, user_id) VALUES ($1, 7)", tenant.id)
    for charge, started in (("c1", "2 hours"), ("c2", "10 minutes")):
        await pool.execute(
            "INSERT INTO star_payments (tenant_id, charge_id, user_id, stars, amount_minor, payload, status, "
            "refund_started_at) VALUES ($1, $2, 7, 50, 7500, 'p', 'refunding', now() - $3::text::interval)",
            tenant.id,
            charge,
            started,
        )
    async with pool.acquire() as conn:
        found = await detect(conn, LIMITS, "en")
    assert found["refunds_unsettled:det-refund"].detail == "1"
    await pool.execute("UPDATE star_payments SET status = 'refunded' WHERE charge_id = 'c1'")
    assert "refunds_unsettled:det-refund" not in await _found(pool)


async def test_replica_incidents(pool: asyncpg.Pool) -> None:
    fine = await _instance(pool, "fine.000001")
    sick = await _instance(pool, "sick.000002")
    full = await _instance(pool, "full.000003")
    await _instance(pool, "silent.000004", silent="90 seconds")
    await _instance(pool, "quiet.000005", silent="40 seconds")  # stale, not yet silent long enough
    await pool.execute(
        """INSERT INTO instance_health (instance, tenants, able, cannot_serve, not_serving_since, locks_unavailable,
               loops_failing) VALUES
           ($1, 3, 3, NULL, NULL, 0, '{}'),
           ($2, 3, 0, 'none of its 3 tenants can start', now() - interval '2 minutes', 0, '{job-poller}'),
           ($3, 3, 3, 'Postgres lock table full: 7 tenants unheld', now() - interval '10 seconds', 7, '{}')""",
        fine,
        sick,
        full,
    )
    found = await _found(pool)
    assert found == {
        "replica_not_serving:sick.000002": Kind.REPLICA_NOT_SERVING,
        "loop_failing:sick.000002/job-poller": Kind.LOOP_FAILING,
        "replica_silent:silent.000004": Kind.REPLICA_SILENT,
        "lock_table_full:postgres": Kind.LOCK_TABLE_FULL,
    }


async def test_health_is_published_when_it_changes_and_keeps_its_start(pool: asyncpg.Pool) -> None:
    name = await _instance(pool, "pub.000001")
    report = HealthReport(2, 2, None, 0, ())
    publisher = HealthPublisher(name, lambda: report, full_every=3600)
    async with pool.acquire() as conn:
        assert await publisher.publish_once(conn)
        assert not await publisher.publish_once(conn), "unchanged: nothing written"
        report = HealthReport(2, 0, "none of its 2 tenants can start", 0, ())
        assert await publisher.publish_once(conn)
        first = await conn.fetchval("SELECT not_serving_since FROM instance_health WHERE instance = $1", name)
        report = HealthReport(2, 0, "no lock session (database unreachable?)", 0, ())
        await publisher.publish_once(conn)
        again = await conn.fetchval("SELECT not_serving_since FROM instance_health WHERE instance = $1", name)
        assert first is not None and again == first, "still not serving: the start stays"
        report = HealthReport(2, 2, None, 0, ())
        await publisher.publish_once(conn)
        assert await conn.fetchval("SELECT not_serving_since FROM instance_health WHERE instance = $1", name) is None


def test_loop_watch_names_loops_that_keep_failing() -> None:
    loops = {"steady": LoopState("steady", 1.0, last_ok=1000.0), "flaky": LoopState("flaky", 1.0, last_ok=1000.0)}
    watch = LoopWatch(loops, window=600)
    assert watch.failing(now=1000.0) == ()
    loops["flaky"].failures = 2
    assert watch.failing(now=1001.0) == ()
    loops["flaky"].failures = 3
    assert watch.failing(now=1002.0) == ("flaky",)
    loops["flaky"].last_ok = 1700.0
    loops["steady"].last_ok = 1700.0
    assert watch.failing(now=1700.0) == (), "ten quiet minutes later it is fine again"
    loops["flaky"].failures = 4  # one more failure in a new window is not "repeatedly"
    assert watch.failing(now=1701.0) == ()
    assert LoopWatch({"stuck": LoopState("stuck", 1.0, last_ok=0.0)}).failing(now=100.0) == ("stuck",)


class _Quiet:
    """The job service's notifier: nobody to tell in this test (no bot behind the tenant)."""

    async def progress(self, *_: object) -> None:
        return None

    async def delivered(self, *_: object) -> None:
        return None

    async def failed(self, *_: object) -> None:
        return None

    async def alert_admins(self, *_: object) -> None:
        return None


async def test_a_kie_402_from_the_real_job_service_is_seen_until_kie_takes_a_task(pool: asyncpg.Pool) -> None:
    """Detection reads how the job service records KIE's refusal: this fails if that wording drifts."""
    import dataclasses
    from decimal import Decimal

    from sandbox.kie import FakeKie
    from shared.registry import load_registry
    from shared.settings import Settings
    from tenant_runtime.billing.ledger import Ledger
    from tenant_runtime.billing.quotes import quote
    from tenant_runtime.generation.jobs import JobService
    from tenant_runtime.kie.client import KieClient, KieClientConfig

    config = await _tenant(pool, "det-real402")
    key = "kie_" + secrets.token_hex(8)
    fake = FakeKie()
    await fake.start()
    fake.register_key(key, 0)  # out of credits
    tenant = type("Handle", (), {"config": dataclasses.replace(config, kie_api_key=key), "bot": None})()
    registry = load_registry()
    spec = registry.get("seedream/4.5-text-to-image")
    assert spec is not None
    ledger = Ledger(pool)
    await ledger.credit(config.id, 7, 100_000, kind="admin_credit", unique_key="f", actor="admin:1", reason="funds")
    settings = Settings.model_validate({"env": "development"})
    try:
        async with KieClient(fake.base_url, KieClientConfig(read_timeout_s=5)) as kie:
            jobs = JobService(pool, ledger, kie, registry, settings, _Quiet())  # type: ignore[arg-type]

            async def order(n: int) -> None:
                params = {"prompt": "a cat", "aspect_ratio": "1:1", "quality": "basic"}
                price = quote(spec, params, config.markup, Decimal(40))
                assert price is not None
                job, _ = await jobs.create(
                    config,
                    user_id=7,
                    chat_id=7,
                    spec=spec,
                    params=params,
                    price=price,
                    idempotency_key=f"o{n}",
                    language="ru",
                    correlation_id=f"o{n}",
                )
                await jobs.submit(tenant, job)
                await jobs.drain(5)

            await order(1)
            assert (await _found(pool)).get("kie_credits:det-real402") is Kind.KIE_CREDITS
            fake.register_key(key, 1000)  # topped up
            await order(2)
            assert "kie_credits:det-real402" not in await _found(pool)
    finally:
        await fake.stop()


def test_a_process_that_cannot_reach_telegram_says_it_cannot_serve() -> None:
    """It then wants no locks, so its locker sees nothing wrong: the health report must say it."""
    from supervisor.alerts.health import health_of
    from supervisor.lifecycle import Lifecycle, Slot
    from supervisor.locks import Locker
    from supervisor.slot_state import State

    async def mark(*_: object) -> None:
        return None

    lifecycle = Lifecycle(lambda config: None, mark, lambda: None, lambda tid, key: False)  # type: ignore[arg-type,return-value]
    config = type("Config", (), {"id": 1, "slug": "s", "lock_key": 1})()
    lifecycle.slots[1] = Slot(config=config, state=State.STANDBY)  # type: ignore[arg-type]
    locker = Locker("postgresql://unused", "me", lambda: {}, lambda held: None)  # never run: no lock session
    loops = LoopWatch({})
    assert health_of(lifecycle, locker, loops).cannot_serve == "no lock session (database unreachable?)"
    report = health_of(lifecycle, locker, loops, telegram_reachable=lambda: False)
    assert report.cannot_serve is not None and "cannot reach Telegram" in report.cannot_serve
