"""The fake's memory and its update queue, shared by the Bot API handlers and the control API.

Every operation here is O(1) in the number of bots, chats and updates (apart from explicit test helpers
such as transcripts), because benchmarks drive a thousand tokens at hundreds of updates per second.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
from collections import deque
from dataclasses import dataclass

import aiohttp

from sandbox.telegram.model import (
    ApiError,
    BotState,
    ChatState,
    ControlError,
    JSONObject,
    MediaKind,
    StoredFile,
    StoredMessage,
    Update,
    UserInfo,
    WebhookConfig,
    WebhookInfo,
    bad_request,
)
from sandbox.telegram.webhook import ReplyExecutor, WebhookDeliverer

MAX_DOWNLOAD = 20 * 1024 * 1024  # Telegram's limit for files fetched by URL
_EXTENSIONS: dict[MediaKind, str] = {"photo": "jpg", "video": "mp4", "audio": "mp3", "document": "bin"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class FakeConfig:
    fetch_media_urls: bool = True
    """GET media URLs the bot sends, failing the send like Telegram when they do not resolve."""
    fetch_timeout: float = 5.0
    webhook_retry_initial: float = 0.2
    webhook_retry_max: float = 5.0
    webhook_timeout: float = 10.0
    history_limit: int | None = None
    """Per-bot cap on remembered API calls, redeliverable updates and callback queries, and per-chat cap
    on remembered messages, for long benchmark runs; None keeps everything."""


def image_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    return None


class TelegramState:
    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.bots: dict[str, BotState] = {}
        self.deliverers: dict[str, WebhookDeliverer] = {}
        self.closing = False
        self._session: aiohttp.ClientSession | None = None
        self._file_counter = 0

    @property
    def session(self) -> aiohttp.ClientSession:
        """One pooled client for webhook delivery and media fetching, created inside the running loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
        return self._session

    async def close(self) -> None:
        self.closing = True
        for bot in self.bots.values():
            self.wake_poller(bot)
        deliverers = list(self.deliverers.values())
        self.deliverers.clear()
        await asyncio.gather(*(deliverer.close() for deliverer in deliverers))
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- bots -----------------------------------------------------------------------------------------

    def register(self, token: str, username: str | None, first_name: str | None) -> BotState:
        bot_id, sep, secret = token.partition(":")
        if not sep or not bot_id.isdigit() or not secret:
            raise ControlError(f"not a bot token (want '<digits>:<secret>'): {token!r}")
        existing = self.bots.get(token)
        name = username or f"fake{bot_id}_bot"
        user = UserInfo(id=int(bot_id), first_name=first_name or name, username=name, is_bot=True)
        if existing is not None:
            existing.user = user
            return existing
        bot = BotState(token=token, user=user, calls=deque(maxlen=self.config.history_limit))
        self.bots[token] = bot
        return bot

    def rekey(self, old: str, new: str) -> BotState:
        """The bot behind `old` answers to `new` instead (a revoked and reissued token of the same bot)."""
        bot = self.control_bot(old)
        new_id, sep, secret = new.partition(":")
        if not sep or not secret or new_id != str(bot.bot_id):
            raise ControlError(f"a new token of bot {bot.bot_id} must start with '{bot.bot_id}:'")
        if new in self.bots:
            raise ControlError("that token is already registered")
        del self.bots[old]
        bot.token = new
        self.bots[new] = bot
        deliverer = self.deliverers.pop(old, None)
        if deliverer is not None:
            self.deliverers[new] = deliverer
        if bot.poller is not None:
            bot.poller.terminated = True
            self.wake_poller(bot)
        return bot

    def control_bot(self, token: str) -> BotState:
        bot = self.bots.get(token)
        if bot is None:
            raise ControlError("unknown bot token; register_bot() it first")
        return bot

    # --- chats and messages ---------------------------------------------------------------------------

    def user_chat(self, bot: BotState, user: UserInfo) -> ChatState:
        """The chat a user writes in, created on first contact (the user "pressed Start")."""
        chat = bot.chats.get(user.id)
        if chat is None:
            chat = bot.chats[user.id] = ChatState(user=user)
        else:
            chat.user = user
        return chat

    @staticmethod
    def chat(bot: BotState, chat_id: int) -> ChatState:
        chat = bot.chats.get(chat_id)
        if chat is None:
            # A bot cannot start a conversation: Telegram knows no chat until the user writes first.
            raise bad_request("chat not found")
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    @staticmethod
    def next_message_id(chat: ChatState) -> int:
        message_id = chat.next_message_id
        chat.next_message_id += 1
        return message_id

    def store_message(self, chat: ChatState, message: StoredMessage) -> StoredMessage:
        chat.messages[message.message_id] = message
        limit = self.config.history_limit
        if limit is not None:
            # Message ids are sequential per chat, so the one falling out of the window is known.
            chat.messages.pop(message.message_id - limit, None)
        chat.notify()
        return message

    @staticmethod
    def live_message(chat: ChatState, message_id: int) -> StoredMessage | None:
        message = chat.messages.get(message_id)
        return None if message is None or message.deleted else message

    # --- updates --------------------------------------------------------------------------------------

    def emit(self, bot: BotState, kind: str, payload: JSONObject, chat_key: int) -> Update:
        update = Update(update_id=bot.next_update_id, kind=kind, payload=payload, chat_key=chat_key)
        bot.next_update_id += 1
        if not bot.wants(kind):
            return update  # Telegram does not even create updates the bot opted out of
        bot.history[update.update_id] = update
        if self.config.history_limit is not None and len(bot.history) > self.config.history_limit:
            bot.history.popitem(last=False)
        bot.pending[update.update_id] = update
        deliverer = self.deliverers.get(bot.token)
        if deliverer is not None:
            deliverer.enqueue(update)
        else:
            self.wake_poller(bot)
        return update

    def redeliver(self, bot: BotState, update_id: int) -> Update:
        update = bot.history.get(update_id)
        if update is None:
            raise ControlError(f"update {update_id} is unknown (or fell out of history_limit)")
        deliverer = self.deliverers.get(bot.token)
        if deliverer is not None:
            deliverer.enqueue(update)
        else:
            bot.redeliveries.append(update)
            self.wake_poller(bot)
        return update

    @staticmethod
    def wake_poller(bot: BotState) -> None:
        if bot.poller is not None:
            bot.poller.wake.set()

    def pending_count(self, bot: BotState) -> int:
        deliverer = self.deliverers.get(bot.token)
        if deliverer is not None:
            return deliverer.queued
        return len(bot.pending) + len(bot.redeliveries)

    def webhook_info(self, bot: BotState) -> WebhookInfo:
        hook = bot.webhook
        return WebhookInfo(
            url=hook.url if hook else "",
            has_custom_certificate=False,
            pending_update_count=self.pending_count(bot),
            max_connections=hook.max_connections if hook else None,
            last_error_date=hook.last_error_date if hook else None,
            last_error_message=hook.last_error_message if hook else None,
            allowed_updates=bot.allowed_updates,
        )

    async def set_webhook(
        self, bot: BotState, hook: WebhookConfig, executor: ReplyExecutor, *, drop_pending: bool
    ) -> None:
        leftover = await self._stop_delivery(bot)
        if drop_pending:
            leftover = []
            self.drop_pending(bot)
        bot.webhook = hook
        deliverer = WebhookDeliverer(
            bot,
            hook,
            self.session,
            retry_initial=self.config.webhook_retry_initial,
            retry_max=self.config.webhook_retry_max,
            timeout=self.config.webhook_timeout,
            execute_reply=executor,
        )
        self.deliverers[bot.token] = deliverer
        for update in [*bot.redeliveries, *leftover, *bot.pending.values()]:
            deliverer.enqueue(update)
        bot.redeliveries.clear()
        self.wake_poller(bot)  # a waiting getUpdates now answers 409

    async def delete_webhook(self, bot: BotState, *, drop_pending: bool) -> None:
        bot.redeliveries.extend(await self._stop_delivery(bot))
        bot.webhook = None
        if drop_pending:
            self.drop_pending(bot)

    async def _stop_delivery(self, bot: BotState) -> list[Update]:
        """Returns redelivered copies still queued; the originals stay in `pending` until acknowledged."""
        deliverer = self.deliverers.pop(bot.token, None)
        if deliverer is None:
            return []
        queued = await deliverer.close()
        return [update for update in queued if update.update_id not in bot.pending]

    @staticmethod
    def drop_pending(bot: BotState) -> None:
        bot.pending.clear()
        bot.redeliveries.clear()

    # --- files ----------------------------------------------------------------------------------------

    def store_file(
        self,
        bot: BotState,
        kind: MediaKind,
        data: bytes | None,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> StoredFile:
        width, height = (image_size(data) if data else None) or (1280, 720)
        stored = self._new_file(bot, kind, data, width, height)
        stored.file_name = file_name
        stored.mime_type = mime_type
        if kind == "video":
            stored.duration = 10
        if kind == "audio":
            stored.duration = 180
        if kind == "photo":
            # Telegram keeps several sizes of every photo; one thumbnail is enough to look real.
            scale = max(max(width, height) / 90, 1.0)
            stored.thumb = self._new_file(bot, kind, data, round(width / scale), round(height / scale))
        return stored

    def _new_file(self, bot: BotState, kind: MediaKind, data: bytes | None, width: int, height: int) -> StoredFile:
        self._file_counter += 1
        file_id = f"Fake{kind.capitalize()}{bot.bot_id}x{self._file_counter}{secrets.token_urlsafe(9)}"
        path = f"{kind}s/file_{self._file_counter}.{_EXTENSIONS[kind]}"
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=f"U{self._file_counter}",
            kind=kind,
            file_path=path,
            data=data,
            width=width,
            height=height,
        )
        bot.files[file_id] = stored
        bot.files_by_path[path] = stored
        return stored

    async def fetch(self, url: str) -> bytes:
        """Download a media URL the way Telegram's servers would, failing the send if it does not work."""
        failure = bad_request("wrong file identifier/HTTP URL specified")
        timeout = aiohttp.ClientTimeout(total=self.config.fetch_timeout)
        try:
            async with self.session.get(url, timeout=timeout) as response:
                if response.status != 200 or (response.content_length or 0) > MAX_DOWNLOAD:
                    raise failure
                data = bytearray()
                async for chunk in response.content.iter_chunked(1 << 16):
                    data += chunk
                    if len(data) > MAX_DOWNLOAD:
                        raise failure
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise failure from exc
        if not data:
            raise failure
        return bytes(data)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")
