"""Telegram updates as they arrive, before aiogram parses them (which chat, whether Postgres can store
their numbers), and what became of one."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

INT64 = 1 << 63


class Handling(StrEnum):
    """What became of one accepted update."""

    DONE = "done"
    FAILED = "failed"  # a handler error: the user got an apology; not retried
    HANDED_BACK = "handed_back"  # could not be answered from here now: left for a retry


class Outcome(StrEnum):
    """What the webhook endpoint makes of one delivery."""

    HANDLED = "handled"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


def ints_fit(value: object) -> bool:
    """Every integer in a (depth-limited) JSON value fits in a signed 64-bit integer."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -INT64 <= value < INT64
    if isinstance(value, dict):
        return all(ints_fit(v) for v in value.values())
    if isinstance(value, list):
        return all(ints_fit(v) for v in value)
    return True


def storable(chat_id: int | None) -> int | None:
    """The chat id for the inbox's bigint column (a forged one may not fit)."""
    return chat_id if chat_id is not None and -INT64 <= chat_id < INT64 else None


def chat_of(payload: dict[str, Any]) -> int | None:
    """The chat an update belongs to, read from the raw JSON (cheaper than aiogram's resolver)."""
    for key, value in payload.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        chat = value.get("chat") or (value.get("message") or {}).get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
        sender = value.get("from")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return int(sender["id"])
    return None
