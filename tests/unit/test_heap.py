"""Freezing what boot builds ends: once the tenants stop changing, and in any case after its bound (a
Telegram outage at boot keeps tenants restarting; their garbage must not be frozen for as long)."""

from __future__ import annotations

import asyncio
import gc
import itertools

from supervisor.heap import freeze_while_booting


async def test_it_stops_once_quiet_and_within_its_bound_when_never_quiet() -> None:
    try:
        quiet = asyncio.get_running_loop().time()
        await asyncio.wait_for(freeze_while_booting(lambda: 7, every=0.01, quiet=0.05, at_most=10), timeout=2)
        assert asyncio.get_running_loop().time() - quiet < 1
        assert gc.get_freeze_count() > 0
        changing = itertools.count()
        # Never quiet: without the bound this would not return.
        await asyncio.wait_for(
            freeze_while_booting(lambda: next(changing), every=0.01, quiet=0.05, at_most=0.1), timeout=2
        )
    finally:
        gc.unfreeze()
