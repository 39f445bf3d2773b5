"""The one place that words a job's money for its user, from the ledger state read in `job_money`."""

from __future__ import annotations

from tenant_runtime.billing.job_money import JobMoney, MoneyState
from tenant_runtime.billing.pricing import format_money
from tenant_runtime.config import Language
from tenant_runtime.telegram.texts import text

_KEYS: dict[MoneyState, str] = {
    MoneyState.NOTHING: "money.nothing",
    MoneyState.HELD: "money.held",
    MoneyState.CHARGED: "money.charged",
    MoneyState.RETURNED: "money.returned",
    MoneyState.WAIVED: "money.waived",
}


def money_line(lang: Language, money: JobMoney) -> str:
    """What happened to the job's money and the balance now, e.g. "Списано 5,20 ₽ · Баланс 494,80 ₽"."""
    return text(
        lang,
        _KEYS[money.state],
        amount=format_money(money.amount, money.currency, lang),
        balance=format_money(money.available, money.currency, lang),
    )
