"""The states a tenant's slot goes through in the lifecycle; its own module so that readers of the
published states (the CLI, /status) need not import the runtime and aiogram with it."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["State"]


class State(StrEnum):
    STARTING = "starting"
    ACTIVE = "active"
    STANDBY = "standby"
    BACKOFF = "backoff"
    TOKEN_INVALID = "token_invalid"  # noqa: S105 - a state name, not a password
    QUARANTINED = "quarantined"
    STOPPED = "stopped"
