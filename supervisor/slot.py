"""One tenant's place in this process: its config, its runtime, its state and its lock (see `lifecycle`)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from supervisor.slot_state import State
from tenant_runtime.config import TenantConfig
from tenant_runtime.runtime import TenantRuntime

__all__ = ["WANTING", "Slot"]

WANTING = (State.STANDBY, State.ACTIVE)  # a slot in these states wants its tenant's lock


@dataclass
class Slot:
    config: TenantConfig
    state: State = State.STARTING
    runtime: TenantRuntime | None = None
    task: asyncio.Task[None] | None = None
    locked: bool = False  # this process's lock session holds the tenant's lock (set on every lock beat)
    # Built to replace a slot whose lock this process held (a token rotation, a mode change): the lock stays
    # wanted through the first start, so no peer takes the tenant for the moment between the two slots.
    keeps_lock: bool = False
    pending: asyncio.Task[None] | None = None  # a step up or down in progress
    restarts: deque[float] = field(default_factory=lambda: deque(maxlen=32))
    restart_count: int = 0
    next_attempt_at: float | None = None
    last_error: str | None = None
    transition: asyncio.Lock = field(default_factory=asyncio.Lock)
