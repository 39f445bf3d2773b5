"""Short collector passes while thousands of tenants start.

Boot builds objects that live as long as the process: a runtime, a bot and its clients per tenant. At
10,000 tenants the collector's full passes over them grew to a quarter of a second each during boot
(measured with gc callbacks; they found nothing to collect), stalling /health and every webhook. So
what exists is frozen (`gc.freeze`: later passes skip it) once a second for as long as the tenants keep
changing at boot, for two minutes at most; a pass then looks only at what the last second made. Frozen
objects are never collected: a reference cycle among them that becomes garbage later stays in memory
(reference counting frees everything else). So the young generations are collected before each freeze
(cheap: only what is new), and the freezing stops after the bound even if the tenants keep changing (a
Telegram outage at boot keeps thousands of them restarting: their cycles must not be frozen for as long
as it lasts).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

__all__ = ["freeze_while_booting"]

QUIET_SECONDS = 5.0  # boot is over once the lifecycle has not changed for this long
MAX_SECONDS = 120.0  # and in any case after this (10,000 tenants are all active in about 25 s here)


async def freeze_while_booting(
    version: Callable[[], int], every: float = 1.0, quiet: float = QUIET_SECONDS, at_most: float = MAX_SECONDS
) -> None:
    """Freeze what exists now and every `every` seconds until `version` (the lifecycle's) stood still
    for `quiet` seconds, or `at_most` seconds passed."""
    gc.collect(1)
    gc.freeze()
    still_for, last, frozen_for = 0.0, version(), 0.0
    while still_for < quiet and frozen_for < at_most:
        await asyncio.sleep(every)
        gc.collect(1)
        gc.freeze()
        frozen_for += every
        current = version()
        still_for = still_for + every if current == last else 0.0
        last = current
