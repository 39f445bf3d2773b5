"""The fault schedule: a pure function of the seed, so a failing run is replayed by its seed alone.

The planner walks a timeline from 0 to the run's length. At each step it draws the gap to the next
event, a kind by weight, its target and its parameters from one `random.Random(seed)`. It keeps its
own model of what is busy (a replica being killed and restarted, a tenant being disabled) so that two
events never fight over one target, at least one replica is always left alone, and every event
(including its undo step: restart, SIGCONT, restore, enable, re-add) ends before the run does.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    KILL = "sigkill"  # SIGKILL, restart after `hold` s
    TERM = "sigterm"  # SIGTERM, wait for the exit, restart after `hold` s
    FREEZE = "sigstop"  # SIGSTOP, SIGCONT after `hold` s; option "lock lost": its lock session is
    # terminated while it is frozen (a paused process whose lease ran out, the classic split brain)
    PG_TERMINATE = "pg_terminate"  # pg_terminate_backend of one session; option: lock | pool | listen
    TELEGRAM_CUT = "telegram_cut"  # the replica's link to Telegram; option: refuse | blackhole
    KIE_HANG = "kie_hang"  # every KIE call hangs `hold` s, for `hold` s
    ROTATE_TOKEN = "rotate_token"  # BotFather revokes the token, then `tenants update --bot-token`
    MODE = "mode"  # `tenants update --mode <option>`
    DISABLE = "disable"  # `tenants disable`, `tenants enable` after `hold` s
    REMOVE = "remove"  # `tenants remove`, `tenants add` again after `hold` s
    MARKUP = "markup"  # `tenants update --markup <option> --name ...`


REPLICA_KINDS = frozenset({Kind.KILL, Kind.TERM, Kind.FREEZE, Kind.PG_TERMINATE, Kind.TELEGRAM_CUT})
TENANT_KINDS = frozenset({Kind.ROTATE_TOKEN, Kind.MODE, Kind.DISABLE, Kind.REMOVE, Kind.MARKUP})

WEIGHTS: Mapping[Kind, float] = {
    Kind.KILL: 2.0,
    Kind.TERM: 1.5,
    Kind.FREEZE: 1.5,
    Kind.PG_TERMINATE: 2.0,
    Kind.TELEGRAM_CUT: 1.5,
    Kind.KIE_HANG: 1.0,
    Kind.ROTATE_TOKEN: 2.0,
    Kind.MODE: 2.0,
    Kind.DISABLE: 1.5,
    Kind.REMOVE: 1.0,
    Kind.MARKUP: 1.5,
}

GAP_S = (2.0, 5.0)
"""Seconds between two events, drawn uniformly."""
HOLD_S: Mapping[Kind, tuple[float, float]] = {
    Kind.KILL: (1.0, 4.0),
    Kind.TERM: (1.0, 4.0),
    Kind.FREEZE: (2.0, 7.0),
    Kind.TELEGRAM_CUT: (5.0, 12.0),
    Kind.KIE_HANG: (6.0, 10.0),
    Kind.DISABLE: (3.0, 8.0),
    Kind.REMOVE: (3.0, 8.0),
}
SETTLE_S: Mapping[Kind, float] = {Kind.KILL: 10.0, Kind.TERM: 25.0}
"""How long the target stays busy after its hold: a SIGTERM drains before exiting, a restart boots."""
DEFAULT_SETTLE_S = 3.0
MARKUPS = ("1.5", "2.0", "2.5", "3.0")


@dataclass(frozen=True)
class Event:
    at: float
    """Seconds after the chaos phase starts."""
    kind: Kind
    target: str
    """A replica name ("r1"), a tenant slug, or "kie"."""
    hold: float = 0.0
    option: str = ""

    def describe(self) -> str:
        extra = [f"hold {self.hold:.1f}s"] if self.hold else []
        extra += [self.option] if self.option else []
        return f"{self.kind.value} {self.target}" + (f" ({', '.join(extra)})" if extra else "")


def plan(seed: int, *, seconds: float, replicas: Sequence[str], tenants: Mapping[str, str]) -> list[Event]:
    """Events for a run of `seconds`; `tenants` maps each slug to its bot mode at the start."""
    rng = random.Random(seed)
    kinds = list(WEIGHTS)
    weights = [WEIGHTS[k] for k in kinds]
    modes = dict(tenants)
    busy: dict[str, float] = {}
    events: list[Event] = []
    at = rng.uniform(1.0, 3.0)
    while at < seconds:
        kind = rng.choices(kinds, weights)[0]
        low, high = HOLD_S.get(kind, (0.0, 0.0))
        hold = round(rng.uniform(low, high), 1) if high else 0.0
        until = at + hold + SETTLE_S.get(kind, DEFAULT_SETTLE_S)
        pool = _candidates(kind, at, busy, replicas, modes)
        if pool and until <= seconds:
            target = rng.choice(pool)
            option = _option(kind, rng, modes.get(target, ""))
            if kind is Kind.MODE:
                modes[target] = option
            busy[target] = until
            events.append(Event(round(at, 1), kind, target, hold, option))
        at += rng.uniform(*GAP_S)
    return events


def _candidates(
    kind: Kind, at: float, busy: Mapping[str, float], replicas: Sequence[str], modes: Mapping[str, str]
) -> list[str]:
    def free(target: str) -> bool:
        return busy.get(target, 0.0) <= at

    if kind in REPLICA_KINDS:
        # Always leave one replica out of any fault, so the invariants have a healthy process to ask for.
        faulted = sum(1 for r in replicas if not free(r))
        return [r for r in replicas if free(r)] if faulted < len(replicas) - 1 else []
    if kind is Kind.KIE_HANG:
        return ["kie"] if free("kie") else []
    return [slug for slug in sorted(modes) if free(slug)]


def _option(kind: Kind, rng: random.Random, mode: str) -> str:
    if kind is Kind.FREEZE:
        return rng.choice(("", "lock lost"))
    if kind is Kind.PG_TERMINATE:
        return rng.choice(("lock", "pool", "listen"))
    if kind is Kind.TELEGRAM_CUT:
        return rng.choice(("refuse", "blackhole"))
    if kind is Kind.MODE:
        return "polling" if mode == "webhook" else "webhook"
    if kind is Kind.MARKUP:
        return rng.choice(MARKUPS)
    return ""
