"""Simulated users: chat users sending /start and /balance, and shoppers walking a paid generation.

Every user sends through the fake Telegram's user side with its tenant's current token (a rotation
changes it under them) and waits, bounded, for the answer before its next message, like a person.
Replies are never matched by timing: at any moment a user's transcript is counted per kind (menus for
/start, balance screens for /balance, outcomes for generations) and compared with what it sent. That
makes "exactly one reply" exact whatever the delays, and a late reply is still seen at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.chaos.cluster import Cluster, Tenant
from sandbox.telegram.model import ControlError, TranscriptEntry

MENU = "Выберите, что создать"
BALANCE = "💰 Баланс:"
UNAVAILABLE = "Сервис временно недоступен"
GENERIC_ERROR = "Что-то пошло не так"
PRICE_CHANGED = "Цена изменилась"
MODEL = "google/imagen4-fast"
REPLY_WAIT_S = 12.0
OUTCOME_WAIT_S = 60.0
COMMANDS = {"start": ("/start", MENU), "balance": ("/balance", BALANCE)}


def _text(entry: TranscriptEntry) -> str:
    return entry.text or entry.caption or ""


def is_outcome(entry: TranscriptEntry) -> bool:
    """A generation's result (the photo) or its failure message: exactly one per Generate press."""
    return entry.from_bot and (entry.media_kind == "photo" or _text(entry).startswith("❌"))


@dataclass
class Sent:
    kind: str
    """"start" or "balance" (a chat user's command), or "outcome" (a shopper pressed Generate)."""
    at: float
    replied: bool = False
    excused: bool = False
    """Still open when its tenant was removed, so its answer may be gone with the tenant's data."""


@dataclass
class User:
    tenant: Tenant
    user_id: int
    sent: list[Sent] = field(default_factory=list)
    aborted: int = 0

    def transcript(self, cluster: Cluster) -> list[TranscriptEntry]:
        try:
            return cluster.stack.telegram.transcript(self.tenant.token, self.user_id)
        except ControlError:  # the token is being rotated this very moment
            return []

    def counts(self, cluster: Cluster) -> dict[str, int]:
        """Bot messages per kind in the chat: menus, balance screens, outcomes, error notices."""
        found = {"start": 0, "balance": 0, "outcome": 0, "notice": 0}
        for entry in self.transcript(cluster):
            if not entry.from_bot:
                continue
            text = _text(entry)
            if MENU in text:
                found["start"] += 1
            elif text.startswith(BALANCE):
                found["balance"] += 1
            elif is_outcome(entry):
                found["outcome"] += 1
            elif UNAVAILABLE in text or GENERIC_ERROR in text:
                found["notice"] += 1
        return found

    def refresh(self, cluster: Cluster) -> None:
        """Mark sent messages as replied, oldest first per kind, from the transcript's counts."""
        counts = self.counts(cluster)
        for kind in {s.kind for s in self.sent}:
            for sent in [s for s in self.sent if s.kind == kind][: counts.get(kind, 0)]:
                sent.replied = True

    def unanswered(self) -> list[Sent]:
        return [s for s in self.sent if not s.replied and not s.excused]


class Traffic:
    """Runs the users until `stop()`; every loop is paced and bounded."""

    def __init__(self, cluster: Cluster, now: Callable[[], float], seed: int, *, shoppers_every: int = 3) -> None:
        self.cluster = cluster
        self.now = now
        self.rng = random.Random(seed ^ 0x5EED)
        tenants = sorted(cluster.tenants.values(), key=lambda t: t.slug)
        self.chatters = [User(t, 7_800_000 + i) for i, t in enumerate(tenants)]
        self.shoppers = [User(t, 7_900_000 + i) for i, t in enumerate(tenants) if i % shoppers_every == 0]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def users(self) -> list[User]:
        return self.chatters + self.shoppers

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._chat(u, random.Random(self.rng.random()))) for u in self.chatters]
        self._tasks += [asyncio.create_task(self._shop(u, random.Random(self.rng.random()))) for u in self.shoppers]

    def stop(self) -> None:
        self._stop.set()

    def settled(self) -> bool:
        """Every message answered and every Generate press with its outcome (or excused)."""
        for user in self.users:
            user.refresh(self.cluster)
        return not any(u.unanswered() for u in self.users)

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def excuse(self, slug: str) -> None:
        """The tenant is being removed: what its users still wait for may be gone with its data."""
        for user in self.users:
            if user.tenant.slug == slug:
                user.refresh(self.cluster)
                for sent in user.sent:
                    sent.excused = sent.excused or not sent.replied

    # --- the loops -------------------------------------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _chat(self, user: User, rng: random.Random) -> None:
        telegram = self.cluster.stack.telegram
        await self._pause(rng.uniform(0, 3))
        while not self._stop.is_set():
            if user.tenant.status == "removed":
                await self._pause(1.0)
                continue
            kind = rng.choice(("start", "balance"))
            text, needle = COMMANDS[kind]
            try:
                update = await telegram.send_text(user.tenant.token, user.user_id, text)
            except ControlError:
                await self._pause(0.2)  # rotated between reading the token and sending
                continue
            user.sent.append(Sent(kind, self.now()))
            with contextlib.suppress(TimeoutError, ControlError):
                await self._wait(user, _containing(needle), after=update.message_id or 0)
            user.refresh(self.cluster)
            await self._pause(rng.uniform(1.5, 4.0))

    async def _shop(self, user: User, rng: random.Random) -> None:
        """/start, pick the model, prompt, skip, Generate; then wait for the one outcome."""
        await self._pause(rng.uniform(0, 4))
        while not self._stop.is_set():
            if user.tenant.status != "enabled":
                await self._pause(1.0)
                continue
            try:
                await self._generate(user, rng)
            except (TimeoutError, ControlError, LookupError):
                user.aborted += 1
            await self._pause(rng.uniform(2.0, 5.0))

    async def _generate(self, user: User, rng: random.Random) -> None:
        telegram = self.cluster.stack.telegram
        tenant = user.tenant
        update = await telegram.send_text(tenant.token, user.user_id, "/start")
        menu = await self._wait(user, lambda e: MENU in _text(e), after=update.message_id or 0)
        await telegram.press_button(tenant.token, user.user_id, menu.message_id, f"md:{MODEL}:1", force=True)
        await self._wait(user, lambda e: "Шаг 1/2" in _text(e), after=menu.message_id - 1)
        update = await telegram.send_text(tenant.token, user.user_id, f"chaos fox {rng.randrange(10**6)}")
        step2 = await self._wait(user, lambda e: "Шаг 2/2" in _text(e), after=update.message_id or 0)
        await telegram.press_button(tenant.token, user.user_id, step2.message_id, _button(step2, "Пропустить"))
        confirm = await self._wait(user, lambda e: "Цена" in _text(e), after=step2.message_id - 1)
        generate = _button(confirm, "Сгенерировать")
        if self._stop.is_set():
            return
        await telegram.press_button(tenant.token, user.user_id, confirm.message_id, generate)
        # A press while the tenant is being removed (the user was mid-wizard) goes with its data, as
        # everything its users still waited for when the removal began.
        pressed = Sent("outcome", self.now(), excused=tenant.status == "removed")
        user.sent.append(pressed)
        with contextlib.suppress(TimeoutError):
            found = await self._wait(
                user,
                lambda e: is_outcome(e) or PRICE_CHANGED in _text(e),
                after=confirm.message_id - 1,
                timeout=OUTCOME_WAIT_S,
            )
            if PRICE_CHANGED in _text(found):
                user.sent.remove(pressed)  # a markup change: the bot asks again instead of generating
        user.refresh(self.cluster)

    async def _wait(
        self, user: User, predicate: Callable[[TranscriptEntry], bool], *, after: int, timeout: float = REPLY_WAIT_S
    ) -> TranscriptEntry:
        return await self.cluster.stack.telegram.wait_for_bot_message(
            user.tenant.token, user.user_id, predicate=predicate, after_message_id=after, timeout=timeout
        )


def _containing(needle: str) -> Callable[[TranscriptEntry], bool]:
    return lambda entry: needle in _text(entry)


def _button(entry: TranscriptEntry, label: str) -> str:
    rows = (entry.reply_markup or {}).get("inline_keyboard") or []
    for row in rows:
        for button in row:
            if label in button.get("text", ""):
                return str(button.get("callback_data", ""))
    raise LookupError(f"no button {label!r} on message {entry.message_id}")
