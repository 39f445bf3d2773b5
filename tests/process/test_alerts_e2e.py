"""Operator alerts end to end: two real supervisor replicas, the fake Telegram (tenant bots and the
platform bot), a webhook receiver on loopback. A revoked token gives exactly one alert in the operator
chat and one recovery after the token is rotated; the webhook gets the same JSON; nothing sent or
logged holds a secret. `alerts test` reaches every channel and says which failed."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess, bot_token
from tests.alert_receiver import AlertReceiver
from tests.helpers import assert_no_secrets, run_cli, stays_true, wait_until

pytestmark = pytest.mark.slow

OPERATOR = 4242001
INTERVAL = 0.5
QUIET_WINDOW = 8 * INTERVAL + 2  # past several evaluations by either replica: a duplicate would be here


@pytest.fixture
async def stack(pg_server_dsn: str) -> AsyncIterator[Stack]:
    from tests.conftest import _create_migrated, _drop

    name = f"tgsup_alerts_{secrets.token_hex(4)}"
    dsn = await _create_migrated(pg_server_dsn, name)
    s = Stack(dsn, Path(tempfile.mkdtemp(prefix="tgsup-alerts-")))
    await s.start()
    yield s
    await s.stop()
    await _drop(pg_server_dsn, name)


@pytest.fixture
async def receiver() -> AsyncIterator[AlertReceiver]:
    r = await AlertReceiver().start()
    yield r
    await r.stop()


async def _platform_bot(stack: Stack) -> str:
    token = bot_token(990000777)
    await stack.telegram.register_bot(token, username="platform_bot")
    await stack.telegram.send_text(token, OPERATOR, "/start")  # Telegram: a bot writes only to who wrote first
    return token


def _alert_env(platform: str, receiver: AlertReceiver) -> dict[str, str]:
    return {
        "PLATFORM_BOT_TOKEN": platform,
        "OPERATOR_CHAT_IDS": str(OPERATOR),
        "ALERT_WEBHOOK_URL": receiver.url,
        "ALERT_INTERVAL_SECONDS": str(INTERVAL),
        # The platform bot only alerts here: with onboarding on it would answer the operators' /start.
        "ONBOARDING": "off",
    }


def _chat(stack: Stack, platform: str) -> list[str]:
    return [e.text or "" for e in stack.telegram.transcript(platform, OPERATOR) if e.from_bot]


async def _active(*sups: SupervisorProcess) -> int:
    total = 0
    for sup in sups:
        health = await sup.health() or {}
        tenants = health.get("tenants")
        by_state = tenants.get("by_state", {}) if isinstance(tenants, dict) else {}
        total += int(by_state.get("active", 0)) if isinstance(by_state, dict) else 0
    return total


async def test_a_revoked_token_is_one_alert_and_one_recovery_with_two_replicas(
    stack: Stack, receiver: AlertReceiver
) -> None:
    platform = await _platform_bot(stack)
    revoked, healthy = await stack.add_tenants_direct("alrt", 2)
    env = _alert_env(platform, receiver)
    a = await stack.start_supervisor("alrt-a", **env)
    b = await stack.start_supervisor("alrt-b", **env)
    await wait_until(lambda: _active_is(a, b, 2), timeout=30, what="both tenants active")
    await _holds(lambda: _chat(stack, platform) == [] and receiver.bodies == [], "a healthy platform says nothing")

    # BotFather's /revoke: Telegram now answers 401 to the old token; the next update shows it.
    await stack.telegram.inject_faults(revoked.token, revoke=True)
    await stack.telegram.send_text(revoked.token, 7700001, "/start")
    await wait_until(lambda: len(_chat(stack, platform)) >= 1, timeout=30, what="the alert in the operator chat")
    await _holds(lambda: len(_chat(stack, platform)) == 1 and len(receiver.bodies) == 1, "one alert, no repeat")
    (alert,) = _chat(stack, platform)
    assert revoked.slug in alert and "Telegram отклонил токен" in alert
    (hook,) = receiver.bodies
    assert hook["event"] == "alert" and hook["kind"] == "token_invalid" and hook["subject"] == revoked.slug
    assert hook["text"] == alert

    new = f"{revoked.token.split(':')[0]}:{secrets.token_urlsafe(26).replace('-', 'a')}"
    await stack.telegram.rotate_token(revoked.token, new)
    await stack.telegram.clear_faults(new)
    await stack.cli("tenants", "update", revoked.slug, "--bot-token", env=stack.env(BOT_TOKEN=new))
    await wait_until(lambda: len(_chat(stack, platform)) >= 2, timeout=30, what="the recovery message")
    await _holds(lambda: len(_chat(stack, platform)) == 2 and len(receiver.bodies) == 2, "one recovery")
    alert_again, recovery = _chat(stack, platform)
    assert alert_again == alert and recovery.startswith("🟢 ") and revoked.slug in recovery
    assert [(b["event"], b["subject"]) for b in receiver.bodies] == [
        ("alert", revoked.slug),
        ("recovery", revoked.slug),
    ]
    assert receiver.bodies[1]["text"] == recovery
    await ScriptedUser(stack.telegram, new, 7700002).say("/start", expect="Выберите", timeout=15)

    everything = "\n".join([*_chat(stack, platform), *receiver.raw, a.log(), b.log()])
    secrets_ = [revoked.token, new, healthy.token, revoked.kie_key, healthy.kie_key, platform, stack.master_key]
    assert_no_secrets(everything, [*secrets_, receiver.url])


async def test_alerts_test_reaches_every_channel_and_names_the_one_that_failed(
    stack: Stack, receiver: AlertReceiver
) -> None:
    platform = await _platform_bot(stack)
    env = stack.env(**_alert_env(platform, receiver), INSTANCE_NAME="ops-shell")
    sent = await run_cli(["alerts", "test"], env)
    assert sent.code == 0, sent.text
    assert sent.out.splitlines() == [f"telegram:{OPERATOR}: sent", "webhook: sent"]
    (text,) = _chat(stack, platform)
    assert "ops-shell" in text and receiver.bodies[0]["event"] == "test" and receiver.bodies[0]["text"] == text

    receiver.fail_with = 503
    failed = await run_cli(["alerts", "test"], env)
    assert failed.code == 1 and "webhook: failed: webhook: answered HTTP 503" in failed.out, failed.text

    nothing = await run_cli(["alerts", "test"], stack.env())
    assert nothing.code == 1 and "no alert channel is configured" in nothing.err
    half = await run_cli(["alerts", "test"], stack.env(PLATFORM_BOT_TOKEN=platform))
    assert half.code == 2 and "OPERATOR_CHAT_IDS is not" in half.err
    for result in (sent, failed, nothing, half):
        assert "Traceback" not in result.text
        assert_no_secrets(result.text, [platform, receiver.url, stack.master_key])


async def _active_is(a: SupervisorProcess, b: SupervisorProcess, n: int) -> bool:
    return await _active(a, b) == n


async def _holds(condition: Callable[[], bool], what: str, window: float = QUIET_WINDOW) -> None:
    """`condition` stays true for the whole window (several evaluations by either replica)."""
    await stays_true(condition, window=window, what=what)
