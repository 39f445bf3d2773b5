"""A fake Telegram Bot API server that an unmodified aiogram `Bot` can talk to.

It speaks Telegram's real HTTP protocol (`/bot<token>/<method>`, JSON/form/multipart bodies, Telegram's
error shapes, long polling, webhooks with per-chat ordering and retries) so tests exercise the same code
paths as production, not a mocked client. The user side is driven through a control API: the async
methods of `FakeTelegram` in-process, or `/_control/...` JSON routes from another process.

Manual run: `python -m sandbox.telegram.server --port 8081 --bot 123:abc=my_bot`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import secrets
import struct
import time
import zlib
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from types import TracebackType

from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from sandbox.signals import stop_on_signals
from sandbox.telegram.control import control_routes
from sandbox.telegram.methods import BotApi
from sandbox.telegram.model import (
    ApiCall,
    ApiError,
    ApiObservation,
    BotState,
    CallbackRecord,
    ChatState,
    ControlError,
    Faults,
    Media,
    PaymentDeclinedError,
    RateLimitFault,
    StoredMessage,
    TranscriptEntry,
    Update,
    UserInfo,
    WebhookInfo,
    bad_request,
    now,
)
from sandbox.telegram.params import Params
from sandbox.telegram.payments import pay
from sandbox.telegram.state import FakeConfig, TelegramState, unauthorized
from sandbox.telegram.text import command_entities

__all__ = [
    "ApiCall",
    "ApiObservation",
    "CallbackRecord",
    "ControlError",
    "FakeTelegram",
    "PaymentDeclinedError",
    "TranscriptEntry",
    "Update",
    "WebhookInfo",
]

MAX_UPLOAD = 50 * 1024 * 1024  # Telegram's upload limit for bots
_dumps = partial(json.dumps, ensure_ascii=False)
_SERVER_ERRORS = frozenset(status.value for status in HTTPStatus if 500 <= status.value <= 599)


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real, decodable PNG, so bots that inspect or re-upload user photos get valid image bytes."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


USER_PHOTO = _png(64, 48, (40, 140, 220))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FakeTelegram:
    """One fake Telegram for any number of bot tokens.

    State lives as long as the object, across stop()/start(), so a test can restart the server under a
    running bot the way a network blip would. Control methods that act are async, queries are plain.
    """

    def __init__(
        self,
        *,
        fetch_media_urls: bool = True,
        fetch_timeout: float = 5.0,
        webhook_retry_initial: float = 0.2,
        webhook_retry_max: float = 5.0,
        webhook_timeout: float = 10.0,
        history_limit: int | None = None,
    ) -> None:
        self._state = TelegramState(
            FakeConfig(
                fetch_media_urls=fetch_media_urls,
                fetch_timeout=fetch_timeout,
                webhook_retry_initial=webhook_retry_initial,
                webhook_retry_max=webhook_retry_max,
                webhook_timeout=webhook_timeout,
                history_limit=history_limit,
            )
        )
        self._api = BotApi(self._state)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._observers: list[Callable[[ApiObservation], None]] = []

    # --- lifecycle --------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on loopback only (the control API has no auth) and return the base URL."""
        if not _is_loopback(host):
            raise ValueError(f"the fake binds to loopback only, not {host!r}")
        app = web.Application(client_max_size=MAX_UPLOAD)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.add_routes(control_routes(self))
        # handler_cancellation: a long poll whose client went away must stop waiting, not linger.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._state.closing = False
        for bot in self._state.bots.values():
            if bot.webhook is not None and bot.token not in self._state.deliverers:
                # Restarted: webhooks set before stop() resume delivering what is still pending.
                await self._state.set_webhook(bot, bot.webhook, self._api.execute_webhook_reply, drop_pending=False)
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._base_url = f"http://{f'[{host}]' if ':' in host else host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        await self._state.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._base_url

    @property
    def api_server(self) -> TelegramAPIServer:
        """For `Bot(token, session=AiohttpSession(api=fake.api_server))`."""
        return TelegramAPIServer.from_base(self.base_url)

    # --- HTTP -------------------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        if not self._observers:
            return await self._answer_api(request)
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        observation = ApiObservation(
            token=request.match_info["token"],
            method=request.match_info["method"],
            peer_port=int(peer[1]) if isinstance(peer, tuple) and len(peer) >= 2 else 0,
            started=time.time(),
        )
        self._notify(observation)
        try:
            response = await self._answer_api(request)
            observation.status = response.status
            return response
        finally:
            observation.ended = time.time()
            self._notify(observation)

    def _notify(self, observation: ApiObservation) -> None:
        for observer in list(self._observers):
            observer(observation)

    async def _answer_api(self, request: web.Request) -> web.Response:
        try:
            params = await Params.from_request(request)
        except ApiError as exc:
            return web.json_response(exc.to_api(), status=exc.code, dumps=_dumps)
        except ValueError as exc:
            error = bad_request(f"can't parse request: {exc}")
            return web.json_response(error.to_api(), status=400, dumps=_dumps)
        reply = await self._api.call(request.match_info["token"], request.match_info["method"], params)
        return web.json_response(reply.body, status=reply.status, dumps=_dumps)

    async def _handle_file(self, request: web.Request) -> web.Response:
        bot = self._state.bots.get(request.match_info["token"])
        if bot is None or bot.faults.revoked:
            return web.json_response(unauthorized().to_api(), status=401)
        stored = bot.files_by_path.get(request.match_info["path"])
        if stored is None or stored.data is None:
            return web.json_response(ApiError(404, "Not Found").to_api(), status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    # --- control: bots ----------------------------------------------------------------------------------

    async def register_bot(self, token: str, *, username: str | None = None, first_name: str | None = None) -> UserInfo:
        """Make a token valid. Registering again renames the bot and keeps its state."""
        return self._state.register(token, username, first_name).user

    async def inject_faults(
        self,
        token: str,
        *,
        revoke: bool | None = None,
        rate_limit_calls: int | None = None,
        rate_limit_method: str | None = None,
        retry_after: int = 5,
        server_error_calls: int | None = None,
        server_error_status: int = 500,
        bad_request_calls: int | None = None,
        latency: float | None = None,
    ) -> None:
        """Make the next calls fail the way Telegram fails.

        `rate_limit_calls=N` answers the next N calls (of `rate_limit_method` if given) with 429;
        `rate_limit_method` alone rate-limits that method until cleared. `revoke` answers 401 to
        everything, `server_error_calls=N` answers N calls with `server_error_status`,
        `bad_request_calls=N` answers N calls with the 400 Telegram gives a media URL it cannot fetch, and `latency`
        delays every call by that many seconds.
        """
        faults = self._state.control_bot(token).faults
        if revoke is not None:
            faults.revoked = revoke
        if rate_limit_calls is not None and rate_limit_calls < 0:
            raise ControlError("rate_limit_calls must be >= 0")
        if rate_limit_calls or (rate_limit_method is not None and rate_limit_calls is None):
            method = rate_limit_method.lower() if rate_limit_method else None
            faults.rate_limits.append(RateLimitFault(retry_after, method, rate_limit_calls))
        if server_error_calls is not None:
            if server_error_status not in _SERVER_ERRORS:
                raise ControlError(f"not a 5xx status: {server_error_status}")
            faults.server_errors = server_error_calls
            faults.server_error_status = server_error_status
        if bad_request_calls is not None:
            faults.bad_requests = bad_request_calls
        if latency is not None:
            faults.latency = latency

    async def clear_faults(self, token: str) -> None:
        self._state.control_bot(token).faults = Faults()

    async def rotate_token(self, old: str, new: str) -> UserInfo:
        """BotFather's /revoke: the same bot (id, chats, webhook, pending updates) answers to `new` from now
        on, and `old` gets 401 like any unknown token. A long poll waiting on `old` ends at once (409)."""
        return self._state.rekey(old, new).user

    def observe(self, observer: Callable[[ApiObservation], None]) -> None:
        """Call `observer` for every Bot API request: once when it arrives (`ended` is None) and once when
        it is answered or its client went away. Lets a test see who calls what, from which connection,
        and which calls overlap (two pollers of one bot, say)."""
        self._observers.append(observer)

    # --- control: the user acts -------------------------------------------------------------------------

    async def open_chat(
        self, token: str, user_id: int, *, language_code: str | None = "ru", username: str | None = None
    ) -> None:
        """The user started the bot long ago: the chat exists (the bot may write to it), no update is sent."""
        bot = self._state.control_bot(token)
        self._user_chat(bot, user_id, language_code, None, username)

    async def block_bot(self, token: str, user_id: int, *, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot: every send into their chat gets 403 meanwhile."""
        chat = self._state.control_bot(token).chats.get(user_id)
        if chat is None:
            raise ControlError(f"chat {user_id} does not exist: the user has not written to the bot")
        chat.blocked = blocked

    def _user_chat(
        self, bot: BotState, user_id: int, language_code: str | None, first_name: str | None, username: str | None
    ) -> tuple[UserInfo, ChatState]:
        known = bot.chats.get(user_id)
        user = UserInfo(
            id=user_id,
            first_name=first_name or (known.user.first_name if known else f"User{user_id}"),
            username=username or (known.user.username if known else None),
            language_code=language_code,
        )
        return user, self._state.user_chat(bot, user)

    async def send_text(
        self,
        token: str,
        user_id: int,
        text: str,
        *,
        language_code: str | None = "ru",
        first_name: str | None = None,
        username: str | None = None,
    ) -> Update:
        """The user writes `text`; "/command args" carries a bot_command entity like Telegram's."""
        if not text.strip():
            raise ControlError("Telegram clients cannot send an empty message")
        bot = self._state.control_bot(token)
        user, chat = self._user_chat(bot, user_id, language_code, first_name, username)
        message = StoredMessage(
            message_id=self._state.next_message_id(chat),
            chat_user=user,
            sender=user,
            date=now(),
            text=text,
            entities=command_entities(text),
        )
        self._state.store_message(chat, message)
        return self._state.emit(bot, "message", message.to_api(), chat_key=user_id)

    async def send_photo(
        self,
        token: str,
        user_id: int,
        *,
        caption: str | None = None,
        data: bytes = USER_PHOTO,
        language_code: str | None = "ru",
        first_name: str | None = None,
        username: str | None = None,
    ) -> Update:
        """The user sends a photo; the bot can fetch it via getFile and /file/bot<token>/<path>."""
        bot = self._state.control_bot(token)
        user, chat = self._user_chat(bot, user_id, language_code, first_name, username)
        stored = self._state.store_file(bot, "photo", data, mime_type="image/png")
        message = StoredMessage(
            message_id=self._state.next_message_id(chat),
            chat_user=user,
            sender=user,
            date=now(),
            media=Media("photo", stored, "user"),
            caption=caption or None,
        )
        self._state.store_message(chat, message)
        return self._state.emit(bot, "message", message.to_api(), chat_key=user_id)

    async def press_button(
        self, token: str, user_id: int, message_id: int, callback_data: str, *, force: bool = False
    ) -> Update:
        """The user taps an inline button; unless `force`, it must be on the message's current keyboard."""
        bot = self._state.control_bot(token)
        chat = bot.chats.get(user_id)
        message = self._state.live_message(chat, message_id) if chat else None
        if chat is None or message is None:
            raise ControlError(f"no message {message_id} in chat {user_id}")
        if not force and not any(
            button.get("callback_data") == callback_data for row in message.inline_keyboard for button in row
        ):
            raise ControlError(
                f"message {message_id} has no button with callback_data {callback_data!r}; "
                f"keyboard: {message.inline_keyboard}"
            )
        query_id = str(secrets.randbits(63))
        bot.callbacks[query_id] = CallbackRecord(query_id, user_id, message_id, callback_data)
        limit = self._state.config.history_limit
        if limit is not None and len(bot.callbacks) > limit:
            bot.callbacks.popitem(last=False)
        query = {
            "id": query_id,
            "from": chat.user.to_api(),
            "message": message.to_api(),
            "chat_instance": f"{bot.bot_id}{user_id}",
            "data": callback_data,
        }
        return self._state.emit(bot, "callback_query", query, chat_key=user_id)

    async def pay_invoice(self, token: str, user_id: int, invoice_message_id: int, *, timeout: float = 10.0) -> str:
        """Pay a Stars invoice; returns telegram_payment_charge_id.

        Raises PaymentDeclinedError if the bot answers the pre-checkout query with ok=False and
        TimeoutError if it does not answer within `timeout` (Telegram allows 10 s).
        """
        return await pay(self._state, self._state.control_bot(token), user_id, invoice_message_id, timeout)

    async def redeliver(self, token: str, update_id: int) -> Update:
        """Deliver an old update again, same update_id, as Telegram does after a lost webhook reply."""
        bot = self._state.control_bot(token)
        return self._state.redeliver(bot, update_id)

    # --- control: what happened -------------------------------------------------------------------------

    def transcript(self, token: str, chat_id: int) -> list[TranscriptEntry]:
        chat = self._state.control_bot(token).chats.get(chat_id)
        return [TranscriptEntry.of(message) for message in chat.messages.values()] if chat else []

    async def wait_for_bot_message(
        self,
        token: str,
        chat_id: int,
        *,
        predicate: Callable[[TranscriptEntry], bool] | None = None,
        after_message_id: int | None = None,
        timeout: float = 5.0,
    ) -> TranscriptEntry:
        """The first live (not deleted) bot message after `after_message_id` that satisfies `predicate`.

        Edits wake the wait too, so `predicate` can wait for a message to reach a given text.
        """
        bot = self._state.control_bot(token)
        chat = bot.chats.get(chat_id)
        if chat is None:
            raise ControlError(f"chat {chat_id} does not exist: the user has not written to the bot")
        first = (after_message_id or 0) + 1
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for message_id in range(first, chat.next_message_id):
                        message = chat.messages.get(message_id)
                        if message is None or message.deleted or not message.from_bot:
                            continue
                        entry = TranscriptEntry.of(message)
                        if predicate is None or predicate(entry):
                            return entry
                    await chat.change_event().wait()
        except TimeoutError:
            recent = [(e.message_id, e.from_bot, e.text or e.caption) for e in self.transcript(token, chat_id)[-5:]]
            raise TimeoutError(f"no matching bot message in chat {chat_id} within {timeout}s; last: {recent}") from None

    def updates(self, token: str) -> list[Update]:
        """Every update emitted for the bot (within history_limit), oldest first, e.g. to redeliver one."""
        return list(self._state.control_bot(token).history.values())

    def callbacks(self, token: str) -> list[CallbackRecord]:
        """Every callback query so far, to assert that the bot answered each one."""
        return list(self._state.control_bot(token).callbacks.values())

    def calls(self, token: str, method: str | None = None) -> list[ApiCall]:
        wanted = method.lower() if method else None
        return [call for call in self._state.control_bot(token).calls if wanted in (None, call.method.lower())]

    def webhook_info(self, token: str) -> WebhookInfo:
        return self._state.webhook_info(self._state.control_bot(token))

    def file_data(self, token: str, file_id: str) -> bytes | None:
        """What a bot uploaded (a document, a photo), as Telegram keeps it; None for an unknown id."""
        stored = self._state.control_bot(token).files.get(file_id)
        return None if stored is None else stored.data

    def commands(self, token: str, *, chat_id: int | None = None, language: str = "") -> list[str]:
        """The command menu as a user sees it: in one chat's scope, else the default one, per language."""
        scope = {"type": "default"} if chat_id is None else {"type": "chat", "chat_id": chat_id}
        stored = self._state.control_bot(token).commands.get((json.dumps(scope, sort_keys=True), language), [])
        return [str(c["command"]) for c in stored]

    def description(self, token: str, kind: str = "description", language: str = "") -> str:
        """The bot's description or short_description as set for a language ("" = the fallback)."""
        return self._state.control_bot(token).descriptions.get((kind, language), "")


async def _serve(host: str, port: int, bots: list[str], fetch_media_urls: bool) -> None:
    fake = FakeTelegram(fetch_media_urls=fetch_media_urls)
    for spec in bots:
        token, _, username = spec.partition("=")
        await fake.register_bot(token, username=username or None)
    base_url = await fake.start(host, port)
    print(f"fake Telegram Bot API at {base_url} ({len(bots)} bots); control API under {base_url}/_control/", flush=True)
    stop = stop_on_signals()
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API server for tests and the sandbox")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--bot", action="append", default=[], metavar="TOKEN[=USERNAME]")
    parser.add_argument("--no-fetch-media", action="store_true", help="do not GET media URLs bots send")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.bot, not args.no_fetch_media))


if __name__ == "__main__":
    main()
