"""Whether the process can reach Telegram: only network failures in a row count; any answer from
Telegram (a 5xx or 4xx for one bot) proves the path works."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiogram.exceptions import TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError
from aiogram.methods import GetMe

from tenant_runtime.telegram.reachability import FAILURES_TO_GIVE_UP, Reachability


def _raising(exc: Exception) -> Any:
    async def make_request(_bot: Any, _method: Any) -> Any:
        raise exc

    return make_request


async def _call(reach: Reachability, exc: Exception | None) -> None:
    async def ok(_bot: Any, _method: Any) -> str:
        return "ok"

    if exc is None:
        await reach(ok, None, GetMe())  # type: ignore[arg-type]
        return
    with pytest.raises(type(exc)):
        await reach(_raising(exc), None, GetMe())  # type: ignore[arg-type]


async def test_network_failures_in_a_row_make_the_process_unable_and_a_success_able_again() -> None:
    reach = Reachability()
    for _ in range(FAILURES_TO_GIVE_UP):
        assert reach.reachable
        await _call(reach, TelegramNetworkError(GetMe(), "refused"))
    assert not reach.reachable
    await _call(reach, None)
    assert reach.reachable


@pytest.mark.parametrize(
    "answer", [TelegramServerError(GetMe(), "Bad Gateway"), TelegramUnauthorizedError(GetMe(), "Unauthorized")]
)
async def test_one_bots_error_answers_never_make_the_process_unable(answer: Exception) -> None:
    reach = Reachability()
    for _ in range(FAILURES_TO_GIVE_UP * 3):
        await _call(reach, answer)
    assert reach.reachable
    # ...and they prove the path works: network failures start counting again from zero.
    for _ in range(FAILURES_TO_GIVE_UP - 1):
        await _call(reach, TelegramNetworkError(GetMe(), "reset"))
    await _call(reach, answer)
    await _call(reach, TelegramNetworkError(GetMe(), "reset"))
    assert reach.reachable


async def test_a_question_left_unanswered_makes_the_process_unable_at_once() -> None:
    """A blackholed path fails no call before its timeout: one unanswered probe is enough."""
    changes: list[bool] = []
    reach = Reachability(on_change=lambda: changes.append(reach.reachable))
    asked_at = time.monotonic()
    reach.unanswered(asked_at)
    assert not reach.reachable
    assert changes == [False]
    await _call(reach, None)
    assert reach.reachable
    assert changes == [False, True]


async def test_an_answer_to_another_call_meanwhile_outweighs_an_unanswered_question() -> None:
    reach = Reachability()
    asked_at = time.monotonic()
    await _call(reach, TelegramServerError(GetMe(), "Bad Gateway"))  # answered after the question went out
    reach.unanswered(asked_at)
    assert reach.reachable
    assert reach.quiet_for() < 1.0
