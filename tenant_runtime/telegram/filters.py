"""Filters the routers share. All of them run in the event loop.

aiogram runs a filter that is a plain callable (a magic `F` expression, a sync function) through
`asyncio.to_thread`: a thread hop and a loop wake-up for an attribute lookup, on every update that
reaches it. `Filter` subclasses are awaited in place, so magic expressions are wrapped in one.
"""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Filter
from aiogram.types import TelegramObject
from aiogram.utils.magic_filter import MagicFilter


class Magic(Filter):
    """A magic filter resolved against the event, in the loop."""

    __slots__ = ("magic",)

    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: TelegramObject) -> bool:
        return bool(self.magic.resolve(event))

    def __str__(self) -> str:
        return self._signature_to_string(magic=self.magic)


PLAIN_TEXT = Magic(F.text & ~F.text.startswith("/"))
COMMAND = Magic(F.text.startswith("/"))
NOT_COMMAND = Magic(~F.text.startswith("/"))  # any message (a photo too) but a /command
PAYMENT = Magic(F.successful_payment)
FILE = Magic(F.photo | F.document | F.audio | F.voice | F.video)
