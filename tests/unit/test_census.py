"""The lifecycle's census is kept between changes instead of recounted on every ask (at rest the locker,
the job poller and /health asked over every slot several times a second). Invariant: whenever anyone
asks, the kept census equals a count taken fresh from the slots; and reconcile, which skips its pass
when nothing changed, still acts on every slot that needs it (level-triggered)."""

from __future__ import annotations

import asyncio
import random

from supervisor.census import Census, take_census
from supervisor.lifecycle import Lifecycle
from supervisor.slot_state import State
from tests.helpers import wait_until
from tests.stand_in_runtime import StandInRuntime
from tests.unit.test_lifecycle import config, make


def _fresh(life: Lifecycle) -> Census:
    return take_census(life.slots, life.version)


def _same(kept: Census, fresh: Census) -> bool:
    return (
        dict(kept.wanting) == dict(fresh.wanting)
        and kept.settling == fresh.settling
        and dict(kept.active) == dict(fresh.active)
        and dict(kept.counts) == dict(fresh.counts)
    )


async def _watch(life: Lifecycle, seconds: float, mismatches: list[str]) -> None:
    """Ask as often as the loop lets us for `seconds`, comparing the kept census with a fresh count."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        kept, fresh = life.census(), _fresh(life)
        if not _same(kept, fresh):
            mismatches.append(f"kept {kept} != fresh {fresh}")
        await asyncio.sleep(0)


async def test_the_kept_census_always_equals_a_fresh_count_through_random_changes() -> None:
    rng = random.Random(2026)
    held: dict[int, int] = {}
    crashy: set[int] = set()

    def build(c: object) -> StandInRuntime:
        runtime = StandInRuntime(c, slow_activate=rng.choice((0, 0.01)))  # type: ignore[arg-type]
        if c.id in crashy:  # type: ignore[attr-defined]
            runtime.report_failure(RuntimeError("boom"))
        return runtime

    life = make(held, build)
    mismatches: list[str] = []
    for _ in range(120):
        tid = rng.randint(1, 6)
        action = rng.choice(("apply", "rotate", "lock", "unlock", "reconcile", "stop", "crash"))
        if action == "apply":
            await life.apply(config(tid, token=f"{tid}:aaa"))
        elif action == "rotate":
            await life.apply(config(tid, token=f"{tid}:{rng.choice('bcd') * 3}", config_version=rng.randint(2, 9)))
        elif action == "lock":
            held[tid] = 1000 + tid
        elif action == "unlock":
            held.pop(tid, None)
        elif action == "reconcile":
            life.reconcile(dict(held))
        elif action == "stop":
            await life.stop_tenant(tid)
        elif (slot := life.slots.get(tid)) is not None and slot.runtime is not None:
            crashy.add(tid)
            slot.runtime.report_failure(RuntimeError("boom"))
        await _watch(life, 0.02, mismatches)
        assert not mismatches, f"after {action} of tenant {tid}: {mismatches[0]}"
    crashy.clear()
    await life.stop_all(drain_timeout=1)
    assert _same(life.census(), _fresh(life)) and not life.slots


async def test_at_rest_the_census_is_not_recounted_and_reconcile_does_nothing() -> None:
    held = {1: 1001, 2: 1002}
    life = make(held)
    for tid in (1, 2, 3):
        await life.apply(config(tid, token=f"{tid}:aaa"))
    await wait_until(lambda: life.counts() == {"standby": 3}, timeout=2, what="three slots in standby")
    life.reconcile(held)
    await wait_until(lambda: life.counts() == {"active": 2, "standby": 1}, timeout=2, what="two active")
    life.reconcile(held)  # the step-ups' ends are looked at once more
    census, version = life.census(), life.version
    for _ in range(5):
        life.reconcile(dict(held))
        assert life.census() is census, "recounted with nothing changed"
    assert life.version == version and not [s for s in life.slots.values() if s.pending and not s.pending.done()]
    assert dict(life.active()) == {tid: life.slots[tid].runtime for tid in (1, 2)}
    assert dict(life.wanted_locks()) == {1: 1001, 2: 1002, 3: 1003}
    await life.stop_all(drain_timeout=1)


async def test_a_step_up_that_came_to_nothing_is_tried_again_with_the_same_locks() -> None:
    """The lock is in `held`, but this process could not confirm it while Telegram answered the
    activation, so the slot stayed in standby. The next reconcile, with the very same `held`, must try
    again: the finished step counts as a change even though no state changed."""
    confirm = {"held": False}
    life = Lifecycle(
        lambda c: StandInRuntime(c),  # type: ignore[arg-type,return-value]
        lambda *_: asyncio.sleep(0),
        lambda: None,
        lambda _tid, _key: confirm["held"],
    )
    await life.apply(config(1))
    await wait_until(lambda: life.slots[1].state == State.STANDBY, timeout=2, what="standby")
    held = {1: 1001}
    life.reconcile(held)
    slot = life.slots[1]
    await wait_until(lambda: slot.pending is not None and slot.pending.done(), timeout=2, what="the step up ended")
    await asyncio.sleep(0)  # its done-callback
    assert slot.state == State.STANDBY
    confirm["held"] = True
    life.reconcile(held)
    await wait_until(lambda: slot.state == State.ACTIVE, timeout=2, what="active on the second try")
    await life.stop_all(drain_timeout=1)
