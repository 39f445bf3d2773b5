"""Operators' actions written to `operator_audit`: who (operator:<name>), what, and the tenant as the CLI
shows it before and after (only the fields that changed; secrets masked by `describe`)."""

from __future__ import annotations

import getpass
import json
import re
import socket
from collections.abc import Mapping
from enum import StrEnum

import asyncpg

from shared.redact import REDACTOR
from tenant_runtime.config import TenantConfig

__all__ = ["OperatorAction", "operator_actor", "owner_actor", "record_operator", "tenant_change"]

_NAME_RE = re.compile(r"[^\s]{1,64}")
# Fields that say nothing an operator did: bumped by every write.
_NOISE = frozenset({"config_version"})


class OperatorAction(StrEnum):
    TENANT_ADD = "tenant_add"
    TENANT_UPDATE = "tenant_update"
    TENANT_DISABLE = "tenant_disable"
    TENANT_ENABLE = "tenant_enable"
    TENANT_REMOVE = "tenant_remove"
    KEYS_ROTATE = "keys_rotate"
    # Through the platform bot (supervisor.onboarding): by the owner, or by an operator in the operators' chat.
    SHOP_CREATE = "shop_create"
    SHOP_APPROVE = "shop_approve"
    SHOP_REJECT = "shop_reject"
    SHOP_PAUSE = "shop_pause"
    SHOP_RESUME = "shop_resume"
    SHOP_KIE_KEY = "shop_kie_key"
    SHOP_ADMIN_ADD = "shop_admin_add"


def operator_actor(name: str | None = None) -> str:
    """`operator:<OPERATOR_NAME>`, else `operator:<login>@<host>` (a Render Shell is root@srv-...)."""
    if not name:
        try:
            login = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry for the uid (some containers)
            login = "unknown"
        name = f"{login}@{socket.gethostname()}"
    name = re.sub(r"\s+", "_", name)[:64]
    if not _NAME_RE.fullmatch(name):
        name = "unknown"
    return f"operator:{name}"


def owner_actor(user_id: int) -> str:
    """A shop's owner acting through the platform bot: `owner:<telegram user id>`."""
    return f"owner:{user_id}"


def tenant_change(
    before: Mapping[str, object] | None, after: Mapping[str, object] | None
) -> tuple[dict[str, object] | None, dict[str, object] | None]:
    """Only what differs (all of it for an add or a removal)."""
    if before is None or after is None:
        return (
            None if before is None else {k: v for k, v in before.items() if k not in _NOISE},
            None if after is None else {k: v for k, v in after.items() if k not in _NOISE},
        )
    keys = [k for k in after if k not in _NOISE and before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


async def record_operator(
    pool: asyncpg.Pool | asyncpg.Connection,
    actor: str,
    action: OperatorAction,
    config: TenantConfig | None,
    before: Mapping[str, object] | None = None,
    after: Mapping[str, object] | None = None,
) -> None:
    old, new = tenant_change(before, after)
    await pool.execute(
        "INSERT INTO operator_audit (actor, action, tenant_id, tenant_slug, before, after) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        actor,
        action.value,
        config.id if config else None,
        config.slug if config else None,
        _json(old),
        _json(new),
    )


def _json(value: Mapping[str, object] | None) -> object:
    """JSON-ready (the pool's codec encodes it) and redacted as a whole once more: `describe` masks the
    secrets it knows, this catches anything else."""
    if value is None:
        return None
    return json.loads(REDACTOR.redact(json.dumps(value, ensure_ascii=False, default=str)))
