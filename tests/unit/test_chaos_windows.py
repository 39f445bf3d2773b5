"""The chaos harness's one exception to "one reply per message" and "one outcome per generation": a
duplicate of a message sent while the replica serving its tenant was killed or cut off from Telegram (the
at-least-once window the README states). Any other duplicate still counts."""

from __future__ import annotations

from bench.chaos.invariants import Step, known_windows


def test_windows_cover_only_the_tenants_of_the_faulted_replica_and_only_around_the_fault() -> None:
    steps = [
        Step(10.0, "sigkill", "r1", "SIGKILL", touched=frozenset({"a"})),
        Step(20.0, "telegram_cut", "r2", "cut (blackhole)", touched=frozenset({"b"})),
        Step(21.0, "telegram_cut", "r3", "cut (refuse)", touched=frozenset({"c"})),
        Step(28.0, "telegram_cut", "r2", "restored", touched=None),
        Step(30.0, "sigterm", "r1", "SIGTERM", touched=frozenset({"a"})),
        Step(40.0, "sigkill", "r3", "SIGKILL", touched=frozenset({"d"}), error="no such process"),
    ]
    # A refused link: only what was in flight at the cut (its answer lost); a blackhole: until restored.
    assert known_windows(steps) == {"a": [(0.0, 12.0)], "b": [(10.0, 30.0)], "c": [(11.0, 23.0)]}
