"""WORKERS=N: N supervisor processes on one port. Invariants: every tenant served by exactly one of
them; a worker that dies is started again; SIGTERM stops them all cleanly; no worker outlives the first
process, even one killed with -9."""

from __future__ import annotations

import secrets
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess
from shared.db import LOCK_SESSION
from tests.helpers import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
async def stack(pg_server_dsn: str) -> AsyncIterator[Stack]:
    from tests.conftest import _create_migrated, _drop

    name = f"tgsup_workers_{secrets.token_hex(4)}"
    dsn = await _create_migrated(pg_server_dsn, name)
    s = Stack(dsn, Path(tempfile.mkdtemp(prefix="tgsup-workers-")))
    await s.start()
    yield s
    await s.stop()
    await _drop(pg_server_dsn, name)


async def _holders(stack: Stack) -> dict[str, int]:
    """Lock sessions per worker name, and how many tenant locks each worker's session holds."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch(
            """SELECT split_part(substr(a.application_name, length($1) + 1), '.', 1) AS worker,
                      count(l.*) FILTER (WHERE l.locktype = 'advisory') AS locks
               FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory'
               WHERE a.datname = current_database() AND a.application_name LIKE $1 || '%'
               GROUP BY 1""",
            LOCK_SESSION,
        )
    finally:
        await conn.close()
    return {r["worker"]: int(r["locks"]) for r in rows}


def _children(sup: SupervisorProcess) -> list[psutil.Process]:
    return [p for p in psutil.Process(sup.proc.pid).children() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


async def _all_answer(stack: Stack, base_user: int) -> None:
    for i, tenant in enumerate(stack.tenants):
        await ScriptedUser(stack.telegram, tenant.token, base_user + i).say("/start", expect="Выберите", timeout=15)


async def test_two_workers_share_the_tenants_and_a_dead_worker_is_replaced(stack: Stack) -> None:
    await stack.add_tenants_direct("wk", 6)
    sup = await stack.start_supervisor("wk", WORKERS="2")

    async def spread() -> bool:
        held = await _holders(stack)
        return set(held) == {"wk-w0", "wk-w1"} and sum(held.values()) == 6 and min(held.values()) >= 1

    await wait_until(spread, timeout=40, what="six tenants spread over two workers")
    await _all_answer(stack, 7700000)
    (worker,) = _children(sup)
    worker.kill()
    await wait_until(
        lambda: [c.pid for c in _children(sup)] not in ([], [worker.pid]), timeout=15, what="the worker started again"
    )
    await wait_until(spread, timeout=40, what="the tenants spread again")
    await _all_answer(stack, 7700100)
    children = _children(sup)
    assert await sup.stop(signal.SIGTERM, timeout=40) == 0
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, "a worker outlived the first process's SIGTERM"
    assert "shutdown complete" in sup.log()


async def test_no_worker_outlives_a_killed_first_process(stack: Stack) -> None:
    await stack.add_tenants_direct("wkk", 2)
    sup = await stack.start_supervisor("wkk", WORKERS="3")
    await wait_until(lambda: len(_children(sup)) == 2, timeout=30, what="two workers started")
    await wait_until(lambda: _holders_count(stack, 3), timeout=40, what="three lock sessions (every worker booted)")
    children = _children(sup)
    sup.proc.kill()
    await sup.proc.wait()
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"workers left running: {[p.pid for p in alive]}"
    # They stopped the graceful way (locks released, drained), not by being killed.
    assert sup.log().count("shutdown complete") == 2, sup.log()[-3000:]


async def _holders_count(stack: Stack, n: int) -> bool:
    return len(await _holders(stack)) == n


async def test_bad_workers_setting_is_one_clear_line(stack: Stack) -> None:
    import subprocess
    import sys

    from sandbox.stack import ROOT

    for bad in ("0", "many", "65", "²"):
        env = stack.env(WORKERS=bad, PORT="0")  # two problems: both are reported
        result = subprocess.run(
            [sys.executable, "-m", "supervisor", "run"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2, (bad, result.stderr)
        assert "invalid setting WORKERS" in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert "invalid setting PORT" in result.stderr, result.stderr
