"""Supervised background loops: an exception is logged and counted, the loop goes on; a cancellation
ends it, even one a library swallowed; a per-start identity never repeats."""

from __future__ import annotations

import asyncio

import pytest

from shared.db import LOCK_SESSION, process_identity, session_name
from shared.periodic import LOOPS, periodic, supervise
from tests.helpers import wait_until


async def test_a_failing_tick_is_counted_and_the_loop_goes_on() -> None:
    calls: list[int] = []

    async def tick() -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise ValueError("a reply that is not JSON")

    task = asyncio.create_task(periodic("test-tick", 0.01, tick))
    try:
        await wait_until(lambda: len(calls) >= 4, timeout=5, what="ticks after two failures")
        assert LOOPS["test-tick"].failures == 2 and not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_a_loop_that_ends_is_restarted_and_one_that_is_finished_is_not() -> None:
    runs: list[int] = []
    finished = False

    async def run() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionError("first life ends badly")

    task = asyncio.create_task(supervise("test-run", run, finished=lambda: finished))
    await wait_until(lambda: len(runs) >= 2, timeout=5, what="a restart")
    finished = True
    await asyncio.wait_for(task, timeout=5)
    assert LOOPS["test-run"].restarts >= 1


async def test_a_swallowed_cancellation_still_ends_a_supervised_loop() -> None:
    started = asyncio.Event()

    async def swallows() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return  # a library that eats the cancellation and returns normally

    task = asyncio.create_task(supervise("test-swallow", swallows))
    await started.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert done, "the loop was restarted instead of ending"


@pytest.mark.parametrize("label", ["web", "x" * 200])
def test_every_start_has_its_own_session_name(label: str) -> None:
    names = {session_name(LOCK_SESSION, process_identity(label)) for _ in range(50)}
    assert len(names) == 50 and all(len(n.encode()) <= 63 for n in names)
