"""A stand-in for `TenantRuntime`: what the lifecycle drives, with no bot behind it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tenant_runtime.config import TenantConfig

__all__ = ["StandInRuntime"]


class StandInRuntime:
    """What the lifecycle drives: token check, activation, deactivation, failure reports."""

    def __init__(
        self,
        config: TenantConfig,
        *,
        check: Callable[[], None] = lambda: None,
        hang_stop: float = 0,
        slow_check: float = 0,
        slow_activate: float = 0,
    ) -> None:
        self.config = config
        self.failure: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.active = False
        self.retired = False
        self._check = check
        self._hang_stop = hang_stop
        self._slow_check = slow_check
        self._slow_activate = slow_activate
        self.landed: list[float] = []  # monotonic times activations took effect (a setWebhook at Telegram)

    async def check_token(self) -> None:
        await asyncio.sleep(self._slow_check)
        self._check()

    async def activate(self, still_held: Callable[[], bool]) -> None:
        """Checked before the side effect, as the real runtime does; the effect (a setWebhook) lands
        `slow_activate` seconds later."""
        if still_held():
            await asyncio.sleep(self._slow_activate)
            self.active = True
            self.landed.append(time.monotonic())

    def retire(self) -> None:
        self.retired = True

    async def deactivate(self) -> None:
        if self._hang_stop:
            await asyncio.sleep(self._hang_stop)
        self.active = False

    def report_failure(self, exc: BaseException) -> None:
        if not self.failure.done():
            self.failure.set_result(exc)

    def reconfigure(self, config: TenantConfig) -> None:
        self.config = config

    async def drain(self, timeout: float) -> None:
        return None
