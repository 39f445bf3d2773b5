"""State of the fake Telegram Bot API server.

Everything the fake remembers is a dataclass; Telegram's JSON shapes exist only at the edges (`to_api`),
so the handlers cannot drift into passing half-built dicts around, and tests can assert on attributes.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

JSONObject: TypeAlias = dict[str, Any]
MediaKind: TypeAlias = Literal["photo", "video", "audio", "document"]

MEDIA_KINDS: tuple[MediaKind, ...] = ("photo", "video", "audio", "document")

# Telegram delivers these only to bots that ask for them explicitly.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def now() -> int:
    """Telegram dates are integer Unix seconds; aiogram's pydantic models reject nothing else."""
    return int(time.time())


class ApiError(Exception):
    """A Telegram error reply.

    Handlers raise it so every failure path produces the exact wire shape that aiogram maps onto its
    exception classes (TelegramBadRequest, TelegramRetryAfter, ...).
    """

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def to_api(self) -> JSONObject:
        body: JSONObject = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


class ControlError(Exception):
    """The test or sandbox drove the fake wrongly (no such message, button, bot...).

    Kept apart from ApiError: that one is Telegram talking to the bot, this one is the fake talking to
    the person writing the test.
    """


class PaymentDeclinedError(ControlError):
    """The bot answered the pre-checkout query with ok=False; the user is never charged."""


@dataclass(frozen=True)
class UserInfo:
    id: int
    first_name: str
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False

    def to_api(self) -> JSONObject:
        user: JSONObject = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username is not None:
            user["username"] = self.username
        if self.language_code is not None:
            user["language_code"] = self.language_code
        return user

    def chat_to_api(self) -> JSONObject:
        """The private chat with this user, which Telegram describes with the user's own names."""
        chat: JSONObject = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.username is not None:
            chat["username"] = self.username
        return chat


@dataclass
class StoredFile:
    """A file Telegram "has": uploaded, fetched from a URL, or sent by a user.

    `data` is None when URL fetching is disabled: the file exists (it has an id and a path) but cannot be
    downloaded, which is all a benchmark needs.
    """

    file_id: str
    file_unique_id: str
    kind: MediaKind
    file_path: str
    data: bytes | None
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    duration: int = 0
    thumb: StoredFile | None = None

    def to_api(self) -> JSONObject:
        obj: JSONObject = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.data is not None:
            obj["file_size"] = len(self.data)
        if self.kind in ("photo", "video"):
            obj["width"] = self.width
            obj["height"] = self.height
        if self.kind in ("video", "audio"):
            obj["duration"] = self.duration
        if self.kind != "photo":
            if self.file_name is not None:
                obj["file_name"] = self.file_name
            if self.mime_type is not None:
                obj["mime_type"] = self.mime_type
        return obj

    def file_to_api(self) -> JSONObject:
        """The getFile answer: where the bot can download the bytes from."""
        obj: JSONObject = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_path": self.file_path,
        }
        if self.data is not None:
            obj["file_size"] = len(self.data)
        return obj


@dataclass(frozen=True)
class Media:
    """The media part of a message, plus what the bot passed (URL, file_id or upload) for transcripts."""

    kind: MediaKind
    file: StoredFile
    source: str

    def to_api(self) -> Any:
        if self.kind == "photo":
            sizes = [self.file.thumb.to_api()] if self.file.thumb is not None else []
            return [*sizes, self.file.to_api()]
        return self.file.to_api()


@dataclass(frozen=True)
class InvoiceInfo:
    title: str
    description: str
    payload: str
    currency: str
    total_amount: int
    start_parameter: str

    def to_api(self) -> JSONObject:
        # The payload is private to the bot: Telegram never shows it in the invoice message.
        return {
            "title": self.title,
            "description": self.description,
            "start_parameter": self.start_parameter,
            "currency": self.currency,
            "total_amount": self.total_amount,
        }


@dataclass
class Payment:
    """A successful Stars payment; `refunded` guards refundStarPayment against double refunds."""

    user_id: int
    currency: str
    total_amount: int
    invoice_payload: str
    telegram_payment_charge_id: str
    provider_payment_charge_id: str
    refunded: bool = False

    def to_api(self) -> JSONObject:
        return {
            "currency": self.currency,
            "total_amount": self.total_amount,
            "invoice_payload": self.invoice_payload,
            "telegram_payment_charge_id": self.telegram_payment_charge_id,
            "provider_payment_charge_id": self.provider_payment_charge_id,
        }


@dataclass
class StoredMessage:
    message_id: int
    chat_user: UserInfo
    sender: UserInfo
    date: int
    text: str | None = None
    entities: list[JSONObject] | None = None
    caption: str | None = None
    caption_entities: list[JSONObject] | None = None
    media: Media | None = None
    media_group_id: str | None = None
    reply_markup: JSONObject | None = None
    reply_to: StoredMessage | None = None
    invoice: InvoiceInfo | None = None
    successful_payment: Payment | None = None
    refunded_payment: Payment | None = None
    edit_date: int | None = None
    deleted: bool = False

    @property
    def from_bot(self) -> bool:
        return self.sender.is_bot

    @property
    def inline_keyboard(self) -> list[list[JSONObject]]:
        """Only inline keyboards belong to a message; reply keyboards belong to the chat's input field."""
        if self.reply_markup is None:
            return []
        rows = self.reply_markup.get("inline_keyboard")
        return rows if isinstance(rows, list) else []

    def to_api(self, *, with_reply: bool = True) -> JSONObject:
        msg: JSONObject = {
            "message_id": self.message_id,
            "date": self.date,
            "chat": self.chat_user.chat_to_api(),
            "from": self.sender.to_api(),
        }
        if self.text is not None:
            msg["text"] = self.text
            if self.entities:
                msg["entities"] = self.entities
        if self.media is not None:
            msg[self.media.kind] = self.media.to_api()
        if self.caption is not None:
            msg["caption"] = self.caption
            if self.caption_entities:
                msg["caption_entities"] = self.caption_entities
        if self.media_group_id is not None:
            msg["media_group_id"] = self.media_group_id
        if self.inline_keyboard:
            msg["reply_markup"] = {"inline_keyboard": self.inline_keyboard}
        if with_reply and self.reply_to is not None:
            msg["reply_to_message"] = self.reply_to.to_api(with_reply=False)
        if self.invoice is not None:
            msg["invoice"] = self.invoice.to_api()
        if self.successful_payment is not None:
            msg["successful_payment"] = self.successful_payment.to_api()
        if self.refunded_payment is not None:
            refund = self.refunded_payment.to_api()
            del refund["provider_payment_charge_id"]
            msg["refunded_payment"] = refund
        if self.edit_date is not None:
            msg["edit_date"] = self.edit_date
        return msg


@dataclass(frozen=True)
class TranscriptEntry:
    """One message of a chat as a person would see it now: after edits, with deletions marked."""

    message_id: int
    from_bot: bool
    date: int
    text: str | None
    caption: str | None
    media_kind: MediaKind | None
    media_source: str | None
    file_id: str | None
    reply_markup: JSONObject | None
    edited: bool
    deleted: bool
    invoice: JSONObject | None
    successful_payment: JSONObject | None
    media_group_id: str | None

    @classmethod
    def of(cls, msg: StoredMessage) -> TranscriptEntry:
        return cls(
            message_id=msg.message_id,
            from_bot=msg.from_bot,
            date=msg.date,
            text=msg.text,
            caption=msg.caption,
            media_kind=msg.media.kind if msg.media else None,
            media_source=msg.media.source if msg.media else None,
            file_id=msg.media.file.file_id if msg.media else None,
            reply_markup=msg.reply_markup,
            edited=msg.edit_date is not None,
            deleted=msg.deleted,
            invoice=msg.invoice.to_api() | {"payload": msg.invoice.payload} if msg.invoice else None,
            successful_payment=msg.successful_payment.to_api() if msg.successful_payment else None,
            media_group_id=msg.media_group_id,
        )


@dataclass
class ChatState:
    """A private chat; its id is the user's id, and user and bot messages share one id sequence."""

    user: UserInfo
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    next_message_id: int = 1
    # Created only while someone waits, so chats nobody watches cost nothing per message.
    changed: asyncio.Event | None = None
    blocked: bool = False
    """The user blocked the bot: Telegram answers 403 to every send into this chat."""

    def notify(self) -> None:
        if self.changed is not None:
            self.changed.set()
            self.changed = None

    def change_event(self) -> asyncio.Event:
        if self.changed is None:
            self.changed = asyncio.Event()
        return self.changed


@dataclass(frozen=True)
class Update:
    update_id: int
    kind: str
    payload: JSONObject
    chat_key: int
    """Updates sharing a key are delivered strictly in order (Telegram orders per chat)."""

    def to_api(self) -> JSONObject:
        return {"update_id": self.update_id, self.kind: self.payload}

    @property
    def message_id(self) -> int | None:
        message = self.payload.get("message", self.payload) if self.kind == "callback_query" else self.payload
        value = message.get("message_id") if isinstance(message, dict) else None
        return value if isinstance(value, int) else None


@dataclass
class ApiCall:
    method: str
    params: JSONObject
    at: float
    status: int = 0
    """HTTP status of the reply; 0 while the call is still running (a long poll)."""


@dataclass
class ApiObservation:
    """One Bot API request as the server saw it, for observers (see FakeTelegram.observe)."""

    token: str
    method: str
    peer_port: int
    """The client's source port: which connection (and so which process, behind a proxy) sent it."""
    started: float
    ended: float | None = None
    status: int = 0
    """HTTP status of the reply; 0 while running, or when the client went away first."""


@dataclass
class CallbackRecord:
    query_id: str
    user_id: int
    message_id: int
    data: str
    answered: bool = False
    text: str | None = None
    show_alert: bool = False
    url: str | None = None


@dataclass(frozen=True)
class PreCheckoutAnswer:
    ok: bool
    error_message: str | None


@dataclass
class PreCheckoutRecord:
    query_id: str
    answer: asyncio.Future[PreCheckoutAnswer]


@dataclass
class RateLimitFault:
    retry_after: int
    method: str | None
    """Lower-cased method name, or None for every method."""
    remaining: int | None
    """Calls left to reject, or None to reject until cleared."""


@dataclass
class Faults:
    revoked: bool = False
    latency: float = 0.0
    server_errors: int = 0
    server_error_status: int = 500
    bad_requests: int = 0  # answered as Telegram answers a media URL it could not fetch
    rate_limits: list[RateLimitFault] = field(default_factory=list)


@dataclass
class WebhookConfig:
    url: str
    secret_token: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(frozen=True)
class WebhookInfo:
    url: str
    has_custom_certificate: bool
    pending_update_count: int
    max_connections: int | None
    last_error_date: int | None
    last_error_message: str | None
    allowed_updates: list[str] | None

    def to_api(self) -> JSONObject:
        info: JSONObject = {
            "url": self.url,
            "has_custom_certificate": self.has_custom_certificate,
            "pending_update_count": self.pending_update_count,
        }
        if self.url:
            info["max_connections"] = self.max_connections
            info["ip_address"] = "127.0.0.1"
        if self.last_error_date is not None:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error_message
        if self.allowed_updates is not None:
            info["allowed_updates"] = self.allowed_updates
        return info


@dataclass
class Poller:
    """A getUpdates request that is waiting; a newer one for the same bot terminates it with 409."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    terminated: bool = False


@dataclass
class BotState:
    token: str
    user: UserInfo
    chats: dict[int, ChatState] = field(default_factory=dict)
    pending: OrderedDict[int, Update] = field(default_factory=OrderedDict)
    """Updates not yet confirmed (polling offset) or acknowledged (webhook 2xx), oldest first."""
    redeliveries: deque[Update] = field(default_factory=deque)
    """Copies of old updates pushed again by the control API; they bypass the polling offset."""
    history: OrderedDict[int, Update] = field(default_factory=OrderedDict)
    next_update_id: int = 1
    allowed_updates: list[str] | None = None
    commands: dict[tuple[str, str], list[JSONObject]] = field(default_factory=dict)
    # ("description" | "short_description", language_code or "") -> text; absent when empty.
    descriptions: dict[tuple[str, str], str] = field(default_factory=dict)
    calls: deque[ApiCall] = field(default_factory=deque)
    faults: Faults = field(default_factory=Faults)
    webhook: WebhookConfig | None = None
    poller: Poller | None = None
    callbacks: OrderedDict[str, CallbackRecord] = field(default_factory=OrderedDict)
    pre_checkouts: dict[str, PreCheckoutRecord] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    files_by_path: dict[str, StoredFile] = field(default_factory=dict)

    @property
    def bot_id(self) -> int:
        return self.user.id

    def wants(self, kind: str) -> bool:
        if not self.allowed_updates:
            return kind not in OPT_IN_UPDATES
        return kind in self.allowed_updates
