"""The lifecycle's rules with a stand-in runtime: level-triggered ownership, cancellation that reaches
the caller, and no quarantine for failures of the network."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from aiogram.exceptions import TelegramNetworkError
from aiogram.fsm.storage.base import StorageKey
from aiogram.methods import GetMe
from aiogram.utils.backoff import BackoffConfig

from shared import metrics
from supervisor import lifecycle as lifecycle_module
from supervisor.census import metric_rows
from supervisor.lifecycle import Lifecycle
from supervisor.slot_state import State
from tenant_runtime.config import TenantConfig, TenantStatus
from tenant_runtime.telegram.fsm_storage import PgStorage
from tests.helpers import wait_until
from tests.stand_in_runtime import StandInRuntime


def config(tenant_id: int = 1, token: str = "1:aaa", **changes: Any) -> TenantConfig:
    base = TenantConfig(
        id=tenant_id,
        slug=f"t{tenant_id}",
        display_name="T",
        status=TenantStatus.ENABLED,
        bot_id=tenant_id,
        bot_token=token,
        kie_api_key=None,
        kie_webhook_key=None,
        webhook_secret="w" * 32,
        callback_secret="c" * 32,
        admin_ids=frozenset(),
        lock_key=1000 + tenant_id,
        markup=Decimal(2),
        default_language="ru",
        bot_mode=None,
        welcome_bonus=0,
        referral_bonus=0,
        disabled_models=frozenset(),
        config_version=1,
    )
    return dataclasses.replace(base, **changes)


def make(held: dict[int, int], build: Callable[[TenantConfig], StandInRuntime] | None = None) -> Lifecycle:
    async def mark_invalid(_tid: int, _reason: str, _version: int) -> None:
        return None

    return Lifecycle(
        build or StandInRuntime,  # type: ignore[arg-type]
        mark_invalid,
        lambda: None,
        lambda tid, key: held.get(tid) == key,
    )


async def test_a_slot_rebuilt_after_a_token_change_is_activated_while_the_lock_is_held() -> None:
    held: dict[int, int] = {}
    life = make(held)
    await life.apply(config())
    await wait_until(lambda: life.slots[1].state == State.STANDBY, timeout=2, what="standby")
    held[1] = 1001
    life.reconcile(held)
    await wait_until(lambda: life.slots[1].state == State.ACTIVE, timeout=2, what="active")
    # Token rotation: the slot is rebuilt; the lock session still holds the same key, nothing "changes".
    await life.apply(config(token="1:bbb"))
    await wait_until(lambda: life.slots[1].state == State.STANDBY, timeout=2, what="the new slot in standby")
    life.reconcile(held)  # the next beat, with the same held set
    await wait_until(lambda: life.slots[1].state == State.ACTIVE, timeout=2, what="the new slot active")
    held.clear()
    life.reconcile(held)
    await wait_until(lambda: life.slots[1].state == State.STANDBY, timeout=2, what="stepped down")
    await life.stop_all(drain_timeout=1)


async def test_cancelling_a_removal_reaches_the_caller() -> None:
    held: dict[int, int] = {}
    life = make(held, lambda c: StandInRuntime(c, hang_stop=30))
    await life.apply(config())
    await wait_until(lambda: life.slots[1].state == State.STANDBY, timeout=2, what="standby")
    removal = asyncio.create_task(life.stop_tenant(1))
    await asyncio.sleep(0.1)  # inside the removal, waiting on a runtime that takes long to stop
    removal.cancel()
    done, _ = await asyncio.wait([removal], timeout=2)
    assert done and removal.cancelled(), "the caller's cancellation was swallowed"


def _network_down() -> None:
    raise TelegramNetworkError(GetMe(), "network is unreachable")


def _bug() -> None:
    raise RuntimeError("a bug in this tenant's runtime")


@pytest.mark.parametrize(("fail", "quarantined"), [(_network_down, False), (_bug, True)])
async def test_only_a_tenants_own_crash_loop_quarantines_it(
    monkeypatch: pytest.MonkeyPatch, fail: Callable[[], None], quarantined: bool
) -> None:
    monkeypatch.setattr(lifecycle_module, "RESTART_BACKOFF", BackoffConfig(0.01, 0.02, 1.1, 0.0))
    held: dict[int, int] = {}
    life = make(held, lambda c: StandInRuntime(c, check=fail))
    await life.apply(config())
    slot = life.slots[1]
    await wait_until(
        lambda: slot.restart_count > lifecycle_module.CRASH_LOOP_RESTARTS + 2 or slot.state == State.QUARANTINED,
        timeout=5,
        what="a crash loop",
    )
    assert (slot.state == State.QUARANTINED) is quarantined, slot.state
    await life.stop_tenant(1)


async def test_quiesce_returns_once_the_handed_over_slot_has_stepped_down() -> None:
    """The locker unlocks a tenant it hands over only after this: the next owner never overlaps us."""
    held: dict[int, int] = {}
    life = make(held, lambda c: StandInRuntime(c, hang_stop=0.3))
    await life.apply(config())
    await wait_until(lambda: life.slots[1].state == State.STANDBY, timeout=2, what="standby")
    held[1] = 1001
    life.reconcile(held)
    await wait_until(lambda: life.slots[1].state == State.ACTIVE, timeout=2, what="active")
    held.clear()
    life.slots[1].locked = False  # the locker took it out of `held`; no reconcile has run yet
    assert await life.quiesce([1], timeout=5)
    assert life.slots[1].state == State.STANDBY
    runtime = life.slots[1].runtime
    assert isinstance(runtime, StandInRuntime) and not runtime.active
    # Bounded: a runtime that takes longer to stop than the timeout does not hold the locker up.
    slow = make({1: 1001}, lambda c: StandInRuntime(c, hang_stop=1.5))
    await slow.apply(config())
    await wait_until(lambda: slow.slots[1].state == State.STANDBY, timeout=2, what="standby")
    slow.reconcile({1: 1001})
    await wait_until(lambda: slow.slots[1].state == State.ACTIVE, timeout=2, what="active")
    slow.slots[1].locked = False
    assert not await asyncio.wait_for(slow.quiesce([1], timeout=0.2), timeout=1)
    assert slow.slots[1].state == State.ACTIVE, "still stepping down when quiesce gave up"
    await life.stop_all(drain_timeout=1)
    await slow.stop_all(drain_timeout=3)


async def test_a_hand_over_during_an_activation_waits_for_it_to_land_and_step_down() -> None:
    """A slot part-way through its activation (the lock checked, its setWebhook on the way) is still in
    standby. Unlocked then, the next owner's setWebhook could land first and this one after it: the
    webhook would point at a process that no longer serves the bot. Invariant: once quiesce returns, this
    process's runtime is not serving and does not start to."""
    held = {1: 1001}
    life = make(held, lambda c: StandInRuntime(c, slow_activate=0.5))
    await life.apply(config())
    await wait_until(lambda: life.slots[1].state == State.STANDBY, timeout=2, what="standby")
    life.reconcile(held)  # the lock is taken: the slot steps up
    await wait_until(lambda: life.slots[1].transition.locked(), timeout=2, what="the activation under way")
    runtime = life.slots[1].runtime
    assert isinstance(runtime, StandInRuntime) and life.slots[1].state == State.STANDBY
    held.clear()
    life.reconcile(held)  # handed over: the locker took it out of `held`
    assert await life.quiesce([1], timeout=5)
    handed_over_at = time.monotonic()
    assert not runtime.active, "quiesce returned with this process serving"
    await asyncio.sleep(0.8)  # past the activation's landing
    assert all(at < handed_over_at for at in runtime.landed), "a setWebhook landed after the hand-over"
    assert not runtime.active and life.slots[1].state != State.ACTIVE
    await life.stop_all(drain_timeout=1)


async def test_a_first_start_that_loses_the_lock_while_activating_does_not_call_itself_active() -> None:
    """The first start activates at once when the lock is already held; the lock may go while Telegram
    answers. Invariant: a slot is ACTIVE only while held, without waiting for the next beat's reconcile."""
    held = {1: 1001}
    life = make(held, lambda c: StandInRuntime(c, slow_check=0.3, slow_activate=0.5))
    await life.apply(config())
    life.reconcile(held)  # held before the token check ends: the start activates by itself
    await wait_until(lambda: life.slots[1].transition.locked(), timeout=2, what="the activation under way")
    held.clear()
    life.slots[1].locked = False  # the lock went; no reconcile runs after this
    runtime = life.slots[1].runtime
    assert isinstance(runtime, StandInRuntime)
    await wait_until(lambda: bool(runtime.landed), timeout=2, what="the activation landed")
    await asyncio.sleep(0.3)
    assert life.slots[1].state == State.STANDBY and not runtime.active, "active without the lock"
    await life.stop_all(drain_timeout=1)


async def test_a_hand_over_during_a_rebuild_waits_until_the_old_runtime_has_stopped() -> None:
    """The locker hands a tenant over once `quiesce` returns. While a mode change rebuilds the slot, the
    old runtime (still polling until it stops) is no longer in `slots`: quiesce must wait for it too,
    or the next owner polls beside it."""
    held = {1: 1001}
    life = make(held, lambda c: StandInRuntime(c, hang_stop=0.5))
    await life.apply(config())
    life.reconcile(held)
    await wait_until(lambda: life.slots[1].state == State.ACTIVE, timeout=2, what="active")
    old = life.slots[1].runtime
    assert isinstance(old, StandInRuntime) and old.active
    rebuild = asyncio.create_task(life.apply(config(bot_mode="polling", config_version=2)))
    await wait_until(lambda: life.slots[1].runtime is not old, timeout=2, what="the successor registered")
    held.clear()
    life.reconcile(held)  # handed over: the locker took it out of `held`
    assert await life.quiesce([1], timeout=5)
    assert not old.active, "quiesce returned while the old runtime was still serving"
    await rebuild
    await life.stop_all(drain_timeout=1)


async def test_a_renamed_slot_leaves_no_lock_gauge_behind() -> None:
    held = {1: 1001}
    life = make(held)
    before, metrics.TENANT_STATES.source = metrics.TENANT_STATES.source, lambda: metric_rows(life.slots)
    try:
        await life.apply(config())
        life.reconcile(held)
        await wait_until(lambda: life.slots[1].state == State.ACTIVE, timeout=2, what="active")
        assert metrics.REGISTRY.get_sample_value("tenant_lock_held", {"tenant": "t1"}) == 1
        await life.apply(config(slug="t1-renamed", config_version=2))
        life.reconcile(held)
        await wait_until(lambda: life.slots[1].state == State.ACTIVE, timeout=2, what="the renamed slot active")
        assert metrics.REGISTRY.get_sample_value("tenant_lock_held", {"tenant": "t1"}) is None
        assert metrics.REGISTRY.get_sample_value("tenant_runtime_state", {"tenant": "t1", "state": "active"}) is None
        assert metrics.REGISTRY.get_sample_value("tenant_lock_held", {"tenant": "t1-renamed"}) == 1
    finally:
        metrics.TENANT_STATES.source = before
    await life.stop_all(drain_timeout=1)


class HandlerInHand(StandInRuntime):
    """A runtime with one update in hand when it is stopped. Its handler reads the conversation state
    (as aiogram's FSM middleware does) once released, after the stop has begun."""

    storage: PgStorage
    events: list[str]

    def __init__(self, config: TenantConfig) -> None:
        super().__init__(config)
        self.release = asyncio.Event()
        self.in_hand: asyncio.Task[int] | None = None
        HandlerInHand.events.append(f"built {config.bot_token}")

    def take_update(self) -> None:
        self.in_hand = asyncio.create_task(self._handle())

    async def _handle(self) -> int:
        await self.release.wait()
        tenant_id = self.storage._params(StorageKey(bot_id=self.config.bot_id, chat_id=7, user_id=7))[0]
        HandlerInHand.events.append("handled")
        return tenant_id

    async def drain(self, timeout: float) -> None:
        if self.in_hand is not None:
            await asyncio.wait([self.in_hand], timeout=timeout)


async def _active_with_an_update_in_hand(held: dict[int, int]) -> tuple[Lifecycle, HandlerInHand]:
    life = make(held, HandlerInHand)
    HandlerInHand.storage = PgStorage(None, life.tenant_by_bot)  # type: ignore[arg-type]  # no query is made
    HandlerInHand.events = []
    await life.apply(config())
    life.reconcile(held)
    await wait_until(lambda: life.slots[1].state == State.ACTIVE, timeout=2, what="active")
    runtime = life.slots[1].runtime
    assert isinstance(runtime, HandlerInHand)
    runtime.take_update()
    return life, runtime


async def test_a_rebuilt_slot_starts_after_the_update_in_hand_is_finished() -> None:
    """Replies in a chat stay in order across a mode change: the old runtime's update is handled first."""
    held = {1: 1001}
    life, old = await _active_with_an_update_in_hand(held)
    asyncio.get_running_loop().call_later(0.2, old.release.set)
    await life.apply(config(bot_mode="polling"))
    await wait_until(lambda: len(HandlerInHand.events) == 3, timeout=2, what="the new slot built")
    assert HandlerInHand.events == ["built 1:aaa", "handled", "built 1:aaa"]
    await life.stop_all(drain_timeout=1)


@pytest.mark.parametrize(
    ("change", "mapped_after"),
    [
        ({"bot_mode": "polling"}, {1: 1}),  # the same bot, rebuilt
        ({"bot_token": "1:rotated"}, {1: 1}),
        ({"bot_token": "2:another-bot", "bot_id": 2}, {2: 1}),  # the shop moved to another bot
        (None, {}),  # removed
    ],
)
async def test_an_update_in_hand_longer_than_the_drain_keeps_its_conversation_state(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, Any] | None, mapped_after: dict[int, int]
) -> None:
    monkeypatch.setattr(lifecycle_module, "STOP_DRAIN_SECONDS", 0.05)
    held = {1: 1001}
    life, old = await _active_with_an_update_in_hand(held)
    if change is None:
        await life.stop_tenant(1)
    else:
        await life.apply(config(**change))
    assert old.in_hand is not None and not old.in_hand.done(), "the stop waited for the slow handler"
    old.release.set()
    assert await old.in_hand == 1  # read through the map after the stop: the tenant's own state
    await wait_until(lambda: not life._background, timeout=2, what="the stopped slot's bookkeeping")
    assert life.tenant_by_bot == mapped_after
    await life.stop_all(drain_timeout=1)


async def test_step_ups_run_a_bounded_number_at_once_and_all_land(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of locks taken in one beat must not start thousands of activations in one turn of the
    event loop (each sets up a Telegram request; /health stalled for seconds at 10,000 tenants), nor
    thousands of tasks (their first steps stalled it for a quarter second)."""
    monkeypatch.setattr(lifecycle_module, "ACTIVATIONS_AT_ONCE", 4)
    running = most = 0

    class Counted(StandInRuntime):
        async def activate(self, still_held: Callable[[], bool]) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            try:
                await super().activate(still_held)
            finally:
                running -= 1

    held: dict[int, int] = {}
    life = make(held, lambda c: Counted(c, slow_activate=0.02))
    for tid in range(1, 31):
        await life.apply(config(tid, token=f"{tid}:aaa"))
    await wait_until(lambda: life.counts() == {"standby": 30}, timeout=5, what="30 slots in standby")
    held.update({tid: 1000 + tid for tid in range(1, 31)})
    life.reconcile(held)
    # Not even as tasks: 10,000 new tasks all take their first step in the next turn of the loop.
    assert len(life._background) == 4, f"{len(life._background)} step-ups started in one turn"
    await wait_until(lambda: life.counts() == {"active": 30}, timeout=5, what="every slot active")
    assert most == 4, f"{most} activations ran at once"
    await life.stop_all(drain_timeout=1)


@pytest.mark.parametrize("change", ["stopped", "rebuilt"])
async def test_a_step_up_still_queued_when_its_slot_stops_never_runs(
    monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Queued behind a slow activation (boot, a failover), a slot is stopped or rebuilt (a token rotation):
    its step-up is no task yet, so cancelling tasks misses it. When its turn comes it must not activate
    the old runtime, which nobody would ever deactivate (in polling mode: a second poller of the token)."""
    monkeypatch.setattr(lifecycle_module, "ACTIVATIONS_AT_ONCE", 1)
    held = {1: 1001, 2: 1002}
    # The stop takes a while (a runtime draining): the queued step-up's turn comes in the middle of it.
    life = make(held, lambda c: StandInRuntime(c, slow_activate=0.2) if c.id == 1 else StandInRuntime(c, hang_stop=0.6))
    for tid in (1, 2):
        await life.apply(config(tid, token=f"{tid}:aaa"))
    await wait_until(lambda: life.counts() == {"standby": 2}, timeout=2, what="two slots in standby")
    life.reconcile(held)
    queued = life.slots[2]
    assert queued in life._activations, "the second step-up should wait for the first"
    old = queued.runtime
    assert isinstance(old, StandInRuntime)
    if change == "stopped":
        await life.stop_tenant(2)
    else:
        await life.apply(config(2, token="2:bbb", config_version=2))
    await wait_until(lambda: life.slots[1].state == State.ACTIVE, timeout=3, what="the first slot active")
    await wait_until(lambda: not life._activations and not life._background, timeout=3, what="the queue drained")
    assert old.landed == [] and not old.active, "the stopped slot's runtime was activated"
    await life.stop_all(drain_timeout=1)
