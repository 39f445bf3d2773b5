"""The product on one machine: fake Telegram, fake KIE, tenants added through the real CLI, and real
supervisor processes. Used by the end-to-end tests, the sandbox (`make demo`) and the benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from sandbox.kie import FakeKie, FakeKieConfig
from sandbox.telegram.model import TranscriptEntry
from sandbox.telegram.server import FakeTelegram
from shared.crypto import generate_key
from shared.registry import Registry, load_registry, validate_input

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_token(bot_id: int) -> str:
    return f"{bot_id}:" + secrets.token_urlsafe(32)[:35].replace("-", "a")


@dataclass(frozen=True)
class DemoTenant:
    slug: str
    token: str
    kie_key: str
    admins: tuple[int, ...]


@dataclass
class SupervisorProcess:
    name: str
    port: int
    proc: asyncio.subprocess.Process
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def health(self) -> dict[str, object] | None:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(f"{self.base_url}/health")
            return dict(response.json())
        except (httpx.HTTPError, ValueError):
            return None

    async def wait_for(self, check: Callable[[dict[str, object]], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"supervisor {self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            body = await self.health()
            if body is not None and check(body):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"supervisor {self.name}: {what} not reached in {timeout}s:\n{self.log()[-3000:]}")

    async def wait_active(self, count: int, timeout: float = 30) -> None:
        await self.wait_for(
            lambda h: _state_count(h, "active") >= count, timeout=timeout, what=f"{count} active tenants"
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            await asyncio.wait_for(self.proc.wait(), timeout=timeout)
        assert self.proc.returncode is not None
        return self.proc.returncode


def _state_count(health: Mapping[str, object], state: str) -> int:
    tenants = health.get("tenants")
    if not isinstance(tenants, dict):
        return 0
    by_state = tenants.get("by_state") or {}
    return int(by_state.get(state, 0)) if isinstance(by_state, dict) else 0


@dataclass
class Stack:
    database_url: str
    workdir: Path
    master_key: str = field(default_factory=generate_key)
    kie_config: FakeKieConfig | None = None
    telegram: FakeTelegram = field(init=False)
    kie: FakeKie = field(init=False)
    registry: Registry = field(init=False)
    tenants: list[DemoTenant] = field(default_factory=list)
    processes: list[SupervisorProcess] = field(default_factory=list)
    _next_bot: int = 810000000

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.registry = load_registry()
        registry = self.registry

        def validator(model: str, task_input: Mapping[str, object]) -> list[str]:
            spec = registry.get(model)
            return [f"unknown model {model}"] if spec is None else validate_input(spec, task_input)

        def output_kind(model: str) -> str:
            spec = registry.get(model)
            return spec.output if spec else "image"

        self.telegram = FakeTelegram(webhook_retry_initial=0.1, webhook_retry_max=1.0)
        self.kie = FakeKie(self.kie_config, validator=validator, output_kind=output_kind)
        await self.telegram.start()
        await self.kie.start()

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "KIE_API_KEY", "DATABASE_URL")}
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "MASTER_KEYS": self.master_key,
                "TELEGRAM_API_BASE": self.telegram.base_url,
                "KIE_BASE_URL": self.kie.base_url,
                "DATA_DIR": str(self.workdir / "data"),
                "PYTHONPATH": str(ROOT),
                "LOG_FORMAT": "json",
                "CREDIT_RATE_MINOR": "40",
                "ALLOW_LOOPBACK_DOWNLOADS": "true",  # the fakes serve result files from 127.0.0.1
            }
        )
        env.update(extra)
        return env

    async def cli(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "supervisor",
            *args,
            env=dict(env or self.env()),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"supervisor {' '.join(args)} failed: {err.decode()}")
        return out.decode()

    async def add_tenant(
        self,
        slug: str,
        *,
        name: str | None = None,
        admins: tuple[int, ...] = (),
        credits: float = 10_000,
        options: tuple[str, ...] = (),
    ) -> DemoTenant:
        """Register the bot with the fakes and add the tenant through the real operator CLI."""
        self._next_bot += 1
        token = bot_token(self._next_bot)
        kie_key = "kie_" + secrets.token_hex(16)
        await self.telegram.register_bot(token, username=f"{slug.replace('-', '_')}_bot")
        self.kie.register_key(kie_key, credits)
        await self.cli(
            "tenants",
            "add",
            slug,
            "--name",
            name or slug.title(),
            "--admins",
            ",".join(map(str, admins)),
            *options,
            env=self.env(BOT_TOKEN=token, KIE_API_KEY=kie_key),
        )
        tenant = DemoTenant(slug, token, kie_key, admins)
        self.tenants.append(tenant)
        return tenant

    async def add_tenants_direct(self, prefix: str, count: int, *, credits: float = 10_000) -> list[DemoTenant]:
        """Many tenants at once through the registry code the CLI uses (without a process per tenant)."""
        from shared.crypto import KeyRing
        from shared.db import create_pool
        from supervisor.tenants import NewTenant, TenantStore

        pool = await create_pool(self.database_url, 4, application_name="stack-setup")
        try:
            store = TenantStore(pool, KeyRing([self.master_key]))
            added = []
            for index in range(count):
                self._next_bot += 1
                token = bot_token(self._next_bot)
                kie_key = "kie_" + secrets.token_hex(16)
                slug = f"{prefix}-{index:04d}"
                await self.telegram.register_bot(token, username=f"{slug.replace('-', '_')}_bot")
                self.kie.register_key(kie_key, credits)
                await store.add(NewTenant(slug, slug.title(), token, self._next_bot, kie_key, []))
                added.append(DemoTenant(slug, token, kie_key, ()))
        finally:
            await pool.close()
        self.tenants.extend(added)
        return added

    async def start_supervisor(
        self, name: str = "sup-1", *, mode: str = "webhook", port: int | None = None, **extra: str
    ) -> SupervisorProcess:
        port = port or free_port()
        env = self.env(
            PORT=str(port), HOST="127.0.0.1", INSTANCE_NAME=name, BOT_MODE=mode, LOCK_HEARTBEAT_SECONDS="0.5", **extra
        )
        if mode == "webhook":
            env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        process = await self.spawn(name, port, ["supervisor", "run"], env=env)
        await process.wait_for(lambda h: "tenants" in h, timeout=60, what="boot")
        return process

    async def spawn(
        self,
        name: str,
        port: int,
        module_args: list[str],
        *,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> SupervisorProcess:
        """Start `python -m <module_args>` with its output in `<log_dir>/<name>.log`; returns at once.

        The process is stopped (killed if still running) by `stop()`.
        """
        log_dir = log_dir or self.workdir
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        with log_path.open("ab") as handle:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                *module_args,
                env=None if env is None else dict(env),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        process = SupervisorProcess(name, port, proc, log_path)
        self.processes.append(process)
        return process

    async def stop(self) -> None:
        for process in self.processes:
            if process.proc.returncode is None:
                process.proc.kill()
                await process.proc.wait()
        await self.telegram.stop()
        await self.kie.stop()


class ScriptedUser:
    """A Telegram user of one tenant bot, driving the fake's user-side API and reading replies."""

    def __init__(self, telegram: FakeTelegram, token: str, user_id: int, language: str = "ru") -> None:
        self.telegram = telegram
        self.token = token
        self.user_id = user_id
        self.language = language
        self.log: list[str] = []

    async def say(self, text: str, *, expect: str | None = None, timeout: float = 15) -> TranscriptEntry:
        update = await self.telegram.send_text(self.token, self.user_id, text, language_code=self.language)
        self.log.append(f"> {text}")
        return await self.expect(expect, after=update.message_id or 0, timeout=timeout)

    async def send_photo(self, *, expect: str | None = None, timeout: float = 15) -> TranscriptEntry:
        update = await self.telegram.send_photo(self.token, self.user_id, language_code=self.language)
        self.log.append("> [photo]")
        return await self.expect(expect, after=update.message_id or 0, timeout=timeout)

    async def tap(
        self, entry: TranscriptEntry, label: str, *, expect: str | None = None, timeout: float = 15
    ) -> TranscriptEntry:
        """Press a button, then wait for the bot to react: a new message, or this one edited."""
        data = button(entry, label)
        before = _snapshot(entry)
        await self.telegram.press_button(self.token, self.user_id, entry.message_id, data)
        self.log.append(f"> [{label}]")

        def reacted(e: TranscriptEntry) -> bool:
            changed = e.message_id > entry.message_id or (e.message_id == entry.message_id and _snapshot(e) != before)
            return changed and (expect is None or expect in (e.text or e.caption or ""))

        found = await self.telegram.wait_for_bot_message(
            self.token, self.user_id, predicate=reacted, after_message_id=entry.message_id - 1, timeout=timeout
        )
        self.log.append(f"< {describe(found)}")
        return found

    async def expect(self, needle: str | None, *, after: int, timeout: float = 15) -> TranscriptEntry:
        def matches(e: TranscriptEntry) -> bool:
            body = e.text or e.caption or ""
            return needle is None or needle in body

        entry = await self.telegram.wait_for_bot_message(
            self.token, self.user_id, predicate=matches, after_message_id=after, timeout=timeout
        )
        self.log.append(f"< {describe(entry)}")
        return entry


def _snapshot(entry: TranscriptEntry) -> tuple[object, ...]:
    return (entry.text, entry.caption, json.dumps(entry.reply_markup, sort_keys=True), entry.media_kind)


def buttons(entry: TranscriptEntry) -> list[tuple[str, str]]:
    markup = entry.reply_markup or {}
    rows = markup.get("inline_keyboard") or []
    return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


def button(entry: TranscriptEntry, label: str) -> str:
    for text, data in buttons(entry):
        if label in text:
            return data
    raise AssertionError(f"no button {label!r} on message {entry.message_id}: {[t for t, _ in buttons(entry)]}")


def describe(entry: TranscriptEntry) -> str:
    body = (entry.text or entry.caption or "").replace("\n", " ⏎ ")
    media = f"[{entry.media_kind}] " if entry.media_kind else ""
    keys = " | ".join(t for t, _ in buttons(entry))
    return f"{media}{body}" + (f"   {{{keys}}}" if keys else "")


def dump_health(health: Mapping[str, object]) -> str:
    return json.dumps(health, ensure_ascii=False)
