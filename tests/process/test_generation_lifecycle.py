"""Generation jobs through real HTTP: every provider behaviour ends with one outcome and the right money."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from sandbox.kie import CallbackPolicy
from sandbox.stack import DemoTenant, ScriptedUser, Stack, SupervisorProcess, button, buttons
from sandbox.telegram.model import TranscriptEntry
from tenant_runtime.billing.ledger import Ledger
from tests.helpers import funded_user, stays_true, tenant_id_of, wait_until

pytestmark = pytest.mark.slow

MODEL = "google/imagen4-fast"
PRICE = 320  # 4 credits x markup 2 x 40 kopecks
START_BALANCE = 10_000
DUPLICATE_WINDOW_S = 4.0


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-jobs-")))
    await s.start()
    await s.add_tenant("jobs-a", admins=(990001,))
    await s.add_tenant("jobs-b")
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisor(stack: Stack) -> AsyncIterator[SupervisorProcess]:
    process = await stack.start_supervisor("jobs-1", JOB_TIMEOUT_SECONDS="10", KIE_READ_TIMEOUT_SECONDS="2")
    await process.wait_active(2)
    yield process
    await process.stop()


_next_user = iter(range(8_100_000, 8_200_000))


async def _order(user: ScriptedUser, prompt: str) -> TranscriptEntry:
    menu = await user.say("/start", expect="Выберите, что создать")
    await user.telegram.press_button(user.token, user.user_id, menu.message_id, f"md:{MODEL}:1", force=True)
    await user.expect("Шаг 1/2", after=menu.message_id - 1)
    step2 = await user.say(prompt, expect="Шаг 2/2")
    confirm = await user.tap(step2, "Пропустить", expect="Цена")
    await user.tap(confirm, "Сгенерировать", expect="в очереди")
    return confirm


async def _outcome(user: ScriptedUser, after: int, timeout: float = 30) -> TranscriptEntry:
    return await user.telegram.wait_for_bot_message(
        user.token,
        user.user_id,
        after_message_id=after,
        timeout=timeout,
        predicate=lambda e: e.media_kind == "photo" or "❌" in (e.text or ""),
    )


async def _check_money(db: asyncpg.Pool, tenant: DemoTenant, user: ScriptedUser, *, charged: bool) -> None:
    tenant_id = await tenant_id_of(db, tenant.slug)
    ledger = Ledger(db)
    balance = await ledger.balance(tenant_id, user.user_id)
    assert balance.held == 0
    assert balance.available == START_BALANCE - (PRICE if charged else 0)
    jobs = await db.fetch(
        "SELECT id, hold_id, status FROM jobs WHERE tenant_id = $1 AND user_id = $2", tenant_id, user.user_id
    )
    assert len(jobs) == 1, jobs
    resolutions = await db.fetch(
        "SELECT kind FROM ledger_entries WHERE tenant_id = $1 AND hold_id = $2 AND kind <> 'hold'",
        tenant_id,
        jobs[0]["hold_id"],
    )
    assert [r["kind"] for r in resolutions] == (["commit"] if charged else ["release"])
    assert await ledger.reconcile(tenant_id) == []


def _outcomes(stack: Stack, user: ScriptedUser) -> list[TranscriptEntry]:
    return [
        e
        for e in stack.telegram.transcript(user.token, user.user_id)
        if e.from_bot and (e.media_kind == "photo" or "❌" in (e.text or ""))
    ]


async def _assert_success(
    stack: Stack, db: asyncpg.Pool, tenant: DemoTenant, user: ScriptedUser, confirm: TranscriptEntry
) -> None:
    result = await _outcome(user, confirm.message_id)
    assert result.media_kind == "photo" and "Imagen 4 Fast" in (result.caption or "")
    assert [t for t, _ in _buttons(result)] == ["🔁 Повторить", "✏️ Изменить параметры", "🏠 Главное меню"]
    await _check_money(db, tenant, user, charged=True)
    # A duplicate would come from the other completion path (the next poll, 3 s apart, or a retried
    # callback): wait past it before saying "once".
    await asyncio.sleep(DUPLICATE_WINDOW_S)
    assert len(_outcomes(stack, user)) == 1


def _buttons(entry: TranscriptEntry) -> list[tuple[str, str]]:
    from sandbox.stack import buttons

    return buttons(entry)


async def _assert_failure(
    stack: Stack,
    db: asyncpg.Pool,
    tenant: DemoTenant,
    user: ScriptedUser,
    confirm: TranscriptEntry,
    reason: str,
    timeout: float = 30,
) -> None:
    result = await _outcome(user, confirm.message_id, timeout)
    assert "❌" in (result.text or "") and reason in (result.text or "")
    assert "3,20 ₽ возвращено на баланс · Баланс 100 ₽" in (result.text or "")
    assert any("Попробовать снова" in t for t, _ in _buttons(result))
    await _check_money(db, tenant, user, charged=False)
    assert len(_outcomes(stack, user)) == 1


async def test_success_via_callback(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, kie_defaults: None
) -> None:
    tenant = stack.tenants[0]
    user = await funded_user(stack, db, tenant, next(_next_user), START_BALANCE)
    confirm = await _order(user, "a lighthouse at dawn")
    await _assert_success(stack, db, tenant, user, confirm)
    assert any(c.status == "delivered" or c.attempts for c in stack.kie.callbacks)


async def test_success_via_polling_when_callbacks_are_dropped(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, kie_defaults: None
) -> None:
    stack.kie.config = dataclasses.replace(stack.kie.config, callbacks=CallbackPolicy(drop=True))
    tenant = stack.tenants[0]
    user = await funded_user(stack, db, tenant, next(_next_user), START_BALANCE)
    confirm = await _order(user, "a lighthouse by polling")
    await _assert_success(stack, db, tenant, user, confirm)
    assert stack.kie.calls("recordInfo", tenant.kie_key) >= 1


async def test_duplicate_callbacks_deliver_once(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, kie_defaults: None
) -> None:
    stack.kie.config = dataclasses.replace(stack.kie.config, callbacks=CallbackPolicy(duplicates=3))
    tenant = stack.tenants[0]
    user = await funded_user(stack, db, tenant, next(_next_user), START_BALANCE)
    confirm = await _order(user, "three callbacks")
    await _assert_success(stack, db, tenant, user, confirm)


async def test_callback_before_task_id_is_stored(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, kie_defaults: None
) -> None:
    # The task is created at once but the reply is held for 1.5 s: its callback arrives first.
    stack.kie.inject("createTask", hang_s=1.5)
    tenant = stack.tenants[0]
    user = await funded_user(stack, db, tenant, next(_next_user), START_BALANCE)
    confirm = await _order(user, "early callback")
    await _assert_success(stack, db, tenant, user, confirm)


async def test_fail_state_returns_the_money(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, kie_defaults: None
) -> None:
    tenant = stack.tenants[0]
    user = await funded_user(stack, db, tenant, next(_next_user), START_BALANCE)
    confirm = await _order(user, "please FAIL this")
    await _assert_failure(stack, db, tenant, user, confirm, "фильтром контента")


async def test_insufficient_kie_credits_alerts_admins_once(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, kie_defaults: None
) -> None:
    tenant = stack.tenants[0]
    admin = ScriptedUser(stack.telegram, tenant.token, 990001)
    await admin.say("/start", expect="Выберите, что создать")
    stack.kie.inject("createTask", code=402, times=2, api_key=tenant.kie_key)
    first = await funded_user(stack, db, tenant, next(_next_user), START_BALANCE)
    confirm = await _order(first, "no credits one")
    await _assert_failure(stack, db, tenant, first, confirm, "временно недоступен")
    second = await funded_user(stack, db, tenant, next(_next_user), START_BALANCE)
    confirm2 = await _order(second, "no credits two")
    await _assert_failure(stack, db, tenant, second, confirm2, "временно недоступен")
    alerts = [
        e for e in stack.telegram.transcript(tenant.token, admin.user_id) if "закончились кредиты" in (e.text or "")
    ]
    assert len(alerts) == 1


async def test_rate_limited_create_is_retried(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, kie_defaults: None
) -> None:
    tenant = stack.tenants[1]
    before = stack.kie.calls("createTask", tenant.kie_key)
    stack.kie.inject("createTask", code=429, times=1, api_key=tenant.kie_key)
    user = await funded_user(stack, db, tenant, next(_next_user), START_BALANCE)
    confirm = await _order(user, "after a 429")
    await _assert_success(stack, db, tenant, user, confirm)
    assert stack.kie.calls("createTask", tenant.kie_key) - before == 2


async def test_create_timeout_never_makes_two_tasks(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, kie_defaults: None
) -> None:
    # The reply is held past the client's 2 s read timeout: the outcome is unknown, so no retry;
    # the task exists at KIE and its callback (the URL names the job) completes the job.
    tenant = stack.tenants[1]
    before = stack.kie.calls("createTask", tenant.kie_key)
    stack.kie.inject("createTask", hang_s=4, api_key=tenant.kie_key)
    user = await funded_user(stack, db, tenant, next(_next_user), START_BALANCE)
    confirm = await _order(user, "slow create")
    await _assert_success(stack, db, tenant, user, confirm)
    assert stack.kie.calls("createTask", tenant.kie_key) - before == 1


async def test_job_timeout_refunds(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, kie_defaults: None
) -> None:
    stack.kie.config = dataclasses.replace(stack.kie.config, model_durations={MODEL: (60.0, 60.0)})
    tenant = stack.tenants[1]
    user = await funded_user(stack, db, tenant, next(_next_user), START_BALANCE)
    confirm = await _order(user, "never finishes")
    await _assert_failure(stack, db, tenant, user, confirm, "не уложилась", timeout=40)


async def test_forged_callbacks_change_nothing(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, kie_defaults: None
) -> None:
    tenant_a, tenant_b = stack.tenants[0], stack.tenants[1]
    # A job of its own, still running at KIE, so that an accepted forgery would visibly change it.
    stack.kie.config = dataclasses.replace(stack.kie.config, model_durations={MODEL: (20.0, 20.0)})
    user = await funded_user(stack, db, tenant_a, next(_next_user), START_BALANCE)
    await _order(user, "a forged end")
    tenant_id = await tenant_id_of(db, tenant_a.slug)

    async def submitted() -> asyncpg.Record | None:
        return await db.fetchrow(
            "SELECT id, task_id, status FROM jobs WHERE tenant_id = $1 AND user_id = $2 AND status = 'submitted'",
            tenant_id,
            user.user_id,
        )

    await wait_until(submitted, timeout=10, what="the job submitted")
    job = await submitted()
    assert job is not None
    from shared.crypto import KeyRing
    from supervisor.tenants import TenantStore
    from tenant_runtime.generation.callback_token import make_token

    config_a = await TenantStore(db, KeyRing([stack.master_key])).get(tenant_a.slug)
    good_token = make_token(config_a.callback_secret, config_a.id, job["id"])
    body = {"code": 501, "msg": "fail", "data": {"taskId": job["task_id"], "state": "fail", "failCode": "500"}}
    async with httpx.AsyncClient(timeout=5) as client:
        base = f"{supervisor.base_url}/kie/callback"
        wrong_token = await client.post(f"{base}/{tenant_a.slug}/{job['id']}.{'0' * 32}", json=body)
        wrong_tenant = await client.post(f"{base}/{tenant_b.slug}/{good_token}", json=body)
        unknown_job = await client.post(f"{base}/{tenant_a.slug}/99999999.{'f' * 32}", json=body)
        garbage = await client.post(f"{base}/{tenant_a.slug}/nonsense", json=body)
        unknown_slug = await client.post(f"{base}/nobody/{good_token}", json=body)
    assert [r.status_code for r in (wrong_token, wrong_tenant, unknown_job, garbage, unknown_slug)] == [
        401,
        401,
        401,
        401,
        404,
    ]
    after = await db.fetchrow("SELECT status FROM jobs WHERE id = $1", job["id"])
    assert after["status"] == job["status"]


async def test_kill_minus_nine_mid_generation_is_finished_by_the_next_process(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, kie_defaults: None
) -> None:
    stack.kie.config = dataclasses.replace(stack.kie.config, model_durations={MODEL: (4.0, 4.0)})
    tenant = stack.tenants[1]
    user = await funded_user(stack, db, tenant, next(_next_user), START_BALANCE)
    confirm = await _order(user, "survive a crash")
    tenant_id = await tenant_id_of(db, tenant.slug)

    async def submitted() -> bool:
        status = await db.fetchval(
            "SELECT status FROM jobs WHERE tenant_id = $1 AND user_id = $2", tenant_id, user.user_id
        )
        return status == "submitted"

    # Killed while KIE is generating: the callback will hit a dead port, so only polling can finish it.
    await wait_until(submitted, timeout=5, what="job submitted")
    supervisor.proc.send_signal(signal.SIGKILL)
    await supervisor.proc.wait()
    replacement = await stack.start_supervisor(
        "jobs-2", port=supervisor.port, JOB_TIMEOUT_SECONDS="10", KIE_READ_TIMEOUT_SECONDS="2"
    )
    try:
        await replacement.wait_active(2)
        await _assert_success(stack, db, tenant, user, confirm)
    finally:
        supervisor.proc = replacement.proc  # the module fixture stops whichever process serves now


async def test_a_history_card_repeats_with_the_same_parameters_and_gives_the_files_again(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    tenant = stack.tenants[0]
    user = ScriptedUser(stack.telegram, tenant.token, next(_next_user))
    await user.say("/start", expect="Выберите, что создать")
    tenant_id = await db.fetchval("SELECT id FROM tenants WHERE slug = $1", tenant.slug)
    await Ledger(db).credit(
        tenant_id,
        user.user_id,
        100_000,
        kind="admin_credit",
        unique_key=f"t:{user.user_id}",
        actor="admin:1",
        reason="t",
    )
    confirm = await _order(user, "a red fox in the snow")
    await _outcome(user, confirm.message_id)
    spec = stack.registry.get(MODEL)
    assert spec is not None
    history = await user.say("/history", expect="Последние генерации")
    card = await user.tap(history, f"1. {spec.title.ru}", expect="Цена")
    assert "a red fox in the snow" in (card.text or "")
    assert [label for label, _ in buttons(card)] == [
        "🔁 Повторить",
        "✏️ Изменить параметры",
        "⬇️ Скачать снова",
        "🧾 История",
    ]
    links = await user.tap(card, "⬇️ Скачать снова", expect=f"⬇️ {spec.title.ru}:\n1")
    (first,) = await db.fetch("SELECT params, price FROM jobs WHERE user_id = $1", user.user_id)
    assert links.message_id > card.message_id

    # Repeat twice from the same card (a double tap) is one order; from a second card it is another.
    await user.telegram.press_button(user.token, user.user_id, card.message_id, button(card, "🔁 Повторить"))
    await user.telegram.press_button(user.token, user.user_id, card.message_id, button(card, "🔁 Повторить"))
    await wait_until(lambda: _jobs(db, user.user_id, 2), timeout=15, what="the repeat ordered")
    newest = max(e.message_id for e in stack.telegram.transcript(user.token, user.user_id))
    await user.telegram.press_button(
        user.token, user.user_id, history.message_id, button(history, f"1. {spec.title.ru}")
    )
    again = await user.expect("Цена", after=newest)  # a new card: the old one stays as it was
    await user.tap(again, "🔁 Повторить", expect="в очереди")
    await wait_until(lambda: _jobs(db, user.user_id, 3), timeout=15, what="the second card's repeat")
    rows = await db.fetch("SELECT params, price FROM jobs WHERE user_id = $1 ORDER BY id", user.user_id)
    assert [(r["params"], r["price"]) for r in rows] == [(first["params"], first["price"])] * 3
    await stays_true(lambda: _jobs(db, user.user_id, 3), window=2, what="a double tap ordered twice")


async def _jobs(db: asyncpg.Pool, user_id: int, count: int) -> bool:
    return await db.fetchval("SELECT count(*) FROM jobs WHERE user_id = $1", user_id) == count
