"""How each scheduled event is applied to the running system, including its undo step.

Every step is recorded, as it is issued, with the tenants it may move: a replica's departure (kill,
SIGTERM, freeze, cut from Telegram) touches the tenants it was serving; a replica's (re)joining
(restart, SIGCONT, Telegram restored, a new lock session) touches every tenant, since the others hand
some over to it; a tenant command touches that tenant; a hanging KIE, a lost pool or LISTEN session
and a markup change touch nobody, so any disruption they cause is a violation at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

from bench.chaos.cluster import Cluster, Replica, Tenant, replacement_token
from bench.chaos.invariants import Monitor, Step
from bench.chaos.schedule import Event, Kind
from bench.chaos.traffic import Traffic
from shared.db import LISTEN_SESSION, LOCK_NS_TENANT, LOCK_SESSION, POOL_SESSION, session_name

SESSION_PREFIXES = {"lock": LOCK_SESSION, "pool": POOL_SESSION, "listen": LISTEN_SESSION}
TERM_EXIT_S = 40.0
ALL = None  # Step.touched for "every tenant"


class Faults:
    def __init__(self, cluster: Cluster, monitor: Monitor, traffic: Traffic, now: Callable[[], float]) -> None:
        self.cluster = cluster
        self.monitor = monitor
        self.traffic = traffic
        self.now = now
        self.applied = 0
        self._targets: dict[str, asyncio.Lock] = {}

    async def apply(self, event: Event) -> None:
        handlers: dict[Kind, Callable[[Event], Awaitable[None]]] = {
            Kind.KILL: self._kill,
            Kind.TERM: self._term,
            Kind.FREEZE: self._freeze,
            Kind.PG_TERMINATE: self._pg_terminate,
            Kind.TELEGRAM_CUT: self._telegram_cut,
            Kind.KIE_HANG: self._kie_hang,
            Kind.ROTATE_TOKEN: self._rotate,
            Kind.MODE: self._mode,
            Kind.DISABLE: self._disable,
            Kind.REMOVE: self._remove,
            Kind.MARKUP: self._markup,
        }
        # The planner keeps a target busy for as long as an event usually takes; on a starved machine a
        # restart can take longer, so events on one target also wait for each other here.
        async with self._targets.setdefault(event.target, asyncio.Lock()):
            self.applied += 1
            try:
                await handlers[event.kind](event)
            except Exception as exc:  # a failed CLI call or fake control call is logged; the run goes on
                self._step(event, "failed", error=f"{type(exc).__name__}: {exc}"[:300])
                tenant = self.cluster.tenants.get(event.target)
                if tenant is not None:
                    with contextlib.suppress(Exception):
                        await self.cluster.reload(tenant)
                    self._step(event, "model reloaded from the registry", f"now {tenant.status}, {tenant.mode}")

    def _step(
        self,
        event: Event,
        action: str,
        detail: str = "",
        *,
        touched: frozenset[str] | None = frozenset(),
        replica: str | None = None,
        error: str | None = None,
    ) -> Step:
        step = Step(self.now(), event.kind.value, event.target, action, detail, touched, error)
        return self.monitor.record(step, replica=replica)

    # --- replicas ----------------------------------------------------------------------------------

    def _replica(self, event: Event) -> Replica:
        return self.cluster.replicas[event.target]

    async def _restart(self, event: Event, replica: Replica) -> None:
        # Joining starts with the spawn (its locker appears while it boots), not when /health answers.
        self._step(event, "restarting", touched=ALL, replica=replica.name)
        await self.cluster.start(replica)
        self._step(event, "restarted", replica.instance, touched=ALL, replica=replica.name)

    async def _kill(self, event: Event) -> None:
        replica = self._replica(event)
        serving = await self._serving(replica)
        replica.signal(signal.SIGKILL)
        if replica.process is not None:
            await asyncio.wait_for(replica.process.proc.wait(), timeout=10)
        self._step(event, "SIGKILL", f"{len(serving)} active there", touched=serving, replica=replica.name)
        await asyncio.sleep(event.hold)
        await self._restart(event, replica)

    async def _term(self, event: Event) -> None:
        replica = self._replica(event)
        serving = await self._serving(replica)
        replica.signal(signal.SIGTERM)
        self._step(event, "SIGTERM", f"{len(serving)} active there", touched=serving, replica=replica.name)
        if replica.process is not None:
            started = self.now()
            try:
                await asyncio.wait_for(replica.process.proc.wait(), timeout=TERM_EXIT_S)
                detail = f"exit code {replica.process.proc.returncode} after {self.now() - started:.1f}s"
            except TimeoutError:
                replica.signal(signal.SIGKILL)
                await replica.process.proc.wait()
                detail = f"no exit within {TERM_EXIT_S:.0f}s: killed"
            self._step(event, "exited", detail, replica=replica.name)
        await asyncio.sleep(event.hold)
        await self._restart(event, replica)

    async def _freeze(self, event: Event) -> None:
        replica = self._replica(event)
        serving = await self._serving(replica)
        replica.signal(signal.SIGSTOP)
        replica.frozen = True
        self._step(event, "SIGSTOP", f"{len(serving)} active there", touched=serving, replica=replica.name)
        try:
            if event.option == "lock lost":
                await asyncio.sleep(event.hold / 2)
                detail = await self._terminate(replica, "lock")
                self._step(event, "lock session terminated while frozen", detail, touched=ALL, replica=replica.name)
                await asyncio.sleep(event.hold / 2)
            else:
                await asyncio.sleep(event.hold)
        finally:
            replica.signal(signal.SIGCONT)
            replica.frozen = False
            replica.thawed_at = time.time()
        self._step(event, "SIGCONT", touched=ALL, replica=replica.name)

    async def _pg_terminate(self, event: Event) -> None:
        replica = self._replica(event)
        detail = await self._terminate(replica, event.option)
        # Losing the lock session steps every tenant down and rejoins; a pool or LISTEN session must not
        # disturb anybody.
        touched: frozenset[str] | None = ALL if event.option == "lock" else frozenset()
        self._step(event, f"terminated {event.option} session", detail, touched=touched, replica=replica.name)

    async def _serving(self, replica: Replica) -> frozenset[str]:
        """The tenants a fault on this replica touches: those its last status showed active, and those its
        lock session holds at this instant (one handed to it since that status was read is its too:
        chaos seed 31, a tenant taken 0.2 s before a SIGTERM was judged untouched by it)."""
        name = session_name(LOCK_SESSION, replica.instance)
        conn = await asyncpg.connect(self.cluster.stack.database_url, server_settings={"application_name": "chaos"})
        try:
            rows = await conn.fetch(
                "SELECT t.slug FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "JOIN tenants t ON t.lock_key = l.objid::bigint "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid AND l.objsubid = 2 "
                "AND a.datname = current_database() AND (a.application_name = $2 OR a.application_name LIKE $2 || '.%')",
                LOCK_NS_TENANT,
                name,
            )
        finally:
            await conn.close()
        return self.monitor.active_on(replica.name) | frozenset(r["slug"] for r in rows)

    async def _terminate(self, replica: Replica, which: str) -> str:
        """pg_terminate_backend of one of the replica's sessions, found by its application_name."""
        name = session_name(SESSION_PREFIXES[which], replica.instance)
        conn = await asyncpg.connect(self.cluster.stack.database_url, server_settings={"application_name": "chaos"})
        try:
            pids = [
                r["pid"]
                for r in await conn.fetch(
                    # The name, or the name plus a per-start suffix (`<instance>.<random>`).
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND (application_name = $1 OR application_name LIKE $1 || '.%') ORDER BY backend_start",
                    name,
                )
            ]
            # One pooled session is enough to hurt (the oldest, the one most likely in use); the lock and
            # listen sessions are one each.
            for pid in pids[:1]:
                await conn.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await conn.close()
        return f"{name}: {min(1, len(pids))} of {len(pids)} sessions"

    async def _telegram_cut(self, event: Event) -> None:
        replica = self._replica(event)
        serving = await self._serving(replica)
        replica.link.cut("blackhole" if event.option == "blackhole" else "refuse")
        self._step(
            event, f"cut ({event.option})", f"{len(serving)} active there", touched=serving, replica=replica.name
        )
        try:
            await asyncio.sleep(event.hold)
        finally:
            replica.link.restore()
        # Able again, it rejoins the fair share: others hand tenants over to it.
        self._step(event, "restored", touched=ALL, replica=replica.name)

    async def _kie_hang(self, event: Event) -> None:
        kie = self.cluster.stack.kie
        kie.config.latency_s = event.hold
        self._step(event, "hanging", f"every call held {event.hold:.1f}s")
        try:
            await asyncio.sleep(event.hold)
        finally:
            kie.config.latency_s = 0.0
        self._step(event, "answering again")

    # --- tenants -----------------------------------------------------------------------------------

    # Each command is recorded as it is issued, and the model follows once the CLI has succeeded. Its
    # tenant is not judged while the command runs (a starved machine can take many seconds to start and
    # stop a CLI process, while the change itself is already committed) and for GRACE_S after.

    @contextlib.asynccontextmanager
    async def _busy(self, tenant: Tenant) -> AsyncIterator[None]:
        self.monitor.busy.add(tenant.slug)
        try:
            yield
        finally:
            self.monitor.busy.discard(tenant.slug)
            self.monitor.touch(tenant.slug, self.now())

    async def _command(self, tenant: Tenant, *args: str, **env: str) -> None:
        async with self._busy(tenant):
            await self.cluster.cli("tenants", *args, **env)

    async def _rotate(self, event: Event) -> None:
        tenant = self.cluster.tenants[event.target]
        only = frozenset({tenant.slug})
        new = replacement_token(tenant)
        self._step(event, "revoked at BotFather", "old token answers 401", touched=only)
        await self.cluster.stack.telegram.rotate_token(tenant.token, new)
        tenant.token = new
        self._step(event, "tenants update --bot-token", touched=only)
        await self._command(tenant, "update", tenant.slug, "--bot-token", BOT_TOKEN=new)

    async def _mode(self, event: Event) -> None:
        tenant = self.cluster.tenants[event.target]
        self._step(event, f"tenants update --mode {event.option}", touched=frozenset({tenant.slug}))
        await self._command(tenant, "update", tenant.slug, "--mode", event.option)
        tenant.mode = event.option

    async def _disable(self, event: Event) -> None:
        tenant = self.cluster.tenants[event.target]
        only = frozenset({tenant.slug})
        self._step(event, "tenants disable", touched=only)
        await self._command(tenant, "disable", tenant.slug)
        tenant.status = "disabled"
        await asyncio.sleep(event.hold)
        self._step(event, "tenants enable", touched=only)
        await self._command(tenant, "enable", tenant.slug)
        tenant.status = "enabled"

    async def _remove(self, event: Event) -> None:
        tenant = self.cluster.tenants[event.target]
        only = frozenset({tenant.slug})
        self._step(event, "tenants remove", touched=only)
        self.traffic.excuse(tenant.slug)
        tenant.status = "removed"  # its users stop writing now
        try:
            await self._command(tenant, "remove", tenant.slug)
        except RuntimeError:
            tenant.status = "enabled"
            raise
        await asyncio.sleep(event.hold)
        self._step(event, "tenants add (same bot)", touched=only)
        async with self._busy(tenant):
            await self.cluster.add_via_cli(tenant)
        tenant.status = "enabled"

    async def _markup(self, event: Event) -> None:
        tenant = self.cluster.tenants[event.target]
        name = f"{tenant.slug} x{event.option}"
        self._step(event, f"tenants update --markup {event.option} --name {name!r}")
        # Busy while the command runs: replicas may show the new name before the CLI process returns, and
        # the listener check must not judge them against the name it replaces (seed 707's I5 episodes).
        async with self._busy(tenant):
            await self.cluster.cli("tenants", "update", tenant.slug, "--markup", event.option, "--name", name)
        tenant.markup, tenant.name = event.option, name
        self.monitor.expect_name(tenant.slug, name, self.now())


async def run_schedule(faults: Faults, events: list[Event], now: Callable[[], float]) -> None:
    """Each event at its time, concurrently (the planner never gives two of them one target)."""

    async def one(event: Event) -> None:
        delay = event.at - now()
        if delay > 0:
            await asyncio.sleep(delay)
        await faults.apply(event)

    tasks = [asyncio.create_task(one(e), name=f"chaos:{e.kind.value}:{e.target}") for e in events]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
