"""`make run` on a clean checkout: no env vars → embedded Postgres, generated dev key, /health 200."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandbox.stack import ROOT, free_port
from tests.helpers import wait_until

pytestmark = pytest.mark.slow


async def test_run_with_nothing_configured(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "MASTER_KEYS", "PUBLIC_BASE_URL", "ENV", "RENDER", "DATA_DIR")
    }
    env.update({"PORT": str(port), "PYTHONPATH": str(ROOT)})
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "supervisor",
            "run",
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    health: dict[str, object] = {}

    async def booted() -> bool:
        nonlocal health
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(f"http://127.0.0.1:{port}/health")
        except httpx.HTTPError:
            return False
        assert response.status_code == 200
        health = response.json()
        return "tenants" in health

    try:
        await wait_until(booted, timeout=60, interval=0.2, what="/health with tenants")
        output = log_path.read_text()
        assert health["db"] == "ok" and health["tenants"] == {
            "total": 0,
            "by_state": {},
        }
        assert "using embedded PostgreSQL" in output
        assert "no tenants yet" in output and "tenants add" in output
        key_file = tmp_path / ".data" / "master.key"
        assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key_file.read_text().strip() not in output
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=30)
    assert code == 0
    assert "stopped" in log_path.read_text()
