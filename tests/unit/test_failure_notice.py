"""A failed generation's message to the user, against the fake Telegram over real HTTP.

Invariant: the notifier raises whenever the user may not have been told (so the job service keeps the
failure untold and tries again), and never tells one failure twice. Found by chaos seed 3: a 5xx or a
network failure while telling was swallowed, the failure was recorded as told and the user heard nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError, TelegramServerError

from sandbox.telegram.server import FakeTelegram
from tenant_runtime.billing.job_money import JobMoney, MoneyState
from tenant_runtime.config import TenantConfig, TenantStatus
from tenant_runtime.generation.delivery import TelegramNotifier
from tenant_runtime.generation.downloads import Downloader
from tenant_runtime.generation.jobs import Job
from tests.helpers import fake_chat

USER = 4242
MONEY = JobMoney(MoneyState.RETURNED, amount=320, available=1000, held=0, currency="RUB")
_bots = itertools.count(761_000_001)


@dataclass
class Handle:
    config: TenantConfig
    bot: Bot


@dataclass
class Shop:
    fake: FakeTelegram
    token: str
    handle: Handle


def _config(token: str) -> TenantConfig:
    return TenantConfig(
        id=1, slug="fail-shop", display_name="F", status=TenantStatus.ENABLED, bot_id=int(token.split(":")[0]),
        bot_token=token, kie_api_key=None, kie_webhook_key=None, webhook_secret="w", callback_secret="c",
        admin_ids=frozenset(), lock_key=1, markup=Decimal("2"), default_language="en", bot_mode=None,
        welcome_bonus=0, referral_bonus=0, disabled_models=frozenset(), config_version=1,
    )  # fmt: skip


def _failed_job(progress_message_id: int | None = None) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=7, tenant_id=1, user_id=USER, chat_id=USER, model="m", params={}, kie_input={}, price=320,
        hold_id=None, correlation_id="c", language="en", status="failed", task_id="t", kie_state="fail",
        result_urls=[], result_text=None, fail_reason="content", progress_message_id=progress_message_id,
        created_at=now, submitted_at=now, finished_at=now, deadline_at=now,
    )  # fmt: skip


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    token = f"{next(_bots)}:AAfake-failure"
    async with fake_chat(token, USER) as fake:
        bot = Bot(token, session=AiohttpSession(api=fake.api_server))
        try:
            yield Shop(fake, token, Handle(_config(token), bot))
        finally:
            await bot.session.close()


def _bot_texts(shop: Shop) -> list[str]:
    return [m.text or "" for m in shop.fake.transcript(shop.token, USER) if m.from_bot]


async def test_a_telegram_5xx_raises_and_the_next_try_tells_once(shop: Shop) -> None:
    notifier = TelegramNotifier(None)
    await shop.fake.inject_faults(shop.token, server_error_calls=1)
    with pytest.raises(TelegramServerError):
        await notifier.failed(shop.handle, _failed_job(), None, MONEY)
    assert _bot_texts(shop) == []
    await notifier.failed(shop.handle, _failed_job(), None, MONEY)
    texts = _bot_texts(shop)
    assert len(texts) == 1 and "3.20" in texts[0], texts


async def test_an_unreachable_telegram_raises(shop: Shop) -> None:
    dead = Bot(shop.token, session=AiohttpSession(api=TelegramAPIServer.from_base("http://127.0.0.1:9")))
    try:
        with pytest.raises(TelegramNetworkError):
            await TelegramNotifier(None).failed(replace(shop.handle, bot=dead), _failed_job(), None, MONEY)
    finally:
        await dead.session.close()


async def test_a_retry_after_the_edit_landed_adds_no_second_message(shop: Shop) -> None:
    notifier = TelegramNotifier(None)
    progress = await shop.handle.bot.send_message(USER, "generating…")
    job = _failed_job(progress.message_id)
    await notifier.failed(shop.handle, job, None, MONEY)
    # The first try's edit reached Telegram but its answer was lost: the retry edits the same text again.
    await notifier.failed(shop.handle, job, None, MONEY)
    texts = _bot_texts(shop)
    assert len(texts) == 1 and "3.20" in texts[0], texts


async def test_a_deleted_progress_message_is_told_in_a_new_one(shop: Shop) -> None:
    progress = await shop.handle.bot.send_message(USER, "generating…")
    await shop.handle.bot.delete_message(USER, progress.message_id)
    await TelegramNotifier(None).failed(shop.handle, _failed_job(progress.message_id), None, MONEY)
    assert any("3.20" in text for text in _bot_texts(shop))


async def test_a_user_who_blocked_the_bot_counts_as_told(shop: Shop) -> None:
    await shop.fake.block_bot(shop.token, USER)
    await TelegramNotifier(None).failed(shop.handle, _failed_job(), None, MONEY)  # no raise: nothing to retry


def _succeeded_job(url: str) -> Job:
    return replace(_failed_job(), status="succeeded", kie_state="success", fail_reason=None, result_urls=[url])


async def test_a_result_that_hit_a_5xx_raises_and_sends_no_fallback(shop: Shop) -> None:
    # Before: the 5xx on the by-URL send fell back to a download and upload, then to a bare link: the
    # user got a link for good (or a second copy, had the first send landed).
    notifier = TelegramNotifier(None, downloads=Downloader(allow_loopback=True))
    url = "http://127.0.0.1:9/result.png"  # never fetched: nothing may fall back to downloading it
    charged = replace(MONEY, state=MoneyState.CHARGED)
    await shop.fake.inject_faults(shop.token, server_error_calls=1)
    with pytest.raises(TelegramServerError):
        await notifier.delivered(shop.handle, _succeeded_job(url), None, charged)
    sent = [c.method for c in shop.fake.calls(shop.token) if c.method.startswith("send")]
    assert sent == ["sendPhoto"], sent
    assert _bot_texts(shop) == []
