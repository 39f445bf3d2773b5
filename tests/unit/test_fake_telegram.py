"""The fake Telegram server against an unmodified aiogram Bot, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from sandbox.telegram.server import USER_PHOTO, ControlError, FakeTelegram, PaymentDeclinedError
from tests.helpers import serving

_ids = itertools.count(700_000_001)


def new_token() -> str:
    return f"{next(_ids)}:AAfake{next(_ids)}"


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """For state the fake exposes without an event (webhook errors): check often, fail at a deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(webhook_retry_initial=0.02, webhook_retry_max=0.1, fetch_timeout=2.0)
    await server.start()
    yield server
    await server.stop()


@dataclass
class Tenant:
    token: str
    bot: Bot


@pytest.fixture
async def tenant(fake: FakeTelegram) -> AsyncIterator[Tenant]:
    token = new_token()
    await fake.register_bot(token, username="shop_bot")
    bot = Bot(
        token,
        session=AiohttpSession(api=fake.api_server),
        default=DefaultBotProperties(parse_mode="HTML"),
    )
    yield Tenant(token, bot)
    await bot.session.close()


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=data) for text, data in buttons]]
    )


async def test_get_me_validates_in_aiogram(fake: FakeTelegram, tenant: Tenant) -> None:
    me = await tenant.bot.get_me()
    assert me.id == int(tenant.token.split(":")[0])
    assert me.is_bot and me.username == "shop_bot" and me.first_name


async def test_unknown_and_revoked_tokens_are_unauthorized(fake: FakeTelegram, tenant: Tenant) -> None:
    stranger = Bot(new_token(), session=AiohttpSession(api=fake.api_server))
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    finally:
        await stranger.session.close()
    await fake.inject_faults(tenant.token, revoke=True)
    with pytest.raises(TelegramUnauthorizedError):
        await tenant.bot.get_me()
    await fake.clear_faults(tenant.token)
    assert (await tenant.bot.get_me()).username == "shop_bot"


async def test_unknown_method_is_404_and_names_are_case_insensitive(fake: FakeTelegram, tenant: Tenant) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.base_url}/bot{tenant.token}/sendTelepathy", json={}) as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.get(f"{fake.base_url}/bot{tenant.token}/GETME") as resp:
            body = await resp.json()
            assert resp.status == 200 and body["ok"] and body["result"]["is_bot"] is True


async def test_send_message_shows_in_transcript(fake: FakeTelegram, tenant: Tenant) -> None:
    await fake.send_text(tenant.token, 42, "hello")
    sent = await tenant.bot.send_message(42, "  <b>Price</b>: 5 &lt;stars&gt;  ")
    assert sent.text == "Price: 5 <stars>"
    assert sent.entities is not None and sent.entities[0].type == "bold" and sent.entities[0].length == 5
    [user_line, bot_line] = fake.transcript(tenant.token, 42)
    assert (user_line.from_bot, user_line.text) == (False, "hello")
    assert (bot_line.from_bot, bot_line.text, bot_line.message_id) == (True, "Price: 5 <stars>", 2)
    assert [call.method for call in fake.calls(tenant.token, "sendmessage")] == ["sendMessage"]
    assert fake.calls(tenant.token, "sendMessage")[0].params["chat_id"] == 42


async def test_bad_html_and_unknown_chat_are_rejected(fake: FakeTelegram, tenant: Tenant) -> None:
    await fake.send_text(tenant.token, 42, "hi")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await tenant.bot.send_message(42, "1 < 2 <b>bold")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await tenant.bot.send_message(999, "nobody wrote to me")


async def test_edits_and_keyboards_are_reflected(fake: FakeTelegram, tenant: Tenant) -> None:
    await fake.send_text(tenant.token, 7, "/start")
    sent = await tenant.bot.send_message(7, "Pick one", reply_markup=keyboard(("A", "pick:a"), ("B", "pick:b")))
    await tenant.bot.edit_message_text(
        "Picked A", chat_id=7, message_id=sent.message_id, reply_markup=keyboard(("Undo", "undo"))
    )
    entry = fake.transcript(tenant.token, 7)[-1]
    assert entry.text == "Picked A" and entry.edited
    assert entry.reply_markup == {"inline_keyboard": [[{"text": "Undo", "callback_data": "undo"}]]}

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await tenant.bot.edit_message_text(
            "Picked A", chat_id=7, message_id=sent.message_id, reply_markup=keyboard(("Undo", "undo"))
        )
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await tenant.bot.edit_message_text("x", chat_id=7, message_id=999)

    with pytest.raises(ControlError):
        await fake.press_button(tenant.token, 7, sent.message_id, "pick:a")  # no longer on the keyboard
    update = await fake.press_button(tenant.token, 7, sent.message_id, "undo")
    assert update.kind == "callback_query" and update.message_id == sent.message_id

    # Telegram removes a keyboard the edit does not repeat.
    await tenant.bot.edit_message_text("Done", chat_id=7, message_id=sent.message_id)
    assert fake.transcript(tenant.token, 7)[-1].reply_markup is None
    await tenant.bot.delete_message(7, sent.message_id)
    assert fake.transcript(tenant.token, 7)[-1].deleted
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await tenant.bot.delete_message(7, sent.message_id)


async def test_callback_answers_are_recorded(fake: FakeTelegram, tenant: Tenant) -> None:
    await fake.send_text(tenant.token, 8, "menu")
    sent = await tenant.bot.send_message(8, "Menu", reply_markup=keyboard(("Go", "go")))
    pressed = await fake.press_button(tenant.token, 8, sent.message_id, "go")
    [update] = await tenant.bot.get_updates(offset=pressed.update_id)
    assert update.callback_query is not None and update.callback_query.data == "go"
    assert update.callback_query.message is not None and update.callback_query.chat_instance
    assert not fake.callbacks(tenant.token)[0].answered
    await update.callback_query.answer("Working…")
    [record] = fake.callbacks(tenant.token)
    assert record.answered and record.text == "Working…"
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await tenant.bot.answer_callback_query(update.callback_query.id)


async def test_dispatcher_polling_receives_start_and_replies(fake: FakeTelegram, tenant: Tenant) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer(f"Welcome, {message.from_user.first_name if message.from_user else '?'}")

    before = asyncio.all_tasks()
    polling = asyncio.create_task(
        dp.start_polling(tenant.bot, polling_timeout=5, handle_signals=False, close_bot_session=False)
    )
    update = await fake.send_text(tenant.token, 100, "/start ref42", first_name="Ann")
    assert update.payload["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    reply = await fake.wait_for_bot_message(tenant.token, 100, after_message_id=update.message_id, timeout=5)
    assert reply.text == "Welcome, Ann"

    await asyncio.wait_for(dp.stop_polling(), 5)
    await asyncio.wait_for(polling, 5)
    await tenant.bot.session.close()  # ends the keep-alive connection and its server-side task
    await wait_until(lambda: not (asyncio.all_tasks() - before), what="polling tasks to finish")
    assert all(call.status in (200, 0) for call in fake.calls(tenant.token))


async def test_second_poller_gets_the_older_one_a_conflict(fake: FakeTelegram, tenant: Tenant) -> None:
    twin = Bot(tenant.token, session=AiohttpSession(api=fake.api_server))
    try:
        first = asyncio.create_task(tenant.bot.get_updates(timeout=5))
        await wait_until(lambda: len(fake.calls(tenant.token, "getUpdates")) == 1, what="first poll")
        second = asyncio.create_task(twin.get_updates(timeout=5))
        with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
            await asyncio.wait_for(first, 5)
        update = await fake.send_text(tenant.token, 5, "hi")
        [received] = await asyncio.wait_for(second, 5)
        assert received.update_id == update.update_id
    finally:
        await twin.session.close()


async def test_long_poll_honours_timeout_and_offset(fake: FakeTelegram, tenant: Tenant) -> None:
    started = time.monotonic()
    assert await tenant.bot.get_updates(timeout=1) == []
    assert 0.9 < time.monotonic() - started < 3
    one = await fake.send_text(tenant.token, 5, "one")
    two = await fake.send_text(tenant.token, 5, "two")
    assert [u.update_id for u in await tenant.bot.get_updates(limit=1)] == [one.update_id]
    assert [u.update_id for u in await tenant.bot.get_updates(offset=two.update_id)] == [two.update_id]
    assert fake.webhook_info(tenant.token).pending_update_count == 1

    # A redelivered update comes back with its old id even though the offset is past it.
    await tenant.bot.get_updates(offset=two.update_id + 1, timeout=0)
    await fake.redeliver(tenant.token, one.update_id)
    [again] = await tenant.bot.get_updates(offset=two.update_id + 1)
    assert again.update_id == one.update_id and again.message is not None and again.message.text == "one"


async def test_get_updates_with_webhook_set_is_a_conflict(fake: FakeTelegram, tenant: Tenant) -> None:
    await tenant.bot.set_webhook("http://127.0.0.1:9/hook")
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await tenant.bot.get_updates()
    with pytest.raises(TelegramBadRequest):
        await tenant.bot.set_webhook("http://127.0.0.1:9/hook", secret_token="not valid!")
    await tenant.bot.delete_webhook()
    assert await tenant.bot.get_updates() == []


@dataclass
class WebhookReceiver:
    """A tiny bot-side webhook app: answers 500 to the first `failures` posts, records the rest."""

    failures: int
    secret: str
    received: list[tuple[int, int]] = field(default_factory=list)  # (chat id, update id)
    headers_ok: bool = True
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.headers_ok &= request.headers.get("X-Telegram-Bot-Api-Secret-Token") == self.secret
        if self.failures:
            self.failures -= 1
            return web.Response(status=500)
        update = await request.json()
        self.received.append((update["message"]["chat"]["id"], update["update_id"]))
        self.arrived.set()
        return web.json_response({})

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def test_webhook_delivery_keeps_per_chat_order_through_retries(fake: FakeTelegram, tenant: Tenant) -> None:
    receiver = WebhookReceiver(failures=1, secret="s3cret_-Token")
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    async with serving(app) as url:
        await tenant.bot.set_webhook(f"{url}/hook", secret_token=receiver.secret)
        sent = [await fake.send_text(tenant.token, chat, f"m{i}") for i in range(4) for chat in (1, 2)]
        await receiver.wait_for(len(sent))
        assert receiver.headers_ok
        for chat in (1, 2):
            expected = [u.update_id for u in sent if u.chat_key == chat]
            assert [update_id for chat_id, update_id in receiver.received if chat_id == chat] == expected
        info = await tenant.bot.get_webhook_info()
        assert info.url.endswith("/hook") and info.pending_update_count == 0
        assert info.last_error_message and "500" in info.last_error_message and info.last_error_date


async def test_aiogram_webhook_mode_including_replies_in_the_response(fake: FakeTelegram, tenant: Tenant) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> SendMessage:
        return message.answer("Hi from the webhook response")  # aiogram returns it in the HTTP reply

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}")

    app = web.Application()
    SimpleRequestHandler(dp, tenant.bot, handle_in_background=False, secret_token="abc").register(app, "/wh")
    async with serving(app) as url:
        await tenant.bot.set_webhook(f"{url}/wh", secret_token="abc")
        first = await fake.send_text(tenant.token, 200, "/start")
        reply = await fake.wait_for_bot_message(tenant.token, 200, after_message_id=first.message_id)
        assert reply.text == "Hi from the webhook response"
        second = await fake.send_text(tenant.token, 200, "ping")
        echo_reply = await fake.wait_for_bot_message(tenant.token, 200, after_message_id=second.message_id)
        assert echo_reply.text == "echo: ping"
        await tenant.bot.set_webhook(f"{url}/wh", secret_token="wrong")
        third = await fake.send_text(tenant.token, 200, "rejected")
        await wait_until(lambda: fake.webhook_info(tenant.token).last_error_message is not None, what="401")
        assert "401" in str(fake.webhook_info(tenant.token).last_error_message)
        assert fake.webhook_info(tenant.token).pending_update_count == 1
        await tenant.bot.delete_webhook(drop_pending_updates=True)
        assert fake.webhook_info(tenant.token).pending_update_count == 0
        assert third.update_id > second.update_id


async def test_webhook_down_does_not_break_the_fake(fake: FakeTelegram, tenant: Tenant) -> None:
    await tenant.bot.set_webhook("http://127.0.0.1:9/unreachable", drop_pending_updates=True)
    update = await fake.send_text(tenant.token, 3, "anyone?")
    await wait_until(lambda: fake.webhook_info(tenant.token).last_error_message is not None, what="webhook error")
    info = fake.webhook_info(tenant.token)
    assert info.pending_update_count == 1 and info.last_error_message == "Connection refused"
    await tenant.bot.delete_webhook()
    [pending] = await tenant.bot.get_updates()
    assert pending.update_id == update.update_id


async def test_faults_rate_limit_and_server_errors(fake: FakeTelegram, tenant: Tenant) -> None:
    await fake.inject_faults(tenant.token, rate_limit_calls=1, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as caught:
        await tenant.bot.get_me()
    assert caught.value.retry_after == 7
    await tenant.bot.get_me()

    await fake.inject_faults(tenant.token, rate_limit_method="sendChatAction", retry_after=3)
    await fake.send_text(tenant.token, 9, "hi")
    with pytest.raises(TelegramRetryAfter):
        await tenant.bot.send_chat_action(9, "typing")
    await tenant.bot.send_message(9, "not rate limited")

    await fake.clear_faults(tenant.token)
    await fake.inject_faults(tenant.token, server_error_calls=1, server_error_status=502)
    with pytest.raises(TelegramServerError):
        await tenant.bot.get_me()
    assert await tenant.bot.send_chat_action(9, "typing")
    assert [call.status for call in fake.calls(tenant.token, "getMe")] == [429, 200, 502]


async def test_stars_invoice_payment_and_refund(fake: FakeTelegram, tenant: Tenant) -> None:
    buy = await fake.send_text(tenant.token, 55, "/buy")
    with pytest.raises(TelegramBadRequest, match="STARS_INVOICE_INVALID"):
        await tenant.bot.send_invoice(55, "Pack", "Two prices", "p", "XTR", [LabeledPrice(label="a", amount=1)] * 2)
    invoice = await tenant.bot.send_invoice(
        55, "50 credits", "Credits pack", "order:1", "XTR", [LabeledPrice(label="50 credits", amount=50)]
    )
    assert invoice.invoice is not None and invoice.invoice.total_amount == 50

    paying = asyncio.create_task(fake.pay_invoice(tenant.token, 55, invoice.message_id, timeout=5))
    [pre] = await tenant.bot.get_updates(offset=buy.update_id + 1, timeout=5)
    query = pre.pre_checkout_query
    assert isinstance(query, PreCheckoutQuery) and query.invoice_payload == "order:1"
    await tenant.bot.answer_pre_checkout_query(query.id, ok=True)
    charge_id = await asyncio.wait_for(paying, 5)

    [paid] = await tenant.bot.get_updates(offset=pre.update_id + 1, timeout=5)
    payment = paid.message.successful_payment if paid.message else None
    assert payment is not None and payment.telegram_payment_charge_id == charge_id
    assert (payment.currency, payment.total_amount, payment.invoice_payload) == ("XTR", 50, "order:1")

    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await tenant.bot.refund_star_payment(56, charge_id)
    assert await tenant.bot.refund_star_payment(55, charge_id)
    with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
        await tenant.bot.refund_star_payment(55, charge_id)


async def test_declined_pre_checkout_does_not_charge(fake: FakeTelegram, tenant: Tenant) -> None:
    buy = await fake.send_text(tenant.token, 57, "/buy")
    invoice = await tenant.bot.send_invoice(57, "Pack", "Pack", "order:2", "XTR", [LabeledPrice(label="x", amount=5)])
    paying = asyncio.create_task(fake.pay_invoice(tenant.token, 57, invoice.message_id, timeout=5))
    [pre] = await tenant.bot.get_updates(offset=buy.update_id + 1, timeout=5)
    assert pre.pre_checkout_query is not None
    await tenant.bot.answer_pre_checkout_query(pre.pre_checkout_query.id, ok=False, error_message="Sold out")
    with pytest.raises(PaymentDeclinedError, match="Sold out"):
        await asyncio.wait_for(paying, 5)
    assert await tenant.bot.get_updates(offset=pre.update_id + 1) == []


async def test_media_group_and_commands(fake: FakeTelegram, tenant: Tenant) -> None:
    await fake.send_text(tenant.token, 33, "album please")
    album = await tenant.bot.send_media_group(
        33,
        [
            InputMediaPhoto(media=BufferedInputFile(USER_PHOTO, "a.png"), caption="<b>first</b>"),
            InputMediaPhoto(media=BufferedInputFile(USER_PHOTO, "b.png")),
        ],
    )
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    assert album[0].caption == "first" and [m.message_id for m in album] == [2, 3]

    await tenant.bot.set_my_commands([BotCommand(command="start", description="Start over")])
    commands = await tenant.bot.get_my_commands()
    assert [(c.command, c.description) for c in commands] == [("start", "Start over")]
    assert await tenant.bot.get_my_commands(language_code="en") == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await tenant.bot.set_my_commands([BotCommand(command="Bad Command", description="x")])
    await tenant.bot.delete_my_commands()
    assert await tenant.bot.get_my_commands() == []


async def test_multipart_photo_upload_and_user_photo_download(fake: FakeTelegram, tenant: Tenant) -> None:
    await fake.send_photo(tenant.token, 31, caption="my cat")
    [update] = await tenant.bot.get_updates()
    assert update.message is not None and update.message.photo and update.message.caption == "my cat"
    downloaded = io.BytesIO()
    await tenant.bot.download(update.message.photo[-1].file_id, destination=downloaded)
    assert downloaded.getvalue() == USER_PHOTO

    sent = await tenant.bot.send_photo(31, BufferedInputFile(USER_PHOTO, "result.png"), caption="<i>done</i>")
    assert sent.photo and sent.caption == "done"
    entry = fake.transcript(tenant.token, 31)[-1]
    assert (entry.media_kind, entry.media_source, entry.caption) == ("photo", "upload:result.png", "done")
    assert fake.calls(tenant.token, "sendPhoto")[0].params["photo"] == f"<upload result.png: {len(USER_PHOTO)} bytes>"
    again = await tenant.bot.send_photo(31, sent.photo[-1].file_id)
    assert again.photo and again.photo[-1].file_id == sent.photo[-1].file_id


async def test_media_urls_are_fetched(fake: FakeTelegram, tenant: Tenant) -> None:
    await fake.send_photo(tenant.token, 32)
    [update] = await tenant.bot.get_updates()
    assert update.message is not None and update.message.photo
    file = await tenant.bot.get_file(update.message.photo[-1].file_id)
    url = f"{fake.base_url}/file/bot{tenant.token}/{file.file_path}"
    sent = await tenant.bot.send_document(32, url, caption="from url")
    assert sent.document is not None and fake.transcript(tenant.token, 32)[-1].media_source == url
    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await tenant.bot.send_video(32, f"{fake.base_url}/file/bot{tenant.token}/missing.mp4")


async def test_control_http_api_round_trip(fake: FakeTelegram) -> None:
    token = new_token()
    async with aiohttp.ClientSession(base_url=fake.base_url) as http:

        async def post(route: str, **body: object) -> tuple[int, dict[str, object]]:
            async with http.post(f"/_control/{route}", json=body) as resp:
                return resp.status, await resp.json()

        status, registered = await post("bots", token=token, username="remote_bot")
        assert status == 200 and registered["result"] == {
            "id": int(token.split(":")[0]),
            "is_bot": True,
            "first_name": "remote_bot",
            "username": "remote_bot",
        }
        status, sent = await post("send_text", token=token, user_id=77, text="/start")
        assert status == 200
        update = sent["result"]
        assert isinstance(update, dict) and update["message"]["text"] == "/start"

        waiting = asyncio.create_task(
            post("wait_for_bot_message", token=token, chat_id=77, text_contains="hello", timeout=5)
        )
        async with http.post(f"/bot{token}/sendMessage", data={"chat_id": "77", "text": "hello there"}) as resp:
            assert resp.status == 200
        status, waited = await asyncio.wait_for(waiting, 5)
        assert status == 200 and waited["result"] == fake.transcript(token, 77)[-1].__dict__

        async with http.get("/_control/transcript", params={"token": token, "chat_id": "77"}) as resp:
            lines = (await resp.json())["result"]
        assert [(line["from_bot"], line["text"]) for line in lines] == [(False, "/start"), (True, "hello there")]

        status, _ = await post("faults", token=token, revoke=True)
        assert status == 200
        async with http.post(f"/bot{token}/getMe") as resp:
            assert resp.status == 401
        await post("faults", token=token, clear=True)
        async with http.get("/_control/calls", params={"token": token}) as resp:
            calls = (await resp.json())["result"]
        assert [(c["method"], c["status"]) for c in calls] == [("sendMessage", 200), ("getMe", 401)]

        status, error = await post("press_button", token=token, user_id=77, message_id=2, callback_data="x")
        assert status == 400 and "no button" in str(error["error"])
