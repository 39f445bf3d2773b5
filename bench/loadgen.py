"""A bounded webhook load generator: posts `/start` updates straight to `POST /webhook/<slug>`.

Each shot posts one update (unique update_id, the bot's secret header) for one user, then waits until
the bot's reply is stored at the fake Telegram. A user has at most one update in flight, so after the
run each shot is matched to the first reply the fake recorded for that chat after the POST began
(`ApiCall.at`, stamped when the request reaches the fake): that is the latency reported. The POST
round trip and the moment the waiter saw the reply are kept too.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import itertools
import json
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.common import median, percentile, rounded
from sandbox.telegram.model import TranscriptEntry
from sandbox.telegram.server import FakeTelegram

MENU_NEEDLE = "Выберите, что создать"
_update_ids = itertools.count(50_000_000)


@dataclass(frozen=True)
class Endpoint:
    slug: str
    token: str
    secret: str


@dataclass
class User:
    endpoint: Endpoint
    user_id: int
    cursor: int = 0  # last bot message id already seen in this chat


@dataclass
class Shot:
    token: str
    user_id: int
    wall_start: float  # time.time() when the POST began, comparable with ApiCall.at
    post_s: float
    status: int
    seen_s: float | None = None  # when the waiter saw the reply (includes the bench's own scheduling)
    reply_s: float | None = None  # when the reply reached the fake (filled by match_replies)
    error: str | None = None
    port: int = 0


def start_update(update_id: int, user_id: int) -> bytes:
    message = {
        "message_id": update_id % 2_000_000_000,
        "date": int(time.time()),
        "chat": {"id": user_id, "type": "private", "first_name": "Bench"},
        "from": {"id": user_id, "is_bot": False, "first_name": "Bench", "language_code": "ru"},
        "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    }
    return json.dumps({"update_id": update_id, "message": message}).encode()


def is_menu(entry: TranscriptEntry) -> bool:
    return MENU_NEEDLE in (entry.text or "")


class LoadGen:
    def __init__(self, telegram: FakeTelegram, *, reply_timeout: float = 10.0) -> None:
        self.telegram = telegram
        self.reply_timeout = reply_timeout

    async def shot(
        self, session: aiohttp.ClientSession, port: int, user: User, *, update_id: int | None = None
    ) -> Shot:
        """One update, posted and waited for; never raises."""
        update_id = next(_update_ids) if update_id is None else update_id
        endpoint = user.endpoint
        headers = {"X-Telegram-Bot-Api-Secret-Token": endpoint.secret, "Content-Type": "application/json"}
        body = start_update(update_id, user.user_id)
        wall = time.time()
        started = time.perf_counter()
        shot = Shot(endpoint.token, user.user_id, wall, 0.0, 0, port=port)
        try:
            async with session.post(
                f"http://127.0.0.1:{port}/webhook/{endpoint.slug}", data=body, headers=headers
            ) as response:
                await response.read()
                shot.status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            shot.error = type(exc).__name__
        shot.post_s = time.perf_counter() - started
        if shot.status != 200:
            shot.error = shot.error or f"HTTP {shot.status}"
            return shot
        try:
            entry = await self.telegram.wait_for_bot_message(
                endpoint.token,
                user.user_id,
                predicate=is_menu,
                after_message_id=user.cursor,
                timeout=self.reply_timeout,
            )
        except TimeoutError:
            shot.error = "no reply"
            return shot
        user.cursor = entry.message_id
        shot.seen_s = time.perf_counter() - started
        return shot


def session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=30),
    )


@dataclass
class Phase:
    name: str
    shots: list[Shot] = field(default_factory=list)
    elapsed_s: float = 0.0
    dropped: int = 0  # open loop: no free user at the scheduled time
    lag_s: list[float] = field(default_factory=list)  # open loop: scheduling lag of the generator

    @property
    def ok(self) -> list[Shot]:
        return [s for s in self.shots if s.error is None]

    def throughput(self) -> float | None:
        return len(self.ok) / self.elapsed_s if self.elapsed_s > 0 else None

    def latencies(self) -> list[float]:
        return [s.reply_s for s in self.ok if s.reply_s is not None]

    def summary(self) -> dict[str, Any]:
        lat = self.latencies()
        errors: dict[str, int] = {}
        for s in self.shots:
            if s.error is not None:
                errors[s.error] = errors.get(s.error, 0) + 1
        return {
            "sent": len(self.shots),
            "ok": len(self.ok),
            "errors": errors,
            "dropped": self.dropped,
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_per_s": rounded(self.throughput(), 1),
            "reply_p50_ms": rounded(_ms(percentile(lat, 50)), 2),
            "reply_p90_ms": rounded(_ms(percentile(lat, 90)), 2),
            "reply_p99_ms": rounded(_ms(percentile(lat, 99)), 2),
            "reply_max_ms": rounded(_ms(max(lat, default=0.0)), 2),
            "post_p50_ms": rounded(_ms(median([s.post_s for s in self.ok])), 2),
            "post_p99_ms": rounded(_ms(percentile([s.post_s for s in self.ok], 99)), 2),
            "seen_p99_ms": rounded(_ms(percentile([s.seen_s for s in self.ok if s.seen_s is not None], 99)), 2),
            "unmatched": sum(1 for s in self.ok if s.reply_s is None),
            "generator_lag_p99_ms": rounded(_ms(percentile(self.lag_s, 99)), 2) if self.lag_s else None,
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


async def closed_loop(
    gen: LoadGen, port: int, users: Sequence[User], *, concurrency: int, count: int, seconds: float, name: str
) -> Phase:
    """`concurrency` senders, each owning a disjoint slice of users, until `count` shots or `seconds`."""
    await _settle()
    phase = Phase(name)
    remaining = count
    deadline = time.perf_counter() + seconds
    slices = [list(users[i::concurrency]) for i in range(concurrency)]

    async def sender(mine: list[User]) -> None:
        nonlocal remaining
        for user in itertools.cycle(mine):
            if remaining <= 0 or time.perf_counter() >= deadline:
                return
            remaining -= 1
            phase.shots.append(await gen.shot(client, port, user))

    async with session(concurrency) as client:
        started = time.perf_counter()
        await asyncio.gather(*(sender(mine) for mine in slices if mine))
        phase.elapsed_s = time.perf_counter() - started
    match_replies(gen.telegram, phase.shots)
    return phase


async def open_loop(gen: LoadGen, port: int, users: Iterable[User], *, rate: float, seconds: float, name: str) -> Phase:
    """A fixed arrival rate whatever the replies do (no coordinated omission), for `seconds`."""
    await _settle()
    phase = Phase(name)
    free = deque(users)
    total = int(rate * seconds)
    tasks: set[asyncio.Task[None]] = set()

    async def fire(user: User) -> None:
        try:
            phase.shots.append(await gen.shot(client, port, user))
        finally:
            free.append(user)

    async with session(512) as client:
        started = time.perf_counter()
        for index in range(total):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            phase.lag_s.append(max(0.0, time.perf_counter() - due))
            if not free:
                phase.dropped += 1
                continue
            task = asyncio.create_task(fire(free.popleft()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(list(tasks), timeout=gen.reply_timeout + 5)
        phase.elapsed_s = time.perf_counter() - started
    match_replies(gen.telegram, phase.shots)
    return phase


async def _settle() -> None:
    """Start each measured phase from a quiet bench process: no garbage left to collect mid-run."""
    gc.collect()
    await asyncio.sleep(0.5)


def match_replies(telegram: FakeTelegram, shots: Sequence[Shot]) -> None:
    """Set each shot's reply_s from the fake's call log: first menu sendMessage to the chat after the POST."""
    by_token: dict[str, list[Shot]] = {}
    for shot in shots:
        if shot.error is None:
            by_token.setdefault(shot.token, []).append(shot)
    for token, mine in by_token.items():
        times: dict[int, list[float]] = {}
        for call in telegram.calls(token, "sendMessage"):
            if MENU_NEEDLE in str(call.params.get("text", "")):
                chat = int(str(call.params.get("chat_id", 0)))
                times.setdefault(chat, []).append(call.at)
        for chat_times in times.values():
            chat_times.sort()
        for shot in mine:
            chat_times = times.get(shot.user_id, [])
            index = bisect.bisect_left(chat_times, shot.wall_start)
            if index < len(chat_times):
                shot.reply_s = chat_times[index] - shot.wall_start


async def planned_closed(
    gen: LoadGen, port: int, users: list[User], plan: dict[str, Any], *, warmup: bool = False
) -> Phase:
    """The webhook figure's closed loop as its plan says (senders, count, time); `warmup`: one unmeasured
    pass over every user instead."""
    return await closed_loop(
        gen,
        port,
        users,
        concurrency=plan["concurrency"],
        count=len(users) if warmup else plan["count"],
        seconds=plan["closed_s"],
        name="warmup" if warmup else "closed",
    )
