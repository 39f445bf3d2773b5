"""Helpers for tests: running the real CLI, waiting on conditions with deadlines, secret scanning."""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiohttp import web

from sandbox.stack import DemoTenant, ScriptedUser, Stack
from sandbox.telegram.server import FakeTelegram
from shared.crypto import KeyRing, generate_key
from supervisor.tenants import NewTenant, TenantStore
from tenant_runtime.config import TenantConfig

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli_env(database_url: str, master_keys: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "KIE_API_KEY", "KIE_WEBHOOK_KEY")}
    env.update({"DATABASE_URL": database_url, "MASTER_KEYS": master_keys, "PYTHONPATH": str(ROOT)})
    env.update(extra)
    return env


async def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> CliResult:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "supervisor",
        *args,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


async def wait_until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll `check` until true; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def stays_true(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool], *, window: float, what: str
) -> None:
    """`condition` holds for the whole window: to prove something did not happen, wait past where it could."""

    async def holds() -> bool:
        result = condition()
        return bool(await result) if inspect.isawaitable(result) else bool(result)

    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        assert await holds(), what
        await asyncio.sleep(0.2)
    assert await holds(), what


def assert_no_secrets(text: str, secrets: Iterable[str | None]) -> None:
    for secret in secrets:
        if secret:
            assert secret not in text, f"a secret value leaked into output (starts {secret[:3]!r})"


def make_token(bot_id: int, seed: str = "A") -> str:
    body = (seed * 35)[:35]
    return f"{bot_id}:{body}"


async def add_bare_tenants(pool: asyncpg.Pool, prefix: str, count: int, first_bot_id: int) -> list[TenantConfig]:
    """Tenant rows through the registry code, for tests that need tenants but no bot behind them."""
    store = TenantStore(pool, KeyRing([generate_key()]))
    added = []
    for i in range(count):
        bot_id = first_bot_id + i
        added.append(
            await store.add(
                NewTenant(
                    slug=f"{prefix}-{i:02d}",
                    display_name=prefix,
                    bot_token=make_token(bot_id, secrets.token_hex(2)),
                    bot_id=bot_id,
                    kie_api_key=None,
                    admin_ids=[],
                )
            )
        )
    return added


async def tenant_id_of(db: asyncpg.Pool, slug: str) -> int:
    return int(await db.fetchval("SELECT id FROM tenants WHERE slug = $1", slug))


async def funded_user(stack: Stack, db: asyncpg.Pool, tenant: DemoTenant, user_id: int, amount: int) -> ScriptedUser:
    """A user who has opened the bot (/start) and holds `amount` minor units, credited by an admin."""
    from tenant_runtime.billing.ledger import Ledger

    user = ScriptedUser(stack.telegram, tenant.token, user_id)
    await user.say("/start", expect="Выберите, что создать")
    await Ledger(db).credit(
        await tenant_id_of(db, tenant.slug),
        user.user_id,
        amount,
        kind="admin_credit",
        unique_key=f"test:{user.user_id}",
        actor="admin:1",
        reason="test funds",
    )
    return user


@asynccontextmanager
async def fake_chat(token: str, user_id: int) -> AsyncIterator[FakeTelegram]:
    """The fake Telegram, started, with `token` a valid bot and `user_id` having written to it once (so
    the bot may write to the user)."""
    fake = FakeTelegram()
    await fake.start()
    try:
        await fake.register_bot(token)
        await fake.send_text(token, user_id, "hi")
        yield fake
    finally:
        await fake.stop()


class LoopThread:
    """An event loop on a thread of its own, for hypothesis: it drives synchronous examples while the
    pools and servers they use live on this loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` on an ephemeral loopback port for the block; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
