"""What the driver can see: the fake Telegram's view of every Bot API request (who polls, who sets the
webhook) and each replica's own view (`/health`, `/status.json`).

`TelegramWatch` is an observer of the fake Telegram. Each request is attributed to the replica whose
`TelegramLink` opened the connection, so it sees exactly what Telegram would see: two processes polling
one bot (a getUpdates arriving while another replica's is still waiting; Telegram answers 409 Conflict)
or two processes fighting over one bot's webhook (it flips to the other and back within seconds).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from bench.chaos.cluster import OPERATOR_TOKEN, Cluster, Replica
from bench.common import get_json
from sandbox.telegram.model import ApiObservation

WEBHOOK_FIGHT_S = 1.0
FREEZE_WINDOW_S = 0.3  # after a SIGCONT, one event-loop turn of a starved process, with room
RECENT_POLL_S = 3.0


@dataclass(frozen=True)
class Caller:
    replica: str | None
    incarnation: int


@dataclass(frozen=True)
class Conflict:
    at: float
    bot_id: int
    kind: str
    detail: str


@dataclass
class _BotCalls:
    polls: dict[int, tuple[ApiObservation, Caller, bool]] = field(default_factory=dict)
    """getUpdates in flight, by id() of the observation; the flag: sent in a freeze window (below)."""
    last_poll_end: dict[str | None, float] = field(default_factory=dict)
    """Replica -> wall time its last getUpdates ended."""
    hooks: deque[tuple[Caller, float, str]] = field(default_factory=lambda: deque(maxlen=3))
    """The last setWebhook/deleteWebhook calls: (caller, wall time, method)."""
    conflicts_409: int = 0


class TelegramWatch:
    def __init__(self, cluster: Cluster, now: Callable[[], float]) -> None:
        self.cluster = cluster
        self.now = now
        self.bots: dict[int, _BotCalls] = {}
        self.conflicts: list[Conflict] = []
        self.unattributed = 0
        self.freeze_window_polls = 0  # two pollers where one was sent as its process resumed: the stated window

    def __call__(self, obs: ApiObservation) -> None:
        method = obs.method.lower()
        if method not in ("getupdates", "setwebhook", "deletewebhook"):
            return
        bot_id = _bot_id(obs.token)
        if bot_id is None:
            return
        calls = self.bots.setdefault(bot_id, _BotCalls())
        if obs.ended is not None:
            entry = calls.polls.pop(id(obs), None)
            if entry is not None:
                calls.last_poll_end[entry[1].replica] = obs.ended
                calls.conflicts_409 += obs.status == 409
            return
        caller = self._caller(obs.peer_port)
        if method == "getupdates":
            in_window = self._just_resumed(caller, obs.started)
            for _, other, other_in_window in calls.polls.values():
                if other.replica != caller.replica and self._acting(other):
                    if in_window or other_in_window:
                        self.freeze_window_polls += 1
                        continue
                    self._conflict(bot_id, "two pollers", f"{caller.replica} polled while {other.replica} polled")
            calls.polls[id(obs)] = (obs, caller, in_window)
            return
        # A fight is the webhook flipping back: X, then Y, then X again, each within WEBHOOK_FIGHT_S. One
        # hand-over (Y within a second of X) is not: the fair share moves a tenant that fast, and two
        # processes that both merely think they own it show as I1 (active in two processes).
        calls.hooks.append((caller, obs.started, obs.method))
        if len(calls.hooks) == calls.hooks.maxlen:
            (first, first_at, first_method), (second, second_at, _), (third, third_at, third_method) = calls.hooks
            if (
                first.replica == third.replica != second.replica
                and second_at - first_at < WEBHOOK_FIGHT_S
                and third_at - second_at < WEBHOOK_FIGHT_S
                and self._acting(second)
                and self._acting(third)
            ):
                self._conflict(
                    bot_id,
                    "webhook fight",
                    f"{first.replica} {first_method}, {second.replica} {second_at - first_at:.2f}s later, "
                    f"{third.replica} {third_method} again {third_at - second_at:.2f}s after that",
                )

    def _caller(self, port: int) -> Caller:
        name = self.cluster.replica_of_port(port)
        if name is None:
            self.unattributed += 1
            return Caller(None, 0)
        return Caller(name, self.cluster.replicas[name].incarnation)

    def _just_resumed(self, caller: Caller, at: float) -> bool:
        """Sent within FREEZE_WINDOW_S of the caller's SIGCONT: a call that passed its lock check in the
        instant before the freeze goes out as the process resumes (the check cannot be atomic with the
        write; README, "what it does not guarantee"). A poll begun after waking is refused by the stall
        rule within the same window (`tests/db/test_locks.py` guards that rule)."""
        replica = self.cluster.replicas.get(caller.replica or "")
        return replica is not None and 0 <= at - replica.thawed_at < FREEZE_WINDOW_S

    def _acting(self, caller: Caller) -> bool:
        """Still the same live, unfrozen process: a dead or frozen one's leftover request is no rival."""
        replica = self.cluster.replicas.get(caller.replica or "")
        return (
            replica is not None and replica.incarnation == caller.incarnation and replica.running and not replica.frozen
        )

    def _conflict(self, bot_id: int, kind: str, detail: str) -> None:
        self.conflicts.append(Conflict(self.now(), bot_id, kind, detail))

    def take_conflicts(self) -> list[Conflict]:
        found, self.conflicts = self.conflicts, []
        return found

    def shift(self, seconds: float) -> None:
        """Re-time what was seen so far by `-seconds`: the clock restarts at the chaos phase, so what
        happened during setup and warm-up gets negative times."""
        self.conflicts = [replace(c, at=c.at - seconds) for c in self.conflicts]

    def polled_recently(self, bot_id: int, replica: str) -> bool:
        """Is `replica` polling this bot: a getUpdates in flight, or one that ended a moment ago."""
        calls = self.bots.get(bot_id)
        if calls is None:
            return False
        if any(caller.replica == replica for _, caller, _ in calls.polls.values()):
            return True
        return time.time() - calls.last_poll_end.get(replica, 0.0) < RECENT_POLL_S

    def conflict_answers(self) -> int:
        return sum(c.conflicts_409 for c in self.bots.values())


def _bot_id(token: str) -> int | None:
    head = token.split(":", 1)[0]
    return int(head) if head.isdigit() else None


# --- replicas' own view ------------------------------------------------------------------------------


@dataclass
class ReplicaView:
    """One poll of a replica: None fields mean it did not answer in time."""

    health: dict[str, Any] | None
    status: dict[str, Any] | None

    def tenants(self) -> dict[str, dict[str, Any]]:
        rows = (self.status or {}).get("tenants") or []
        return {row["slug"]: row for row in rows if isinstance(row, dict) and "slug" in row}

    def state(self, slug: str) -> str | None:
        row = self.tenants().get(slug)
        return None if row is None else str(row.get("state"))

    def active(self) -> set[str]:
        return {slug for slug, row in self.tenants().items() if row.get("state") == "active"}


class Poller:
    """Fetches /health and /status.json of every running replica, concurrently, with short timeouts."""

    def __init__(self, timeout: float = 1.5) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        self._auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}

    async def close(self) -> None:
        await self._session.close()

    async def _get(self, url: str) -> dict[str, Any] | None:
        return await get_json(self._session, url, self._auth)

    async def view(self, replica: Replica) -> ReplicaView:
        health, status = await asyncio.gather(
            self._get(f"{replica.base_url}/health"), self._get(f"{replica.base_url}/status.json")
        )
        return ReplicaView(health, status)

    async def views(self, replicas: list[Replica]) -> dict[str, ReplicaView]:
        running = [r for r in replicas if r.running]
        found = await asyncio.gather(*(self.view(r) for r in running))
        return {r.name: v for r, v in zip(running, found, strict=True)}
