"""Bot API methods that put messages into chats or change them: send*, edit*, deleteMessage, callbacks.

Validation follows Telegram where bots commonly trip over it (keyboard limits, "message is not
modified", editing without reply_markup dropping the keyboard, unreachable media URLs), because those
are the failures a fake that accepts everything would hide.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from sandbox.telegram.model import (
    MEDIA_KINDS,
    BotState,
    ChatState,
    JSONObject,
    Media,
    MediaKind,
    StoredMessage,
    bad_request,
    now,
)
from sandbox.telegram.params import Params, UploadedFile
from sandbox.telegram.state import TelegramState
from sandbox.telegram.text import format_text

Handler: TypeAlias = Callable[[TelegramState, BotState, Params], Awaitable[Any]]

MAX_TEXT = 4096
MAX_CAPTION = 1024
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
_BUTTON_ACTIONS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_REPLY_KEYBOARDS = frozenset({"keyboard", "remove_keyboard", "force_reply"})
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


# --- shared validation --------------------------------------------------------------------------------


def reply_markup(p: Params, *, inline_only: bool = False) -> JSONObject | None:
    markup = p.opt_json("reply_markup")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        _check_inline_keyboard(markup["inline_keyboard"])
        return markup
    if inline_only or not _REPLY_KEYBOARDS & markup.keys():
        raise bad_request("can't parse inline keyboard markup JSON object")
    return markup


def _check_inline_keyboard(rows: object) -> None:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("can't parse inline keyboard markup JSON object")
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request("can't parse inline keyboard button: Text must be non-empty")
            if not _BUTTON_ACTIONS & button.keys():
                raise bad_request("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not (isinstance(data, str) and 1 <= len(data.encode()) <= 64):
                raise bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and (not isinstance(url, str) or urlsplit(url).scheme not in {"http", "https", "tg"}):
                raise bad_request(f"inline keyboard button URL '{url}' is invalid")


def _keyboard_rows(markup: JSONObject | None) -> list[Any]:
    rows = markup.get("inline_keyboard") if markup else None
    return rows if isinstance(rows, list) else []


def _entities(p: Params, name: str) -> list[JSONObject] | None:
    value = p.opt_json(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise bad_request(f"can't parse {name} JSON object")
    return value


def _text(p: Params) -> tuple[str, list[JSONObject] | None]:
    text, entities = format_text(p.opt_str("text") or "", p.opt_str("parse_mode"), _entities(p, "entities"))
    if not text:
        raise bad_request("message text is empty")
    if len(text) > MAX_TEXT:
        raise bad_request("message is too long")
    return text, entities


def caption(
    raw: str | None, parse_mode: str | None, entities: list[JSONObject] | None
) -> tuple[str | None, list[JSONObject] | None]:
    if raw is None:
        return None, None
    text, parsed = format_text(raw, parse_mode, entities)
    if len(text) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    return (text, parsed) if text else (None, None)


def _reply_target(chat: ChatState, p: Params) -> StoredMessage | None:
    params = p.opt_json("reply_parameters")
    if isinstance(params, dict):
        target, lenient = params.get("message_id"), bool(params.get("allow_sending_without_reply"))
    else:
        target, lenient = p.opt_int("reply_to_message_id"), p.flag("allow_sending_without_reply")
    if not isinstance(target, int):
        return None
    message = TelegramState.live_message(chat, target)
    if message is None and not lenient:
        raise bad_request("message to be replied not found")
    return message


def outgoing(state: TelegramState, bot: BotState, chat: ChatState) -> StoredMessage:
    """A fresh bot message; allocate it only after validation so failed sends do not burn message ids."""
    return StoredMessage(message_id=state.next_message_id(chat), chat_user=chat.user, sender=bot.user, date=now())


# --- sending --------------------------------------------------------------------------------------------


async def send_message(state: TelegramState, bot: BotState, p: Params) -> JSONObject:
    chat = state.chat(bot, p.chat_id())
    text, entities = _text(p)
    markup = reply_markup(p)
    reply_to = _reply_target(chat, p)
    message = outgoing(state, bot, chat)
    message.text, message.entities = text, entities
    message.reply_markup, message.reply_to = markup, reply_to
    return state.store_message(chat, message).to_api()


async def resolve_media(state: TelegramState, bot: BotState, kind: MediaKind, ref: str | UploadedFile) -> Media:
    if isinstance(ref, UploadedFile):
        if not ref.data:
            raise bad_request("file must be non-empty")
        stored = state.store_file(bot, kind, ref.data, file_name=ref.filename, mime_type=ref.content_type)
        return Media(kind, stored, f"upload:{ref.filename}")
    if urlsplit(ref).scheme in {"http", "https"}:
        data = await state.fetch(ref) if state.config.fetch_media_urls else None
        file_name = urlsplit(ref).path.rpartition("/")[2] or None
        return Media(kind, state.store_file(bot, kind, data, file_name=file_name), ref)
    known = bot.files.get(ref)
    if known is None or known.kind != kind:
        raise bad_request("wrong file identifier/HTTP URL specified")
    return Media(kind, known, ref)


def _media_sender(kind: MediaKind) -> Handler:
    async def send(state: TelegramState, bot: BotState, p: Params) -> JSONObject:
        chat = state.chat(bot, p.chat_id())
        ref = p.input_file(kind)
        if ref is None:
            raise bad_request(f"there is no {kind} in the request")
        text, entities = caption(p.opt_str("caption"), p.opt_str("parse_mode"), _entities(p, "caption_entities"))
        markup = reply_markup(p)
        reply_to = _reply_target(chat, p)
        media = await resolve_media(state, bot, kind, ref)
        message = outgoing(state, bot, chat)
        message.media, message.caption, message.caption_entities = media, text, entities
        message.reply_markup, message.reply_to = markup, reply_to
        return state.store_message(chat, message).to_api()

    return send


async def send_media_group(state: TelegramState, bot: BotState, p: Params) -> list[JSONObject]:
    chat = state.chat(bot, p.chat_id())
    items = p.opt_json("media")
    if not items:
        raise bad_request("media to send are not specified")
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and item.get("type") in MEDIA_KINDS and isinstance(item.get("media"), str)
        for item in items
    ):
        raise bad_request("can't parse media JSON object")
    if len(items) > 10:
        raise bad_request("too much messages to send as an album")
    if len(items) < 2:
        raise bad_request("media group must contain 2-10 items")
    kinds = {item["type"] for item in items}
    if len(kinds) > 1 and not kinds <= {"photo", "video"}:
        raise bad_request("audio and documents can be grouped only with media of the same type")
    captions = [caption(*_item_caption(item)) for item in items]
    reply_to = _reply_target(chat, p)
    media = await asyncio.gather(
        *(resolve_media(state, bot, item["type"], p.attachment(item["media"])) for item in items)
    )
    group_id = str(secrets.randbits(62))
    sent: list[JSONObject] = []
    for one, (text, entities) in zip(media, captions, strict=True):
        message = outgoing(state, bot, chat)
        message.media, message.caption, message.caption_entities = one, text, entities
        message.media_group_id, message.reply_to = group_id, reply_to
        sent.append(state.store_message(chat, message).to_api())
    return sent


def _item_caption(item: JSONObject) -> tuple[str | None, str | None, list[JSONObject] | None]:
    text, parse_mode, entities = item.get("caption"), item.get("parse_mode"), item.get("caption_entities")
    if not isinstance(text, str | None) or not isinstance(parse_mode, str | None):
        raise bad_request("can't parse InputMedia JSON object")
    if entities is not None and not isinstance(entities, list):
        raise bad_request("can't parse InputMedia JSON object")
    return text, parse_mode, entities


async def send_chat_action(state: TelegramState, bot: BotState, p: Params) -> bool:
    state.chat(bot, p.chat_id())
    if p.opt_str("action") not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    return True


# --- changing -------------------------------------------------------------------------------------------


def _editable(state: TelegramState, bot: BotState, p: Params) -> tuple[ChatState, StoredMessage]:
    if p.has("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")  # the fake has no inline mode
    chat = state.chat(bot, p.chat_id())
    message = state.live_message(chat, p.req_int("message_id"))
    if message is None:
        raise bad_request("message to edit not found")
    if not message.from_bot:
        raise bad_request("message can't be edited")
    return chat, message


def _check_modified(message: StoredMessage, content_unchanged: bool, markup: JSONObject | None) -> None:
    # Telegram drops an inline keyboard that an edit does not repeat, so the keyboard is part of
    # "not modified" even for text edits.
    if content_unchanged and _keyboard_rows(markup) == message.inline_keyboard:
        raise bad_request(NOT_MODIFIED)


def _edited(chat: ChatState, message: StoredMessage, markup: JSONObject | None) -> JSONObject:
    message.reply_markup = markup
    message.edit_date = now()
    chat.notify()
    return message.to_api()


async def edit_message_text(state: TelegramState, bot: BotState, p: Params) -> JSONObject:
    chat, message = _editable(state, bot, p)
    if message.text is None:
        raise bad_request("there is no text in the message to edit")
    text, entities = _text(p)
    markup = reply_markup(p, inline_only=True)
    _check_modified(message, (text, entities) == (message.text, message.entities), markup)
    message.text, message.entities = text, entities
    return _edited(chat, message, markup)


async def edit_message_caption(state: TelegramState, bot: BotState, p: Params) -> JSONObject:
    chat, message = _editable(state, bot, p)
    if message.media is None:
        raise bad_request("there is no caption in the message to edit")
    text, entities = caption(p.opt_str("caption"), p.opt_str("parse_mode"), _entities(p, "caption_entities"))
    markup = reply_markup(p, inline_only=True)
    _check_modified(message, (text, entities) == (message.caption, message.caption_entities), markup)
    message.caption, message.caption_entities = text, entities
    return _edited(chat, message, markup)


async def edit_message_reply_markup(state: TelegramState, bot: BotState, p: Params) -> JSONObject:
    chat, message = _editable(state, bot, p)
    markup = reply_markup(p, inline_only=True)
    _check_modified(message, True, markup)
    return _edited(chat, message, markup)


async def delete_message(state: TelegramState, bot: BotState, p: Params) -> bool:
    chat = state.chat(bot, p.chat_id())
    message = state.live_message(chat, p.req_int("message_id"))
    if message is None:
        raise bad_request("message to delete not found")
    message.deleted = True
    chat.notify()
    return True


async def answer_callback_query(state: TelegramState, bot: BotState, p: Params) -> bool:
    record = bot.callbacks.get(p.opt_str("callback_query_id") or "")
    if record is None or record.answered:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    record.answered = True
    record.text = p.opt_str("text")
    record.show_alert = p.flag("show_alert")
    record.url = p.opt_str("url")
    return True


HANDLERS: dict[str, Handler] = {
    "sendMessage": send_message,
    "sendPhoto": _media_sender("photo"),
    "sendVideo": _media_sender("video"),
    "sendAudio": _media_sender("audio"),
    "sendDocument": _media_sender("document"),
    "sendMediaGroup": send_media_group,
    "sendChatAction": send_chat_action,
    "editMessageText": edit_message_text,
    "editMessageCaption": edit_message_caption,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "answerCallbackQuery": answer_callback_query,
}
