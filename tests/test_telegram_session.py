"""The shared aiogram session keeps pydantic's response classes alive between garbage collections."""

from __future__ import annotations

import gc
import weakref

from aiogram.methods import Response
from aiogram.types import Message, User, WebhookInfo

from tenant_runtime.telegram_session import build_session


async def test_response_classes_survive_a_full_collection() -> None:
    session = build_session("http://127.0.0.1:9", limit=4)
    try:
        for kind in (Message, User, WebhookInfo, bool):
            ref = weakref.ref(Response[kind])  # type: ignore[valid-type]
            gc.collect()
            # Without the pin, pydantic's weak cache loses the class here and rebuilds it per call.
            assert ref() is not None, kind
    finally:
        await session.close()
