"""What an admin may broadcast, read from the message they sent, and the optional URL button.

Text with formatting (kept as HTML), or a photo or video with a caption. Telegram's limits for bots are
checked here, before anything is written: 4096 characters of text, 1024 of caption (a Premium user's own
caption may be longer, a bot's may not), counted as Telegram counts them (UTF-16 code units, after the
formatting is parsed). The button is "text | URL": 1-64 characters of text, an http(s) or tg URL.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from urllib.parse import urlsplit

from aiogram.types import Message

from tenant_runtime.broadcasts.model import Content, ContentKind

__all__ = [
    "MAX_BUTTON_TEXT",
    "MAX_CAPTION",
    "MAX_TEXT",
    "MAX_URL",
    "ContentError",
    "ContentProblem",
    "content_of",
    "parse_button",
    "telegram_length",
]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_BUTTON_TEXT = 64
MAX_URL = 2048
_SCHEMES = frozenset({"http", "https", "tg"})
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn"})


class ContentProblem(StrEnum):
    EMPTY = "empty"  # nothing visible to send
    UNSUPPORTED = "unsupported"  # not text, a photo or a video
    TOO_LONG = "too_long"
    BUTTON_FORMAT = "button_format"  # not "text | URL"
    BUTTON_TEXT = "button_text"
    BUTTON_URL = "button_url"


class ContentError(ValueError):
    def __init__(self, problem: ContentProblem, *, length: int = 0, limit: int = 0) -> None:
        super().__init__(problem)
        self.problem = problem
        self.length = length
        self.limit = limit


def telegram_length(text: str) -> int:
    """Characters as Telegram counts them: UTF-16 code units (an emoji outside the BMP counts two)."""
    return len(text.encode("utf-16-le")) // 2


def _visible(text: str) -> bool:
    return any(unicodedata.category(ch) not in _INVISIBLE for ch in text)


def content_of(message: Message) -> Content:
    """The content of the admin's message, or ContentError."""
    if message.photo:
        kind, file_id = ContentKind.PHOTO, message.photo[-1].file_id
    elif message.video is not None:
        kind, file_id = ContentKind.VIDEO, message.video.file_id
    elif message.text is not None:
        kind, file_id = ContentKind.TEXT, None
    else:
        raise ContentError(ContentProblem.UNSUPPORTED)
    plain = message.text if kind is ContentKind.TEXT else message.caption
    if kind is ContentKind.TEXT and not _visible(plain or ""):
        raise ContentError(ContentProblem.EMPTY)
    limit = MAX_TEXT if kind is ContentKind.TEXT else MAX_CAPTION
    length = telegram_length(plain or "")
    if length > limit:
        raise ContentError(ContentProblem.TOO_LONG, length=length, limit=limit)
    body = message.html_text if plain and _visible(plain) else None
    return Content(kind, body, file_id)


def parse_button(text: str) -> tuple[str, str]:
    """ "Open the shop | https://example.com" → (label, URL), or ContentError."""
    label, bar, url = text.rpartition("|")
    if not bar:
        raise ContentError(ContentProblem.BUTTON_FORMAT)
    label, url = label.strip(), url.strip()
    if not _visible(label) or "\n" in label or telegram_length(label) > MAX_BUTTON_TEXT:
        raise ContentError(ContentProblem.BUTTON_TEXT, length=telegram_length(label), limit=MAX_BUTTON_TEXT)
    if not _valid_url(url):
        raise ContentError(ContentProblem.BUTTON_URL)
    return label, url


def _valid_url(url: str) -> bool:
    if not url or len(url) > MAX_URL or not url.isascii() or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in _SCHEMES:
        return False
    if parts.scheme == "tg":
        return bool(parts.netloc)
    return host is not None and "." in host.strip(".") and not host.startswith("-")
