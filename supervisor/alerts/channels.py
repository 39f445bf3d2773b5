"""Where alerts go: the operators' chats through the platform bot, and a JSON webhook.

Each operator chat is a channel of its own (`telegram:<chat id>`), so one blocked chat never makes
the others get an alert twice. Every call has a timeout; a failure is a `ChannelError` whose message
names the channel and the kind of failure, never the bot token or the webhook URL (both secrets).
"""

from __future__ import annotations

from typing import Protocol

import aiohttp

from shared.redact import REDACTOR
from shared.settings import Settings
from supervisor.alerts.message import AlertMessage

__all__ = ["Channel", "ChannelError", "TelegramChat", "Webhook", "channels_from"]

SEND_TIMEOUT_SECONDS = 10.0


class ChannelError(Exception):
    """A channel did not take a message; the text is safe to log."""


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    async def send(self, message: AlertMessage) -> None: ...


class TelegramChat:
    """One operator chat, written to by the platform bot (aiogram; a short-lived session per message:
    alerts are rare, and nothing is left to close at shutdown)."""

    def __init__(self, token: str, chat_id: int, api_base: str) -> None:
        self._token = token
        self._chat_id = chat_id
        self._api_base = api_base
        REDACTOR.register(token)

    @property
    def name(self) -> str:
        return f"telegram:{self._chat_id}"

    async def send(self, message: AlertMessage) -> None:
        from aiogram import Bot
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer
        from aiogram.exceptions import TelegramAPIError

        session = AiohttpSession(api=TelegramAPIServer.from_base(self._api_base), timeout=SEND_TIMEOUT_SECONDS)
        try:
            bot = Bot(self._token, session=session)
            await bot.send_message(self._chat_id, message.text, request_timeout=int(SEND_TIMEOUT_SECONDS))
        except (TelegramAPIError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ChannelError(f"{self.name}: {REDACTOR.redact(f'{type(exc).__name__}: {exc}')[:200]}") from None
        finally:
            await session.close()


class Webhook:
    """A JSON POST (a chat-ops tool, an incident manager); any 2xx is delivered."""

    name = "webhook"

    def __init__(self, url: str) -> None:
        self._url = url
        REDACTOR.register(url)

    async def send(self, message: AlertMessage) -> None:
        timeout = aiohttp.ClientTimeout(total=SEND_TIMEOUT_SECONDS)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                # No redirects: the payload goes where the operator said, nowhere else.
                session.post(self._url, json=message.payload, allow_redirects=False) as response,
            ):
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # The exception text of a connection error quotes the URL: only its type is kept.
            raise ChannelError(f"webhook: {type(exc).__name__}") from None
        if not 200 <= status < 300:
            raise ChannelError(f"webhook: answered HTTP {status}")


def channels_from(settings: Settings) -> list[Channel]:
    channels: list[Channel] = []
    if settings.platform_bot_token is not None:
        token = settings.platform_bot_token.get_secret_value()
        channels += [TelegramChat(token, chat, settings.telegram_api_base) for chat in settings.operator_chats]
    if settings.alert_webhook_url is not None:
        channels.append(Webhook(settings.alert_webhook_url.get_secret_value()))
    return channels
