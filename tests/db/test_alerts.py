"""Operator alerts against real Postgres, a real webhook receiver on loopback and the fake Telegram:
once per incident with one recovery, one sender across processes, no resend after a sender change,
rate limit with a digest, a failed channel retried alone, the database outage told by the last sender,
and no secret in anything sent."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from sandbox.telegram.server import FakeTelegram
from shared.crypto import KeyRing, generate_key
from supervisor.alerts.channels import Channel, TelegramChat, Webhook
from supervisor.alerts.service import AlertService
from supervisor.tenants import NewTenant, TenantChanges, TenantStore
from tenant_runtime.config import TenantConfig
from tests.alert_receiver import AlertReceiver
from tests.helpers import assert_no_secrets, make_token, wait_until

KEY = generate_key()
OPERATOR = 5550001


@dataclass
class World:
    pool: asyncpg.Pool
    store: TenantStore
    receiver: AlertReceiver
    telegram: FakeTelegram
    platform_token: str

    def webhook(self) -> Webhook:
        return Webhook(self.receiver.url)

    def chat(self, chat_id: int = OPERATOR) -> TelegramChat:
        return TelegramChat(self.platform_token, chat_id, self.telegram.base_url)

    def service(self, identity: str, channels: list[Channel] | None = None, **options: object) -> AlertService:
        return AlertService(
            self.pool,
            identity,
            channels if channels is not None else [self.webhook()],
            **options,  # type: ignore[arg-type]
        )

    async def tenant(self, slug: str) -> TenantConfig:
        bot_id = 880000000 + secrets.randbelow(10**6)
        return await self.store.add(NewTenant(slug, slug, make_token(bot_id, "t"), bot_id, "kie_" + "k" * 24, []))

    def texts(self, chat_id: int = OPERATOR) -> list[str]:
        return [e.text or "" for e in self.telegram.transcript(self.platform_token, chat_id) if e.from_bot]


@pytest.fixture
async def world(module_pool: asyncpg.Pool) -> AsyncIterator[World]:
    pool = module_pool
    receiver = await AlertReceiver().start()
    telegram = FakeTelegram()
    await telegram.start()
    token = make_token(990000001, "p")
    await telegram.register_bot(token, username="platform_bot")
    await telegram.send_text(token, OPERATOR, "/start")  # an operator has to write to the bot first
    try:
        yield World(pool, TenantStore(pool, KeyRing([KEY])), receiver, telegram, token)
    finally:
        await receiver.stop()
        await telegram.stop()
        await pool.execute(
            "TRUNCATE alert_incidents, alert_sender, alert_deliveries, instance_health, tenant_runtime_states, "
            "instances, tenants CASCADE"
        )


async def test_an_incident_is_told_once_and_its_recovery_once(world: World) -> None:
    tenant = await world.tenant("alert-once")
    service = world.service("sup-a.000001", [world.webhook(), world.chat()])
    await service.tick()
    assert world.receiver.bodies == [] and world.texts() == [], "nothing wrong, nothing sent"

    await world.store.mark_token_invalid(tenant.id, "Telegram rejected the token: Unauthorized")
    for _ in range(4):
        await service.tick()
    (alert,) = world.receiver.bodies
    assert alert["event"] == "alert" and alert["kind"] == "token_invalid" and alert["subject"] == "alert-once"
    assert alert["state"] == "open" and alert["sender"] == "sup-a.000001"
    (text,) = world.texts()
    assert text == alert["text"] and "alert-once" in text and "Telegram отклонил токен" in text

    await world.store.update("alert-once", TenantChanges(bot_token=(make_token(tenant.bot_id, "n"), tenant.bot_id)))
    for _ in range(4):
        await service.tick()
    assert [b["event"] for b in world.receiver.bodies] == ["alert", "recovery"]
    recovery = world.receiver.bodies[1]
    assert recovery["state"] == "resolved" and recovery["key"] == alert["key"]
    assert world.texts()[1].startswith("🟢 ") and "длилось" in world.texts()[1]
    assert await world.pool.fetchval("SELECT count(*) FROM alert_incidents") == 0


async def test_two_processes_send_each_incident_once(world: World) -> None:
    tenants = [await world.tenant(f"alert-two-{i}") for i in range(3)]
    a, b = world.service("sup-a.00000a"), world.service("sup-b.00000b")

    async def both(rounds: int) -> None:
        for _ in range(rounds):
            await asyncio.gather(a.tick(), b.tick())

    await both(2)
    for tenant in tenants:
        await world.store.mark_token_invalid(tenant.id, "revoked")
    await both(5)
    for tenant in tenants:
        await world.store.set_status(tenant.slug, "enabled")
    await both(5)
    keys = [(body["event"], body["subject"]) for body in world.receiver.bodies]
    assert sorted(keys) == sorted([(e, t.slug) for t in tenants for e in ("alert", "recovery")]), keys
    senders = {body["sender"] for body in world.receiver.bodies}
    assert len(senders) == 1, "one sender while it lives"


async def test_a_new_sender_neither_resends_nor_forgets(world: World) -> None:
    tenant = await world.tenant("alert-handover")
    a = world.service("sup-a.0000aa", lease_seconds=1.0)
    b = world.service("sup-b.0000bb", lease_seconds=1.0)
    await world.store.mark_token_invalid(tenant.id, "revoked")
    await a.tick()
    await b.tick()  # a holds the lease
    assert [body["sender"] for body in world.receiver.bodies] == ["sup-a.0000aa"]
    # a dies; past its lease b takes over and finds the incident already told.
    await asyncio.sleep(1.2)
    for _ in range(3):
        await b.tick()
    assert len(world.receiver.bodies) == 1
    assert await world.pool.fetchval("SELECT identity FROM alert_sender") == "sup-b.0000bb"
    await world.store.set_status(tenant.slug, "enabled")
    for _ in range(3):
        await b.tick()
    assert [(x["event"], x["sender"]) for x in world.receiver.bodies] == [
        ("alert", "sup-a.0000aa"),
        ("recovery", "sup-b.0000bb"),
    ]


async def test_beyond_the_rate_limit_everything_due_goes_as_one_digest(world: World) -> None:
    tenants = [await world.tenant(f"alert-many-{i}") for i in range(5)]
    service = world.service("sup-a.0000cc", max_per_minute=3)
    for tenant in tenants:
        await world.store.mark_token_invalid(tenant.id, "revoked")
    for _ in range(3):
        await service.tick()
    (digest,) = world.receiver.bodies
    assert digest["event"] == "digest"
    incidents = digest["incidents"]
    assert isinstance(incidents, list) and sorted(i["subject"] for i in incidents) == [t.slug for t in tenants]
    assert str(digest["text"]).count("🔴") == 5
    # Two messages of the minute left: five recoveries wait in one more digest, not five messages.
    for tenant in tenants:
        await world.store.set_status(tenant.slug, "enabled")
    for _ in range(3):
        await service.tick()
    assert [b["event"] for b in world.receiver.bodies] == ["digest", "digest"]
    assert str(world.receiver.bodies[1]["text"]).count("🟢") == 5
    assert await world.pool.fetchval("SELECT count(*) FROM alert_incidents") == 0


async def test_when_the_minute_is_used_up_alerts_wait_for_the_next(world: World) -> None:
    tenant = await world.tenant("alert-wait")
    service = world.service("sup-a.0000dd", max_per_minute=1)
    await world.pool.execute(
        "INSERT INTO alert_deliveries (sender, event, keys, channels, body) VALUES ('x', 'alert', '{}', '{}', 'x')"
    )
    await world.store.mark_token_invalid(tenant.id, "revoked")
    for _ in range(3):
        await service.tick()
    assert world.receiver.bodies == []
    await world.pool.execute("UPDATE alert_deliveries SET sent_at = now() - interval '61 seconds'")
    await service.tick()
    assert [b["subject"] for b in world.receiver.bodies] == ["alert-wait"]


async def test_a_channel_that_failed_is_retried_alone(world: World) -> None:
    tenant = await world.tenant("alert-retry")
    late_operator = OPERATOR + 1  # has not written to the platform bot yet: Telegram says "chat not found"
    service = world.service("sup-a.0000ee", [world.chat(), world.chat(late_operator), world.webhook()], cooldown=0.0)
    world.receiver.fail_with = 502
    await world.store.mark_token_invalid(tenant.id, "revoked")
    await service.tick()
    assert len(world.texts()) == 1 and world.receiver.bodies == []
    world.receiver.fail_with = None
    await world.telegram.send_text(world.platform_token, late_operator, "/start")
    await service.tick()
    await service.tick()
    assert len(world.texts()) == 1, "the chat that had it does not get it again"
    assert len(world.texts(late_operator)) == 1 and len(world.receiver.events("alert")) == 1


async def test_no_channel_ever_sees_a_secret(world: World) -> None:
    tenant = await world.tenant("alert-secret")
    identity = "sup-a.0000ff"
    await world.pool.execute("INSERT INTO instances (name, host, pid, version) VALUES ($1, 'h', 1, 't')", identity)
    # A runtime's last error that quotes the bot token and the KIE key, in backoff for ten minutes.
    error = f"ClientError: POST /bot{tenant.bot_token}/getMe failed; key {tenant.kie_api_key}"
    await world.pool.execute(
        "INSERT INTO tenant_runtime_states (tenant_id, instance, state, last_error, troubled_since) "
        "VALUES ($1, $2, 'backoff', $3, now() - interval '10 minutes')",
        tenant.id,
        identity,
        error,
    )
    await world.pool.execute("INSERT INTO instance_health (instance, tenants, able) VALUES ($1, 1, 1)", identity)
    service = world.service(identity, [world.chat(), world.webhook()])
    await service.tick()
    (alert,) = world.receiver.bodies
    assert alert["kind"] == "backoff" and "ClientError" in str(alert["text"])
    everything = "\n".join(world.receiver.raw + world.texts())
    assert_no_secrets(everything, [tenant.bot_token, tenant.kie_api_key, world.platform_token, world.receiver.url])


async def test_a_database_outage_is_told_by_the_last_sender_only(world: World) -> None:
    reachable = {"a": True, "b": True}
    a = world.service("sup-a.000011", db_reachable=lambda: reachable["a"], db_alert_after=0.3)
    b = world.service("sup-b.000022", db_reachable=lambda: reachable["b"], db_alert_after=0.3)
    await a.tick()  # a is the sender
    await b.tick()
    reachable.update(a=False, b=False)
    await a.tick()
    await b.tick()
    assert world.receiver.bodies == [], "not before 30 s (here 0.3 s)"
    await asyncio.sleep(0.4)
    for _ in range(3):
        await asyncio.gather(a.tick(), b.tick())
    (alert,) = world.receiver.bodies
    assert alert["kind"] == "database_unreachable" and alert["subject"] == "sup-a.000011"
    reachable.update(a=True, b=True)
    for _ in range(3):
        await asyncio.gather(a.tick(), b.tick())
    assert [(x["event"], x["subject"]) for x in world.receiver.bodies] == [
        ("alert", "sup-a.000011"),
        ("recovery", "sup-a.000011"),
    ]


async def test_a_sender_frozen_in_its_transaction_is_cut_off(world: World, module_database: str) -> None:
    """The lock lives in the sender's transaction: a stalled one cannot block alerts for ever."""
    conn = await asyncpg.connect(module_database)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL idle_in_transaction_session_timeout = '1s'")
            await conn.execute("SELECT pg_try_advisory_xact_lock($1, $2)", 0x54470003, 1)
            tenant = await world.tenant("alert-frozen")
            await world.store.mark_token_invalid(tenant.id, "revoked")
            service = world.service("sup-b.000033")
            await service.tick()
            assert world.receiver.bodies == [], "the lock is held"
            started = time.monotonic()

            async def sent() -> bool:
                await service.tick()
                return bool(world.receiver.bodies)

            await wait_until(sent, timeout=10, interval=0.2, what="the stalled lock freed by the server")
            assert time.monotonic() - started < 8
    except (asyncpg.exceptions.IdleInTransactionSessionTimeoutError, asyncpg.InterfaceError, OSError):
        pass  # the server ended the stalled session: that is the point
    finally:
        if not conn.is_closed():
            conn.terminate()
    assert [b["subject"] for b in world.receiver.bodies] == ["alert-frozen"]


def test_payload_is_json_serialisable_with_every_field() -> None:
    # A guard for the webhook contract documented in the README.
    from datetime import UTC, datetime

    from supervisor.alerts.message import notice_message
    from supervisor.alerts.model import Event, Incident, Kind, Notice

    now = datetime.now(UTC)
    message = notice_message(Notice(Event.RECOVERY, Incident(Kind.BACKOFF, "shop", "x"), now, now), "en", "me")
    body = json.loads(json.dumps(message.payload))
    assert set(body) == {
        "event",
        "text",
        "sender",
        "key",
        "kind",
        "subject",
        "detail",
        "state",
        "opened_at",
        "resolved_at",
    }
