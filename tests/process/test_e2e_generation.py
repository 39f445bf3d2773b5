"""End to end over real HTTP: fake Telegram → webhook → supervisor → fake KIE → callback → delivery."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess, buttons

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-e2e-")))
    await s.start()
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisor(stack: Stack) -> AsyncIterator[SupervisorProcess]:
    await stack.add_tenant("e2e-shop", admins=(900001,))
    process = await stack.start_supervisor("e2e-1")
    await process.wait_active(1)
    yield process
    await process.stop()


async def test_free_image_generation_end_to_end(stack: Stack, supervisor: SupervisorProcess) -> None:
    tenant = stack.tenants[0]
    user = ScriptedUser(stack.telegram, tenant.token, 5550001)
    menu = await user.say("/start", expect="Выберите, что создать")
    assert any("Изображения" in text for text, _ in buttons(menu))
    page = await user.tap(menu, "Изображения", expect="выберите модель")
    card = await user.tap(page, "Z-Image", expect="Z-Image")
    await user.tap(card, "Выбрать", expect="Шаг 1/2")
    step2 = await user.say("a red fox in the snow", expect="Шаг 2/2")
    confirm = await user.tap(step2, "16:9", expect="Цена")
    assert "бесплатно" in (confirm.text or "") or "0 ₽" in (confirm.text or "")
    await user.tap(confirm, "Сгенерировать", expect="в очереди")
    result = await user.expect("Z-Image", after=confirm.message_id, timeout=30)
    deadline_entry = await stack.telegram.wait_for_bot_message(
        tenant.token, user.user_id, predicate=lambda e: e.media_kind == "photo", timeout=30
    )
    assert deadline_entry.caption and "Z-Image" in deadline_entry.caption
    assert result is not None


async def test_metrics_expose_the_series_after_a_run(stack: Stack, supervisor: SupervisorProcess) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=5) as client:
        body = (await client.get(f"{supervisor.base_url}/metrics")).text
    for series in (
        'tg_updates_received_total{source="webhook",tenant="e2e-shop"}',
        'tg_updates_handled_total{tenant="e2e-shop"}',
        "tg_handler_seconds_bucket",
        'tenant_runtime_state{state="active",tenant="e2e-shop"} 1.0',
        'tenant_lock_held{tenant="e2e-shop"} 1.0',
        'generations_total{outcome="success",tenant="e2e-shop"}',
        "kie_request_seconds_bucket",
        "db_pool_connections",
    ):
        assert series in body, series
    for tenant in stack.tenants:
        assert tenant.token not in body and tenant.kie_key not in body
