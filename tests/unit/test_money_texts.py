"""Money messages are worded from the job's ledger state: one wording per state, in both languages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenant_runtime.billing.job_money import JobMoney, MoneyState, state_of
from tenant_runtime.billing.ledger import HoldStatus
from tenant_runtime.config import Language
from tenant_runtime.telegram.money_texts import money_line

EXPECTED: dict[tuple[MoneyState, Language], str] = {
    (MoneyState.NOTHING, "ru"): "С вас ничего не списано · Баланс 494,80 ₽",
    (
        MoneyState.HELD,
        "ru",
    ): "Зарезервировано 5,20 ₽: спишется, только если генерация удастся, иначе вернётся на баланс.",
    (MoneyState.CHARGED, "ru"): "Списано 5,20 ₽ · Баланс 494,80 ₽",
    (MoneyState.RETURNED, "ru"): "5,20 ₽ возвращено на баланс · Баланс 494,80 ₽",
    (MoneyState.WAIVED, "ru"): (
        "Не списано: резерв 5,20 ₽ истёк до результата, а на балансе не хватало средств · Баланс 494,80 ₽"
    ),
    (MoneyState.NOTHING, "en"): "Nothing was charged · Balance ₽494.80",
    (MoneyState.HELD, "en"): (
        "₽5.20 is reserved: it is charged only if the generation succeeds, otherwise it returns to your balance."
    ),
    (MoneyState.CHARGED, "en"): "Charged ₽5.20 · Balance ₽494.80",
    (MoneyState.RETURNED, "en"): "₽5.20 returned to your balance · Balance ₽494.80",
    (MoneyState.WAIVED, "en"): (
        "Not charged: the ₽5.20 reserve expired before the result and the balance was short · Balance ₽494.80"
    ),
}


@pytest.mark.parametrize(("state", "lang"), sorted(EXPECTED))
def test_each_state_has_its_own_true_wording(state: MoneyState, lang: Language) -> None:
    money = JobMoney(state, 520 if state != MoneyState.NOTHING else 0, 49480, 0, "RUB")
    assert money_line(lang, money) == EXPECTED[(state, lang)]


def test_every_state_is_worded() -> None:
    assert {state for state, _ in EXPECTED} == set(MoneyState)


def test_no_wording_claims_nothing_was_charged_unless_nothing_was() -> None:
    for (state, lang), line in EXPECTED.items():
        said_nothing = "ничего не списано" in line or "Nothing was charged" in line
        assert said_nothing == (state == MoneyState.NOTHING), (state, lang)


STATUSES: tuple[HoldStatus, ...] = ("pending", "committed", "released", "expired")
holds = st.lists(st.tuples(st.sampled_from(STATUSES), st.integers(min_value=1, max_value=10**9)), max_size=2)


@given(holds, st.booleans())
def test_state_follows_the_holds(found: list[tuple[HoldStatus, int]], succeeded: bool) -> None:
    state, amount = state_of(found, succeeded=succeeded)
    statuses = {status for status, _ in found}
    if "committed" in statuses:
        assert state == MoneyState.CHARGED
        assert amount == sum(a for s, a in found if s == "committed")
    elif "pending" in statuses:
        assert state == MoneyState.HELD
    elif statuses:
        assert state == (MoneyState.WAIVED if succeeded else MoneyState.RETURNED)
    else:
        assert (state, amount) == (MoneyState.NOTHING, 0)
    assert (amount > 0) == (state != MoneyState.NOTHING)
