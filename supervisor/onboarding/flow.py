"""What the platform bot's handlers share: the conversation's states, the buttons' callback data, and
`Onboarding`, the services a handler is given (aiogram injects it by name from the dispatcher).

Secrets typed into a draft (the bot token, the KIE key) are stored encrypted, bound to the user, so the
draft row never holds them in the clear; `seal` / `unseal` are the only way in and out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aiogram import F
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.state import State, StatesGroup

from shared.crypto import KeyRing
from shared.settings import Settings
from supervisor.onboarding.shops import OwnerShops
from tenant_runtime.kie.client import KieClient

__all__ = [
    "ANSWER",
    "Decision",
    "DecisionCb",
    "EditShop",
    "FlowCb",
    "FlowStep",
    "MyShopCb",
    "NewShop",
    "Onboarding",
    "ShopAction",
]

MAX_NAME_CHARS = 64  # what Telegram allows for a bot's own name
MARKUP_CHOICES = ("1.5", "2", "3")
# What answers a step: text that is not a command (/myshops or a mistyped /cancel mid-flow is not a name).
ANSWER = F.text & ~F.text.startswith("/")


class NewShop(StatesGroup):
    name = State()
    slug = State()
    token = State()
    kie_key = State()
    language = State()
    markup = State()
    confirm = State()


class EditShop(StatesGroup):
    kie_key = State()
    admin = State()


class FlowStep(StrEnum):
    SLUG = "slug"
    LANGUAGE = "lang"
    MARKUP = "markup"
    CREATE = "create"
    CANCEL = "cancel"


class FlowCb(CallbackData, prefix="nf"):
    step: FlowStep
    value: str = ""


class Decision(StrEnum):
    APPROVE = "ok"
    REJECT = "no"


class DecisionCb(CallbackData, prefix="sd"):
    decision: Decision
    tenant_id: int


class ShopAction(StrEnum):
    KIE_KEY = "key"
    PAUSE = "pause"
    RESUME = "resume"
    ADMIN = "admin"


class MyShopCb(CallbackData, prefix="ms"):
    action: ShopAction
    tenant_id: int


@dataclass(frozen=True)
class Onboarding:
    shops: OwnerShops
    kie: KieClient
    keys: KeyRing
    settings: Settings

    @property
    def operator_chats(self) -> tuple[int, ...]:
        return self.settings.operator_chats

    def seal(self, user_id: int, column: str, secret: str) -> str:
        return self.keys.encrypt(secret, scope=f"onboarding:{user_id}", column=column)

    def unseal(self, user_id: int, column: str, sealed: str) -> str:
        return self.keys.decrypt(sealed, scope=f"onboarding:{user_id}", column=column)
