"""The tenant bot's routers: every handler and filter is awaited in the event loop.

aiogram hands plain callables to `asyncio.to_thread`; one sync filter early in the chain cost a
thread hop on every update (found by profiling the webhook benchmark).
"""

from __future__ import annotations

from aiogram import Router
from aiogram.dispatcher.event.handler import CallableObject

from tenant_runtime.telegram.handlers import build_routers


def _callables(router: Router) -> list[tuple[str, CallableObject]]:
    found: list[tuple[str, CallableObject]] = []
    for name, observer in router.observers.items():
        found += [(f"{router.name}.{name} router filter", f) for f in observer._handler.filters or []]
        for handler in observer.handlers:
            label = f"{router.name}.{name} {getattr(handler.callback, '__name__', handler.callback)}"
            found.append((label, handler))
            found += [(f"{label} filter {f.callback!r}", f) for f in handler.filters or []]
    for child in router.sub_routers:
        found += _callables(child)
    return found


def test_no_handler_or_filter_runs_in_a_thread() -> None:
    everything = [c for router in build_routers() for c in _callables(router)]
    assert len(everything) > 30, "the walk found the handlers"
    in_thread = [label for label, obj in everything if not obj.awaitable]
    assert in_thread == []
