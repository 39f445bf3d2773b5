"""The publisher's view of the slots: at rest it allocates nothing per slot (10,000 fresh reports every
tick kept the garbage collector's full passes coming), and it never shows a stale state."""

from __future__ import annotations

from collections import Counter

from supervisor.publish import SlotReport, SlotReports
from supervisor.slot_state import State
from tests.helpers import wait_until
from tests.unit.test_lifecycle import config, make


async def test_reports_are_reused_at_rest_and_rebuilt_on_every_change() -> None:
    held: dict[int, int] = {}
    life = make(held)
    for tid in (1, 2, 3):
        await life.apply(config(tid, token=f"{tid}:aaa"))
    await wait_until(lambda: life.counts() == {"standby": 3}, timeout=2, what="three slots in standby")
    reports = SlotReports(life)
    first = reports()
    assert first == {tid: SlotReport(State.STANDBY, None) for tid in (1, 2, 3)}
    again = reports()
    assert all(again[tid] is first[tid] for tid in first), "an unchanged slot's report was rebuilt"

    held[2] = 1002
    life.reconcile(held)
    await wait_until(lambda: life.slots[2].state == State.ACTIVE, timeout=2, what="tenant 2 active")
    life.slots[3].last_error = "TelegramServerError: Bad Gateway"
    await life.stop_tenant(1)
    now = reports()
    assert now == {2: SlotReport(State.ACTIVE, None), 3: SlotReport(State.STANDBY, "TelegramServerError: Bad Gateway")}
    assert (
        life.counts() == dict(Counter(slot.state.value for slot in life.slots.values())) == {"active": 1, "standby": 1}
    )
    await life.stop_all(drain_timeout=1)
