"""What an owner types, checked before anything is written: the shape first, then the service itself
(Telegram's getMe for a bot token, KIE's credit call for an API key).

Each failure is a `Refusal` naming the text the owner is shown; no message ever quotes the secret.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError

from shared.redact import REDACTOR
from supervisor.validation import SLUG_RE, InputError, parse_bot_token, parse_kie_key
from tenant_runtime.kie.client import KieClient
from tenant_runtime.kie.errors import KieAuthError, KieError, KieInsufficientCreditsError

__all__ = ["BotIdentity", "Refusal", "check_bot_token", "check_kie_key", "suggest_slug"]

CHECK_TIMEOUT_SECONDS = 10

# Enough of Russian to turn a shop's name into a readable slug ("Мой магазин" -> "moi-magazin").
_LATIN = "a,b,v,g,d,e,e,zh,z,i,i,k,l,m,n,o,p,r,s,t,u,f,h,ts,ch,sh,sch,,y,,e,yu,ya"
_CYRILLIC = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя", _LATIN.split(","), strict=True))


class Refusal(Exception):
    """The owner's input is refused; `key` names the text they are shown (supervisor.onboarding.texts)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True)
class BotIdentity:
    token: str
    bot_id: int
    username: str


async def check_bot_token(api_base: str, typed: str) -> BotIdentity:
    try:
        token, bot_id = parse_bot_token(typed)
    except InputError:
        raise Refusal("bad_token_shape") from None
    REDACTOR.register(token)
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base), timeout=CHECK_TIMEOUT_SECONDS)
    try:
        me = await Bot(token, session=session).get_me()
    except TelegramUnauthorizedError:
        raise Refusal("token_rejected") from None
    except (TelegramAPIError, aiohttp.ClientError, OSError, TimeoutError):
        raise Refusal("telegram_unreachable") from None
    finally:
        await session.close()
    if me.id != bot_id or not me.username:
        raise Refusal("token_rejected")
    return BotIdentity(token, bot_id, me.username)


async def check_kie_key(kie: KieClient, typed: str) -> tuple[str, Decimal]:
    """The key and its remaining credits. A key whose account is empty is still a key (402)."""
    try:
        key = parse_kie_key(typed)
    except InputError:
        raise Refusal("bad_kie_shape") from None
    REDACTOR.register(key)
    try:
        return key, await kie.credit(key)
    except KieInsufficientCreditsError:
        return key, Decimal(0)
    except KieAuthError:
        raise Refusal("kie_rejected") from None
    except KieError:
        raise Refusal("kie_unreachable") from None


def suggest_slug(name: str) -> str | None:
    """A slug from the shop's name, or None when nothing usable is left (an emoji-only name)."""
    out = []
    for char in name.lower():
        if char in _CYRILLIC:
            out.append(_CYRILLIC[char])
        else:
            out.append(unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode())
    slug = re.sub(r"[^a-z0-9]+", "-", "".join(out)).strip("-")[:32].strip("-")
    return slug if SLUG_RE.fullmatch(slug) else None
