"""Step-ups waiting for their turn: at most so many under way, the rest queued in the order their locks came.

A beat that takes thousands of locks (boot, a peer gone) used to start a task per step-up at once. Each
new task runs its first step in the next turn of the event loop, all in that one turn: at 10,000
tenants a quarter-second stall of /health and of every webhook. Queued here, a step-up becomes a task
only when one of the `at_once` running ends; a queued slot that no longer needs it (its lock went, it was
stopped or rebuilt) is let go by the step-up's own checks when its turn comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from supervisor.slot import Slot

__all__ = ["ActivationQueue"]


class ActivationQueue:
    def __init__(
        self,
        step_up: Callable[[Slot], Coroutine[Any, Any, None]],
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        at_once: int,
    ) -> None:
        self._step_up = step_up
        self._spawn = spawn
        self._at_once = at_once
        self._waiting: dict[int, Slot] = {}  # tenant id -> its slot, oldest first
        self._running = 0

    def __contains__(self, slot: Slot) -> bool:
        """This very slot waits for its turn (a rebuilt tenant's new slot does not wait in the old one's)."""
        return self._waiting.get(slot.config.id) is slot

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, slot: Slot) -> None:
        self._waiting[slot.config.id] = slot
        self._feed()

    def discard(self, slot: Slot) -> None:
        """A stopping slot leaves the queue at once (its step-up is no task yet: cancelling tasks misses it)."""
        if self._waiting.get(slot.config.id) is slot:
            del self._waiting[slot.config.id]

    def _feed(self) -> None:
        while self._running < self._at_once and self._waiting:
            slot = self._waiting.pop(next(iter(self._waiting)))
            task = slot.pending = self._spawn(self._step_up(slot))  # the slot's step in progress
            self._running += 1
            task.add_done_callback(self._ended)

    def _ended(self, _task: asyncio.Task[None]) -> None:
        self._running -= 1
        self._feed()
