"""A shop's own words: welcome and help texts, the bot's Telegram description, and a support contact.

Set per language by the operator (`tenants update --welcome-file ...`) or the shop's admin; a text not
set falls back to the product's default. Each is checked when it is set (`parse_text`,
`parse_support`), never when it is shown: a text that would break the bot's /start never reaches the
database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from shared.telegram_html import HtmlProblem, check_html

__all__ = ["DEFAULT_PROFILE", "LANGUAGES", "ProfileError", "ShopProfile", "TextField", "parse_support", "parse_text"]

LANGUAGES = ("ru", "en")
MAX_SUPPORT_URL = 256
_USERNAME = re.compile(r"@?([A-Za-z][A-Za-z0-9_]{4,31})")
_URL = re.compile(r"https://[^\s<>\"']{4,250}")


class TextField(StrEnum):
    WELCOME = "welcome"  # above the main menu, in place of the shop's name
    HELP = "help"  # /help, in place of the product's help
    DESCRIPTION = "description"  # Telegram: what an empty chat with the bot shows
    SHORT_DESCRIPTION = "short_description"  # Telegram: the bot's profile and shared links

    @property
    def limit(self) -> int:
        """Visible characters: Telegram's own limits, less room for what the bot adds around the text."""
        return {"welcome": 3000, "help": 3500, "description": 512, "short_description": 120}[self.value]

    @property
    def html(self) -> bool:
        """Descriptions are plain text in Telegram; the others are sent with HTML parse mode."""
        return self in (TextField.WELCOME, TextField.HELP)


class ProfileError(ValueError):
    """A text or contact Telegram would refuse or that would mislead users; the message says why."""


def parse_text(text_field: TextField, value: str) -> str:
    text = value.strip().replace("\r\n", "\n")
    if not text:
        raise ProfileError(f"{text_field.value}: the text is empty")
    if text_field.html:
        try:
            return check_html(text, limit=text_field.limit)
        except HtmlProblem as exc:
            raise ProfileError(f"{text_field.value}: {exc}") from None
    if len(text) > text_field.limit:
        raise ProfileError(f"{text_field.value}: {len(text)} characters; Telegram allows at most {text_field.limit}")
    return text


def parse_support(value: str) -> str:
    """`@username` or an https:// link, as the https link a button opens."""
    value = value.strip()
    if match := _USERNAME.fullmatch(value):
        return f"https://t.me/{match.group(1)}"
    if _URL.fullmatch(value):
        return value
    raise ProfileError(
        f"support contact {value[:40]!r}: give a Telegram @username (5-32 letters, digits, _) or an https:// link"
    )


@dataclass(frozen=True)
class ShopProfile:
    support_url: str | None = None
    # language -> field -> text; only what the shop set.
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))

    def text(self, language: str, text_field: TextField) -> str | None:
        return self.texts.get(language, {}).get(text_field.value)

    @classmethod
    def from_row(cls, support_url: str | None, texts: Mapping[str, Mapping[str, str]] | None) -> ShopProfile:
        known = {f.value for f in TextField}
        frozen = {
            lang: MappingProxyType({k: v for k, v in by_field.items() if k in known})
            for lang, by_field in (texts or {}).items()
            if lang in LANGUAGES
        }
        return cls(support_url, MappingProxyType(frozen))


DEFAULT_PROFILE = ShopProfile()  # the product's own words everywhere, no support contact
