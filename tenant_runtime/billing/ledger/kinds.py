"""The kinds of ledger movement, and which way each one moves `available` and `held`."""

from __future__ import annotations

from typing import Literal

Kind = Literal[
    "topup",
    "admin_credit",
    "bonus_welcome",
    "bonus_referral",
    "refund_reverted",
    "promo",
    "admin_debit",
    "refund",
    "hold",
    "commit",
    "release",
    "expiry",
]
CreditKind = Literal["admin_credit", "bonus_welcome", "bonus_referral", "promo"]
HoldStatus = Literal["pending", "committed", "released", "expired"]

# (available, held) sign per kind; must match the generated columns in sql/003_billing.sql.
DELTAS: dict[Kind, tuple[int, int]] = {
    "topup": (1, 0),
    "admin_credit": (1, 0),
    "bonus_welcome": (1, 0),
    "bonus_referral": (1, 0),
    "refund_reverted": (1, 0),
    "promo": (1, 0),
    "admin_debit": (-1, 0),
    "refund": (-1, 0),
    "hold": (-1, 1),
    "commit": (0, -1),
    "release": (1, -1),
    "expiry": (1, -1),
}
CREDIT_KINDS: frozenset[str] = frozenset({"admin_credit", "bonus_welcome", "bonus_referral", "promo"})
RESOLVED_STATUS: dict[Kind, HoldStatus] = {"commit": "committed", "release": "released", "expiry": "expired"}
WELCOME_KIND: CreditKind = "bonus_welcome"


def welcome_key(user_id: int) -> str:
    """The unique key of a user's welcome bonus: one per user and tenant, whatever retries happen."""
    return f"welcome:{user_id}"
