"""Per-tenant supervision: one_for_one restarts with backoff, quarantine, token_invalid, lock changes.

Each enabled tenant has a `Slot` whose task builds a `TenantRuntime`, checks its token and then waits
for the runtime to report a failure. A failure restarts only that tenant, after an exponential
backoff with jitter (1 s to 5 min, reset after 10 min healthy). More than 5 restarts in 60 s
quarantines it for 10 min, unless most tenants are failing at once: then the cause is shared (DB,
network) and nobody is quarantined for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from typing import Any

import aiohttp
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.utils.backoff import Backoff, BackoffConfig

from shared import metrics
from shared.db import DB_UNAVAILABLE
from shared.logs import get_logger
from shared.redact import REDACTOR
from supervisor.activations import ActivationQueue
from supervisor.census import Census, take_census
from supervisor.slot import Slot
from supervisor.slot_state import State
from tenant_runtime.config import TenantConfig, TenantStatus
from tenant_runtime.errors import TokenInvalid
from tenant_runtime.runtime import TenantRuntime

log = get_logger(__name__)

RESTART_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=300.0, factor=2.0, jitter=0.3)
HEALTHY_RESET_SECONDS = 600.0
CRASH_LOOP_RESTARTS = 5
CRASH_LOOP_WINDOW = 60.0
QUARANTINE_SECONDS = 600.0
# A stopping slot waits this long for its updates in hand (usually milliseconds; a handler waiting on KIE
# can take longer, and the listener applies other tenants' changes only after this one).
STOP_DRAIN_SECONDS = 3.0
# Every handler's own calls time out well before this: the bot's mapping is dropped by then at the latest.
UNMAP_AFTER_SECONDS = 120.0
ACTIVATIONS_AT_ONCE = 100  # step-ups under way at once (see `activations`)


RuntimeBuilder = Callable[[TenantConfig], TenantRuntime]
MarkInvalid = Callable[[int, str, int], Awaitable[None]]  # (tenant id, reason, config version)
IsHeld = Callable[[int, int], bool]  # (tenant id, lock key) -> this process holds it right now

# Failures of the network or of a shared dependency: they say nothing about the tenant, so they are
# retried with backoff but never quarantine it (a blip must not take a small platform offline).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TelegramNetworkError,
    TelegramServerError,
    aiohttp.ClientError,
    *DB_UNAVAILABLE,
)


class Lifecycle:
    def __init__(
        self,
        build: RuntimeBuilder,
        mark_invalid: MarkInvalid,
        on_wanted_changed: Callable[[], None],
        is_held: IsHeld,
        able: Callable[[], bool] = lambda: True,
    ):
        self._able = able
        self._build = build
        self._mark_invalid = mark_invalid
        self._on_wanted_changed = on_wanted_changed
        self._is_held = is_held
        self.slots: dict[int, Slot] = {}
        self.by_slug: dict[str, Slot] = {}
        self.tenant_by_bot: dict[int, int] = {}
        self._recent_crashes: deque[tuple[float, int]] = deque(maxlen=4096)
        self._background: set[asyncio.Task[None]] = set()
        self._retiring: dict[int, asyncio.Task[None]] = {}  # tenant id -> its old slot stopping for a rebuild
        self._activations = ActivationQueue(self._step_up, self._spawn, ACTIVATIONS_AT_ONCE)
        # Bumped by every change a census or a reconcile depends on (see `census`); at rest it stays put.
        self.version = 0
        self._census = take_census(self.slots, self.version)
        self._reconciled: tuple[int, dict[int, int]] | None = None  # (version, held) of the last full pass

    # --- registry sync ---------------------------------------------------------------------------

    async def sync(self, configs: list[TenantConfig], present: Collection[int] | None = None) -> None:
        """Apply `configs`; stop tenants not in `present` (default: their ids; a resync: every tenant's id)."""
        seen = {c.id for c in configs} if present is None else present
        for tid in [t for t in self.slots if t not in seen]:
            await self.stop_tenant(tid)
        for i, config in enumerate(configs):
            await self.apply(config)
            if i % 50 == 49:
                await asyncio.sleep(0)  # thousands of tenants: let /health and webhooks in between

    async def apply(self, config: TenantConfig) -> None:
        """Start, reconfigure, rebuild or stop one tenant. One caller at a time (the listener applies
        changes in order; `sync` runs before it starts): two rebuilds of one tenant must not interleave."""
        REDACTOR.register(*config.secrets)
        slot = self.slots.get(config.id)
        if not config.status.served:
            if slot is not None:
                await self.stop_tenant(config.id)
            return
        if slot is not None and slot.config.restart_key() == config.restart_key() and slot.config.slug == config.slug:
            if config.config_version != slot.config.config_version:
                slot.config = config
                self.version += 1
                if slot.runtime is not None:
                    slot.runtime.reconfigure(config)
                log.info("tenant reconfigured in place", tenant=config.slug, config_version=config.config_version)
            return
        previous = slot
        slot = Slot(config=config, keeps_lock=previous is not None and previous.locked)
        # The successor is registered before the old slot stops: the tenant never leaves `wanted_locks`
        # while the old runtime drains, so the lock is not released between the two slots.
        self.slots[config.id] = slot
        self.version += 1
        if previous is not None:
            if self.by_slug.get(previous.config.slug) is previous:
                del self.by_slug[previous.config.slug]
            retiring = self._retiring[config.id] = asyncio.create_task(self._retire(previous))
            try:
                await retiring
            except BaseException:
                if self.slots.get(config.id) is slot:
                    del self.slots[config.id]  # never started: it must not keep the lock it cannot serve
                    self.version += 1
                raise
            finally:
                if self._retiring.get(config.id) is retiring:
                    del self._retiring[config.id]
        if self.slots.get(config.id) is not slot:
            return  # a later change replaced or removed the successor while the old slot stopped
        self.by_slug[config.slug] = slot
        self.tenant_by_bot[config.bot_id] = config.id
        if config.status is TenantStatus.TOKEN_INVALID:
            slot.last_error = "Telegram rejected the token; update it with `tenants update --bot-token`"
            self._set_state(slot, State.TOKEN_INVALID)  # clears keeps_lock: nothing to serve
            self._on_wanted_changed()
            return
        slot.task = asyncio.create_task(self._supervise(slot), name=f"tenant:{config.slug}")
        self._on_wanted_changed()

    async def stop_tenant(self, tenant_id: int) -> None:
        slot = self.slots.pop(tenant_id, None)
        if slot is None:
            return
        self.version += 1
        if self.by_slug.get(slot.config.slug) is slot:
            del self.by_slug[slot.config.slug]
        await self._retire(slot)
        self._on_wanted_changed()

    async def _retire(self, slot: Slot) -> None:
        """Stop a slot that is no longer in `slots`: its runtime steps down and drains."""
        self._activations.discard(slot)
        if slot.runtime is not None:
            slot.runtime.retire()
        try:
            # asyncio.wait, not `await task`: the task's CancelledError is its own, and a cancellation of
            # this caller (SIGTERM during a removal) must still reach the caller.
            for task in (slot.task, slot.pending):
                if task is not None:
                    task.cancel()
                    await asyncio.wait([task])
            if slot.runtime is not None:
                await slot.runtime.deactivate()
                # Updates in hand finish before a rebuilt slot (a mode change, a token rotation) takes the
                # chat's next ones: replies stay in order and no update is handled by both.
                await slot.runtime.drain(STOP_DRAIN_SECONDS)
        finally:
            self._spawn(self._unmap_when_idle(slot))
        slot.locked = False
        self._set_state(slot, State.STOPPED)

    async def _unmap_when_idle(self, slot: Slot) -> None:
        """The stopped slot's bot leaves the FSM storage's map only once its runtime has nothing in hand
        (a slower handler than the drain above reads its conversation state through the map until its
        end), and never while a slot of the tenant serves that bot again."""
        if slot.runtime is not None:
            await slot.runtime.drain(UNMAP_AFTER_SECONDS)
        tenant_id, bot_id = slot.config.id, slot.config.bot_id
        current = self.slots.get(tenant_id)
        if self.tenant_by_bot.get(bot_id) == tenant_id and (current is None or current.config.bot_id != bot_id):
            del self.tenant_by_bot[bot_id]

    # --- locks -------------------------------------------------------------------------------------

    def census(self) -> Census:  # taken again only when something changed since the last one
        if self._census.version != self.version:
            self._census = take_census(self.slots, self.version)
        return self._census

    def settling(self) -> bool:
        """Some tenant is still on its first start (boot, or just added): not yet ready to take a handover."""
        return self.census().settling

    def wanted_locks(self) -> Mapping[int, int]:
        if not self._able():
            return {}  # this process cannot reach Telegram: it serves nobody until it can again
        return self.census().wanting

    def active(self) -> Mapping[int, TenantRuntime]:
        """Runtimes whose singleton work (job polling, resuming, refunds) this process owns right now."""
        return self.census().active

    def reconcile(self, held: Mapping[int, int]) -> None:
        """Make every slot match what the lock session holds right now (called on every lock beat).

        Level-triggered: a held tenant whose slot is in standby is activated, an active one that is not
        held steps down, whatever happened in between (a slot rebuilt after a token change, a lost
        notification). The transitions run as tasks: the locker must never wait for Telegram. Nothing
        to do when neither the slots (`version`: a step that finished counts) nor `held` changed since
        the last pass, which is every beat at rest.
        """
        if self._reconciled is not None and self._reconciled[0] == self.version and self._reconciled[1] == held:
            return
        standby, active = State.STANDBY, State.ACTIVE
        for tid, slot in self.slots.items():
            locked = held.get(tid) == slot.config.lock_key
            if locked is not slot.locked:
                slot.locked = locked
                self.version += 1
            if (slot.pending is not None and not slot.pending.done()) or slot in self._activations:
                continue
            if locked and slot.state is standby:
                self._activations.add(slot)
            elif not locked and slot.state is active:
                slot.pending = self._spawn(self._step_down(slot))
        self._reconciled = (self.version, dict(held))

    async def quiesce(self, tenant_ids: list[int], timeout: float) -> bool:
        """Until each of these slots, no longer locked, has stepped down (or `timeout`): the locker frees a
        lock it hands over only then, so the next owner never overlaps this process. False on a timeout."""
        deadline = time.monotonic() + timeout
        for tid in tenant_ids:
            retiring = self._retiring.get(tid)
            if retiring is not None:  # rebuilt: the old runtime may still be polling until it has stopped
                await asyncio.wait([retiring], timeout=max(0.0, deadline - time.monotonic()))
                if not retiring.done():
                    return False
            slot = self.slots.get(tid)
            if slot is not None and slot.transition.locked():
                # An activation in flight (its setWebhook on the way) must land before the next owner's.
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())), slot.transition:
                        pass
                except TimeoutError:
                    return False
            while slot is not None and slot.state == State.ACTIVE and not slot.locked:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if slot.pending is None or slot.pending.done():
                    slot.pending = self._spawn(self._step_down(slot))
                await asyncio.wait([slot.pending], timeout=left)
                slot = self.slots.get(tid)
        return True

    def _holds(self, slot: Slot) -> Callable[[], bool]:
        return lambda: slot.locked and self._is_held(slot.config.id, slot.config.lock_key)

    async def _step_up(self, slot: Slot) -> None:
        # Waiting in the queue held nothing: a hand-over meanwhile found the slot idle, and the checks
        # below see that the lock went or the slot stopped.
        async with slot.transition:
            runtime = slot.runtime
            stale = self.slots.get(slot.config.id) is not slot  # stopped or rebuilt while it waited
            if runtime is None or stale or not slot.locked or slot.state != State.STANDBY:
                return
            try:
                await runtime.activate(self._holds(slot))
            except Exception as exc:  # reported to the slot's supervisor, which restarts it
                runtime.report_failure(exc)
                return
            if not self._holds(slot)():
                await runtime.deactivate()  # the lock went while Telegram was answering
                return
            self._set_state(slot, State.ACTIVE)

    async def _step_down(self, slot: Slot) -> None:
        async with slot.transition:
            if slot.runtime is not None and slot.state == State.ACTIVE and not slot.locked:
                await slot.runtime.deactivate()
                self._set_state(slot, State.STANDBY)

    # --- supervision -------------------------------------------------------------------------------

    async def _supervise(self, slot: Slot) -> None:
        backoff = Backoff(RESTART_BACKOFF)
        while True:
            runtime = self._build(slot.config)
            slot.runtime = runtime
            self._set_state(slot, State.STARTING)
            started = time.monotonic()
            try:
                await runtime.check_token()
                async with slot.transition:
                    self._set_state(slot, State.STANDBY)
                    if self._holds(slot)():
                        await runtime.activate(self._holds(slot))
                        if self._holds(slot)():
                            self._set_state(slot, State.ACTIVE)
                        else:
                            await runtime.deactivate()  # the lock went while Telegram was answering
                self._on_wanted_changed()
                raise await runtime.failure
            except asyncio.CancelledError:
                await runtime.deactivate()
                raise
            except TokenInvalid as exc:
                await runtime.deactivate()
                slot.last_error = f"Telegram rejected the token: {exc}"
                self._set_state(slot, State.TOKEN_INVALID)
                log.error(
                    "bot token rejected by Telegram; tenant stopped until its token changes", tenant=slot.config.slug
                )
                with contextlib.suppress(Exception):
                    await self._mark_invalid(slot.config.id, slot.last_error, slot.config.config_version)
                self._on_wanted_changed()
                return
            except TelegramRetryAfter as exc:
                # Telegram asked this bot to wait: not a crash, and nobody else waits with it.
                await runtime.deactivate()
                metrics.TELEGRAM_429.labels(slot.config.slug).inc()
                await self._wait(slot, float(exc.retry_after), State.BACKOFF)
                continue
            except Exception as exc:
                await runtime.deactivate()
                now = time.monotonic()
                if now - started > HEALTHY_RESET_SECONDS:
                    backoff.reset()
                slot.last_error = REDACTOR.redact(f"{type(exc).__name__}: {exc}")[:500]
                slot.restart_count += 1
                slot.restarts.append(now)
                self._recent_crashes.append((now, slot.config.id))
                metrics.RESTARTS.labels(slot.config.slug).inc()
                log.warning("tenant runtime crashed", tenant=slot.config.slug, error=slot.last_error)
                self._on_wanted_changed()
                transient = isinstance(exc, TRANSIENT_ERRORS)
                if not transient and self._crash_looping(slot, now) and not self._shared_failure(now):
                    log.error(
                        "tenant is crash-looping: quarantined", tenant=slot.config.slug, retry_in_s=QUARANTINE_SECONDS
                    )
                    slot.restarts.clear()
                    await self._wait(slot, QUARANTINE_SECONDS, State.QUARANTINED)
                else:
                    await self._wait(slot, next(backoff), State.BACKOFF)

    async def _wait(self, slot: Slot, seconds: float, state: State) -> None:
        slot.next_attempt_at = time.time() + seconds
        self._set_state(slot, state)
        await asyncio.sleep(seconds)
        slot.next_attempt_at = None

    @staticmethod
    def _crash_looping(slot: Slot, now: float) -> bool:
        return sum(1 for t in slot.restarts if now - t <= CRASH_LOOP_WINDOW) > CRASH_LOOP_RESTARTS

    def _shared_failure(self, now: float) -> bool:
        crashed = {tid for t, tid in self._recent_crashes if now - t <= CRASH_LOOP_WINDOW}
        return len(self.slots) >= 4 and len(crashed) * 2 > len(self.slots)

    def _set_state(self, slot: Slot, state: State) -> None:
        self.version += 1
        if state != State.STARTING:
            slot.keeps_lock = False  # the first start is over: from now on the lock is wanted by state alone
        if slot.state != state:
            log.info("tenant state", tenant=slot.config.slug, state=state.value, previous=slot.state.value)
        slot.state = state

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        self.version += 1  # a step that returned without a new state (the lock went meanwhile) is looked at again

    def counts(self) -> Mapping[str, int]:
        return self.census().counts

    async def stop_all(self, drain_timeout: float) -> None:
        runtimes = [s.runtime for s in self.slots.values() if s.runtime is not None]
        await asyncio.gather(*(r.drain(drain_timeout) for r in runtimes))
        for tid in list(self.slots):
            await self.stop_tenant(tid)
