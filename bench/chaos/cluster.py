"""The system under test: three supervisor replicas, their Telegram links, and the tenants as the driver
believes they are configured (the model every invariant is checked against).

Replicas are real `python -m supervisor run` processes started like `Stack.start_supervisor` does, with
production defaults, except that each one reaches Telegram through its own `TelegramLink` and each
start gets a new instance name (`<run>-r1.2` is replica r1's second process), as a restarted container
would. Tenants are added and changed through the real operator CLI. `code_root` runs the supervisor
and the CLI from another checkout (say, the last commit) while the driver stays here.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.chaos.proxy import TelegramLink
from sandbox.stack import ROOT, Stack, SupervisorProcess, bot_token, free_port

TenantStatus = Literal["enabled", "disabled", "removed", "unknown"]
"""As the operator configured it; "unknown" after a command whose outcome is unclear (not judged)."""
OPERATOR_TOKEN = "chaos-operator-" + secrets.token_hex(8)
WELCOME_BONUS = 5000
REPLICA_ENV = {
    # Small pools: three replicas share one Postgres on a two-core machine.
    "DB_POOL_SIZE": "4",
    # A generation whose createTask hung is refunded within the run's quiet period.
    "JOB_TIMEOUT_SECONDS": "40",
    # A hanging KIE is noticed by the client (the kie_hang event holds calls 6-10 s).
    "KIE_READ_TIMEOUT_SECONDS": "5",
    "OPERATOR_TOKEN": OPERATOR_TOKEN,
}


@dataclass
class Tenant:
    slug: str
    bot_id: int
    token: str
    kie_key: str
    mode: str
    status: TenantStatus = "enabled"
    markup: str = "2.0"
    name: str = ""

    def cli_options(self) -> list[str]:
        return ["--name", self.name or self.slug.title(), "--mode", self.mode, "--markup", self.markup]


@dataclass
class Replica:
    name: str
    port: int
    link: TelegramLink
    run_id: str
    process: SupervisorProcess | None = None
    incarnation: int = 0
    frozen: bool = False
    thawed_at: float = float("-inf")
    """Wall time of its last SIGCONT."""
    booting: bool = False
    """Spawned, /health not answering with its tenants yet (on a starved machine that can take a while)."""

    @property
    def instance(self) -> str:
        return f"{self.run_id}-{self.name}.{self.incarnation}"

    def owns(self, identity: str) -> bool:
        """Is this name in Postgres (lock holder, instance row, session suffix) the current process's?
        A supervisor may add a per-start suffix to its instance name (`<instance>.<random>`)."""
        return identity == self.instance or identity.startswith(self.instance + ".")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def webhook_url(self, slug: str) -> str:
        return f"{self.base_url}/webhook/{slug}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.proc.returncode is None

    @property
    def able(self) -> bool:
        """Could serve users now: running, not frozen, and Telegram reachable."""
        return self.running and not self.frozen and self.link.state == "up"

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.proc.returncode is None:
            self.process.proc.send_signal(sig)


@dataclass
class Cluster:
    stack: Stack
    run_id: str
    code_root: Path = ROOT
    replicas: dict[str, Replica] = field(default_factory=dict)
    tenants: dict[str, Tenant] = field(default_factory=dict)
    link_owners: dict[int, str] = field(default_factory=dict)
    """Local port of an upstream connection to the fake Telegram -> the replica behind it."""

    # --- replicas --------------------------------------------------------------------------------

    async def add_replica(self, name: str) -> Replica:
        link = TelegramLink(name, _port_of(self.stack.telegram.base_url), self.link_owners)
        await link.start()
        replica = Replica(name, free_port(), link, self.run_id)
        self.replicas[name] = replica
        return replica

    async def start(self, replica: Replica, *, boot_timeout: float = 60) -> None:
        """Start a new process for `replica` (same port and link, new instance name); waits for /health."""
        replica.incarnation += 1
        replica.frozen = False
        env = self.stack.env(
            PORT=str(replica.port),
            HOST="127.0.0.1",
            INSTANCE_NAME=replica.instance,
            BOT_MODE="webhook",
            PUBLIC_BASE_URL=replica.base_url,
            TELEGRAM_API_BASE=replica.link.base_url,
            PYTHONPATH=str(self.code_root),
            **REPLICA_ENV,
        )
        replica.booting = True
        try:
            replica.process = await self._spawn(replica.instance, replica.port, env)
            await replica.process.wait_for(lambda h: "tenants" in h, timeout=boot_timeout, what="boot")
        finally:
            replica.booting = False

    async def _spawn(self, name: str, port: int, env: Mapping[str, str]) -> SupervisorProcess:
        """Like Stack.spawn, from `code_root`; registered with the stack, which kills it at the end."""
        log_path = self.stack.workdir / f"{name}.log"
        with log_path.open("ab") as handle:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "supervisor",
                "run",
                env=dict(env),
                cwd=self.code_root,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        process = SupervisorProcess(name, port, proc, log_path)
        self.stack.processes.append(process)
        return process

    async def stop_all(self) -> None:
        """Wake frozen processes and kill every process; close the links. Safe to call twice."""
        for replica in self.replicas.values():
            replica.signal(signal.SIGCONT)
            replica.frozen = False
        for process in self.stack.processes:
            if process.proc.returncode is None:
                process.proc.kill()
                await process.proc.wait()
        for replica in self.replicas.values():
            await replica.link.stop()

    # --- tenants ---------------------------------------------------------------------------------

    async def cli(self, *args: str, **env: str) -> str:
        base = self.stack.env(PYTHONPATH=str(self.code_root))
        full = {k: v for k, v in base.items() if k not in ("BOT_TOKEN", "KIE_API_KEY")} | env
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "supervisor",
            *args,
            env=full,
            cwd=self.code_root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"`supervisor {' '.join(args)}` did not finish in 60 s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"`supervisor {' '.join(args)}` failed: {err.decode(errors='replace').strip()[-300:]}")
        return out.decode(errors="replace")

    async def new_tenant(self, slug: str, mode: str) -> Tenant:
        """Register a bot and a KIE key with the fakes and add the tenant through the CLI."""
        bot_id = 820_000_000 + len(self.tenants) + 1
        tenant = self.tenants[slug] = Tenant(slug, bot_id, bot_token(bot_id), "kie_" + secrets.token_hex(16), mode)
        await self.stack.telegram.register_bot(tenant.token, username=f"{slug.replace('-', '_')}_bot")
        self.stack.kie.register_key(tenant.kie_key, 1_000_000)
        await self.add_via_cli(tenant)
        return tenant

    async def add_via_cli(self, tenant: Tenant) -> None:
        await self.cli(
            "tenants",
            "add",
            tenant.slug,
            *tenant.cli_options(),
            "--welcome-bonus",
            str(WELCOME_BONUS),
            # The shoppers walk the wizard as fast as the bot answers: about 30 messages and taps a minute,
            # the shop's default limit. The simulation is about ownership, so the limit is out of reach.
            "--rate-limit",
            "600/min",
            BOT_TOKEN=tenant.token,
            KIE_API_KEY=tenant.kie_key,
        )

    async def reload(self, tenant: Tenant) -> None:
        """After a failed command (a CLI killed at its timeout may have committed or not): take what the
        registry now says. A token the fake no longer knows makes the tenant "unknown": not judged."""
        from shared.crypto import KeyRing
        from shared.db import create_pool
        from supervisor.tenants import TenantError, TenantStore

        pool = await create_pool(self.stack.database_url, 1, application_name="chaos-reload")
        try:
            config = await TenantStore(pool, KeyRing([self.stack.master_key])).get(tenant.slug)
        except TenantError:
            tenant.status = "removed"
            return
        finally:
            await pool.close()
        tenant.mode = config.bot_mode or "webhook"
        tenant.markup, tenant.name = str(config.markup), config.display_name
        if config.bot_token != tenant.token:
            tenant.status = "unknown"
        else:
            tenant.status = "disabled" if config.status == "disabled" else "enabled"

    def replica_of_port(self, port: int) -> str | None:
        return self.link_owners.get(port)

    def replica_of_url(self, url: str, slug: str) -> Replica | None:
        # The query names the tenant's row (tenant_runtime.runtime): the replica is in the path.
        return next((r for r in self.replicas.values() if url.split("?", 1)[0] == r.webhook_url(slug)), None)


def _port_of(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1].split("/", 1)[0])


class Clock:
    """Seconds since the chaos phase began, for every record of the run (before `start()`: since the
    clock was made; `TelegramWatch.shift` re-times what it saw then to negative times)."""

    def __init__(self) -> None:
        self.origin = time.monotonic()

    def start(self) -> None:
        self.origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.origin


def replacement_token(tenant: Tenant) -> str:
    return bot_token(tenant.bot_id)


def environment_summary() -> dict[str, str]:
    return {k: v for k, v in REPLICA_ENV.items() if k != "OPERATOR_TOKEN"} | {"cpus": str(os.cpu_count())}
