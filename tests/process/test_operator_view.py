"""The CLI tells the truth about a running supervisor, from a shell with no supervisor in it: a real
process publishes its tenants' runtime states, and `tenants show` / `tenants list` (separate processes)
read them from Postgres."""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.stack import Stack
from tests.helpers import assert_no_secrets, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
async def stack(pg_server_dsn: str) -> AsyncIterator[Stack]:
    from tests.conftest import _create_migrated, _drop

    name = f"tgsup_view_{secrets.token_hex(4)}"
    dsn = await _create_migrated(pg_server_dsn, name)
    s = Stack(dsn, Path(tempfile.mkdtemp(prefix="tgsup-view-")))
    await s.start()
    yield s
    await s.stop()
    await _drop(pg_server_dsn, name)


async def test_show_and_list_tell_a_tenant_in_backoff_and_its_recovery(stack: Stack) -> None:
    sick, well = await stack.add_tenants_direct("view", 2)
    # Telegram answers this bot with 502 for now: every start fails and backs off.
    await stack.telegram.inject_faults(sick.token, server_error_calls=10**6, server_error_status=502)
    sup = await stack.start_supervisor("view-a")
    seen: list[str] = []

    async def show(slug: str) -> dict[str, object]:
        out = await stack.cli("tenants", "show", slug, "--json")
        seen.append(out)
        return dict(json.loads(out))

    async def in_backoff() -> bool:
        info = await show(sick.slug)
        return info["state"] == "backoff" and "TelegramServerError" in str(info["last_error"])

    await wait_until(in_backoff, timeout=30, interval=0.5, what="tenants show says backoff with the last error")
    info = await show(sick.slug)
    assert str(info["state_reported_by"]).startswith("view-a.")
    assert isinstance(info["state_age_s"], float) and info["state_age_s"] >= 0
    text = await stack.cli("tenants", "show", sick.slug)
    seen.append(text)
    assert "backoff" in text and "TelegramServerError" in text and "instance view-a." in text

    listed = await stack.cli("tenants", "list", "--state", "backoff")
    seen.append(listed)
    assert sick.slug in listed and well.slug not in listed, "one tenant's trouble is not another's"
    assert json.loads(await stack.cli("tenants", "show", well.slug, "--json"))["last_error"] is None

    await stack.telegram.clear_faults(sick.token)
    await wait_until(
        lambda: _state_is(stack, sick.slug, "active", seen), timeout=60, interval=0.5, what="active after recovery"
    )
    assert sick.slug not in await stack.cli("tenants", "list", "--state", "backoff")
    assert_no_secrets("\n".join(seen) + sup.log(), [sick.token, well.token, sick.kie_key, stack.master_key])


async def _state_is(stack: Stack, slug: str, state: str, seen: list[str]) -> bool:
    out = await stack.cli("tenants", "show", slug, "--json")
    seen.append(out)
    return bool(json.loads(out)["state"] == state)
