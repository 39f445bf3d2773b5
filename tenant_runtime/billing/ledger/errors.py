"""Why a money operation was refused, and the argument checks that refuse a caller's bug."""

from __future__ import annotations


class LedgerError(Exception):
    """A money operation was refused; nothing was written. The message is safe to show to an admin."""


class InvalidRequest(LedgerError, ValueError):
    """Bad arguments (non-positive amount, missing reason, ...): a caller bug, not a business outcome."""


class InsufficientFunds(LedgerError):
    def __init__(self, available: int, required: int) -> None:
        super().__init__(f"insufficient funds: {available} available, {required} required")
        self.available = available
        self.required = required

    @property
    def missing(self) -> int:
        return self.required - self.available


class IdempotencyConflict(LedgerError):
    """The idempotency key was already used for a different operation."""


class ChargeConflict(IdempotencyConflict):
    """A Stars charge id already recorded with another user or amount: the first record stands."""

    def __init__(self, charge_id: str, user_id: int, amount_minor: int) -> None:
        super().__init__(f"charge {charge_id!r} was recorded for another user or amount")
        self.charge_id = charge_id
        self.user_id = user_id  # of the first record
        self.amount_minor = amount_minor  # credited by the first record


class RefundRefused(LedgerError):
    def __init__(self, message: str, *, spent: int | None = None) -> None:
        super().__init__(message)
        self.spent = spent


class AlreadyApplied(LedgerError):
    """A concurrent transaction recorded the same unique key first; ours is rolled back."""


def _is_positive_int(value: object) -> bool:
    # bool is an int, and a float or Decimal here means someone skipped pricing.user_price.
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def require_amount(amount: int) -> None:
    if not _is_positive_int(amount):
        raise InvalidRequest(f"amount must be a positive whole number of minor units, got {amount!r}")


def require_positive(value: int, what: str) -> None:
    if not _is_positive_int(value):
        raise InvalidRequest(f"{what} must be a positive integer, got {value!r}")


def require_text(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise InvalidRequest(f"{what} is required")
    return value
