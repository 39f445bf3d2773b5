"""The baseline for the webhook figure: a bare aiogram 3 multi-bot webhook app, nothing of ours.

One Dispatcher with MemoryStorage, one aiogram `SimpleRequestHandler` per bot at /webhook/<slug> (with
the bot's secret token), one shared AiohttpSession, and a /start handler that answers the same text
with an inline keyboard shaped like our main menu. `--background` switches every handler to
`handle_in_background=True` (answer 200 at once, handle after).

Run by the bench as `python -m bench.baseline --port P --api URL --bots bots.json [--background]`,
where bots.json is a list of {"slug", "token", "secret"}. GET /health answers once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from pathlib import Path

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from sandbox.signals import stop_on_signals

MENU_TEXT = "<b>{shop}</b>\nВыберите, что создать. Баланс: <b>{balance}</b>"
CATEGORIES = (
    ("🖼 Изображения (14)", "cat:image"),
    ("🪄 Редактирование (14)", "cat:edit"),
    ("🎬 Видео (24)", "cat:video"),
    ("🔍 Улучшение качества (2)", "cat:upscale"),
    ("🎧 Аудио (1)", "cat:audio"),
)
MENU = (
    ("💰 Баланс", "m:balance"),
    ("⭐ Пополнить", "m:topup"),
    ("🧾 История", "m:history"),
    ("❓ Помощь", "m:help"),
    ("🌐 Language: English", "m:lang"),
)

router = Router(name="baseline")


def main_menu() -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for text, data in (*CATEGORIES, *MENU):
        kb.button(text=text, callback_data=data)
    kb.adjust(2)
    return kb.as_markup()


@router.message(CommandStart())
async def start(message: Message, state: FSMContext) -> None:
    await state.clear()  # as ours does; MemoryStorage makes it free
    shop = (message.bot.token.split(":")[0] if message.bot else "shop")[-4:]
    await message.answer(MENU_TEXT.format(shop=f"Shop {shop}", balance="0 ₽"), reply_markup=main_menu())


def build_app(bots: list[dict[str, str]], api: str, *, background: bool) -> web.Application:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api), limit=200)
    dispatcher = Dispatcher(storage=MemoryStorage())
    dispatcher.include_router(router)
    app = web.Application()

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "bots": len(bots)})

    app.router.add_get("/health", health)
    for spec in bots:
        bot = Bot(spec["token"], session=session, default=DefaultBotProperties(parse_mode="HTML"))
        handler = SimpleRequestHandler(
            dispatcher=dispatcher, bot=bot, handle_in_background=background, secret_token=spec["secret"]
        )
        handler.register(app, path=f"/webhook/{spec['slug']}")
    return app


async def serve(port: int, api: str, bots_file: Path, *, background: bool) -> None:
    bots = json.loads(bots_file.read_text())
    runner = web.AppRunner(build_app(bots, api, background=background), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = stop_on_signals()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api", required=True, help="Bot API base URL (the fake Telegram)")
    parser.add_argument("--bots", type=Path, required=True)
    parser.add_argument("--background", action="store_true", help="handle_in_background=True")
    args = parser.parse_args(argv)
    if not args.api.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        parser.error("the baseline talks to a loopback fake only")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.api, args.bots, background=args.background))


if __name__ == "__main__":
    main()
