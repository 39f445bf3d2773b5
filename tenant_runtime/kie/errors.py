"""What a KIE call can fail with, and which body code means which failure."""

from __future__ import annotations

from typing import ClassVar


class KieError(Exception):
    """A KIE call failed. `code` is KIE's body code, or 0 when no answer came back."""

    retryable: ClassVar[bool] = False
    """Whether trying the same call again later may succeed."""

    def __init__(self, code: int, message: str, *, operation: str) -> None:
        super().__init__(f"KIE {operation} failed: code {code}: {message}")
        self.code = code
        self.message = message
        self.operation = operation


class KieAuthError(KieError):
    """401: the tenant's API key is wrong or revoked."""


class KieInsufficientCreditsError(KieError):
    """402: the tenant's KIE balance cannot pay for the task."""


class KieNotFoundError(KieError):
    """404: unknown task id (or not this key's task)."""


class KieValidationError(KieError):
    """422: KIE rejected the model id or its input."""


class KieRateLimitedError(KieError):
    """429, or 433 (sub-key over its limit): rejected, nothing was created."""

    retryable = True


class KieMaintenanceError(KieError):
    """455: KIE is down for maintenance."""

    retryable = True


class KieServerError(KieError):
    """5xx from KIE (other than 501 and 505), or a reply this client cannot read."""

    retryable = True


class KieGenerationFailedError(KieError):
    """501: the generation failed."""


class KieTransportError(KieError):
    """No answer from KIE: connection failure, protocol error, timeout."""

    retryable = True

    def __init__(self, message: str, *, operation: str, request_sent: bool) -> None:
        super().__init__(0, message, operation=operation)
        self.request_sent = request_sent


class KieTimeoutError(KieTransportError):
    """A connect, pool, read or write timeout."""


class KieUncertainError(KieError):
    """createTask reached KIE but its outcome is unknown: a task may or may not exist.

    Retrying could create (and bill) a second task; reconcile instead, e.g. from the callback or
    the tenant's task history.
    """


class KieCircuitOpenError(KieError):
    """createTask refused locally: KIE kept failing for this key, see `retry_after_s`."""

    retryable = True

    def __init__(self, *, operation: str, retry_after_s: float) -> None:
        super().__init__(0, f"circuit open, retry in {retry_after_s:.1f}s", operation=operation)
        self.retry_after_s = retry_after_s


class KieCallbackError(ValueError):
    """A callback body that is not a KIE task callback."""


ERRORS_BY_CODE: dict[int, type[KieError]] = {
    401: KieAuthError,
    402: KieInsufficientCreditsError,
    404: KieNotFoundError,
    422: KieValidationError,
    429: KieRateLimitedError,
    433: KieRateLimitedError,
    455: KieMaintenanceError,
    501: KieGenerationFailedError,
}
# 505 "feature disabled" is a 5xx that will not heal by retrying.
NOT_SERVER_ERRORS = frozenset({501, 505})


def error_for(code: int, message: str, operation: str) -> KieError:
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        cls = KieServerError if 500 <= code < 600 and code not in NOT_SERVER_ERRORS else KieError
    return cls(code, message, operation=operation)


# Failures that say KIE itself is unwell; they count towards opening the circuit. Maintenance
# counts too: failing fast during a maintenance window is exactly what the breaker is for.
UNHEALTHY = (KieServerError, KieTransportError, KieUncertainError, KieMaintenanceError)
