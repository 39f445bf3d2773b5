"""The lease fence, against the fake Telegram over real HTTP. Invariant: while the process cannot
confirm its locks, nothing done for a held tenant reaches Telegram (a frozen replica that wakes up
answers nobody a second time), and nothing else is held back."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiogram import Bot

from sandbox.telegram.server import FakeTelegram
from tenant_runtime.telegram.fence import Lease, LeaseFence, LeaseLapsed, owned_work
from tenant_runtime.telegram.reachability import FAILURES_TO_GIVE_UP, Reachability
from tenant_runtime.telegram.session import build_session
from tests.helpers import fake_chat

USER = 5151
_bots = itertools.count(762_000_001)


@dataclass
class Locker:
    """What the locker says: confirmed on its last beat, and how often it stepped down."""

    confirmed: bool = True
    epoch: int = 0

    def lease(self) -> Lease:
        return Lease(confirmed=lambda: self.confirmed, epoch=lambda: self.epoch)


@dataclass
class Setup:
    fake: FakeTelegram
    token: str
    bot: Bot
    locker: Locker
    reach: Reachability


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    token = f"{next(_bots)}:AAfake-fence"
    async with fake_chat(token, USER) as fake:
        session = build_session(fake.base_url, limit=4)
        reach = Reachability()
        session.middleware(reach)
        session.middleware(LeaseFence())
        try:
            yield Setup(fake, token, Bot(token, session=session), Locker(), reach)
        finally:
            await session.close()


async def test_owned_work_reaches_telegram_only_while_the_lease_is_confirmed(setup: Setup) -> None:
    with owned_work(setup.locker.lease()):
        await setup.bot.send_message(USER, "answered while confirmed")
        setup.locker.confirmed = False
        for _ in range(FAILURES_TO_GIVE_UP):
            with pytest.raises(LeaseLapsed):
                await setup.bot.send_message(USER, "a frozen replica's late answer")
    assert [c.params.get("text") for c in setup.fake.calls(setup.token, "sendMessage")] == ["answered while confirmed"]
    assert setup.reach.reachable, "a call never sent says nothing about the path to Telegram"


async def test_work_begun_before_a_step_down_stays_refused_after_the_locker_is_back(setup: Setup) -> None:
    # Frozen mid-handler, fenced by the peers, woken: the locker reconnects and confirms a new session
    # before the old handler resumes. What that handler was doing belongs to the old session.
    with owned_work(setup.locker.lease()):
        setup.locker.epoch += 1  # the step-down
        with pytest.raises(LeaseLapsed):
            await setup.bot.send_message(USER, "the old handler's late answer")
    with owned_work(setup.locker.lease()):  # work begun under the new session goes out
        await setup.bot.send_message(USER, "a new update's answer")
    assert [c.params.get("text") for c in setup.fake.calls(setup.token, "sendMessage")] == ["a new update's answer"]


async def test_work_outside_a_held_tenant_is_never_held_back(setup: Setup) -> None:
    setup.locker.confirmed = False
    await setup.bot.get_me()  # a standby runtime checking its token
    await setup.bot.send_message(USER, "the service is unavailable")  # a database outage notice
    assert len(setup.fake.calls(setup.token, "sendMessage")) == 1
