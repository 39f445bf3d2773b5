"""A fake KIE.ai API server (aiohttp) for tests, the offline sandbox and benchmarks.

Speaks createTask / recordInfo / credit as FIELD-NOTES (KIE.ai API) describe them, and each dedicated
endpoint family (4o Image, Flux Kontext, Veo, Suno, Runway, Midjourney: `sandbox.kie_families`) with
its own request, status and callback shapes; moves tasks
through waiting → queuing → generating → success|fail as time passes, POSTs completion callbacks
(HMAC-signed when the key has a webhook key) and serves the result files itself. Faults — error
codes, latency, hangs, rate limits, dropped, delayed or duplicated callbacks — are set from Python
or over HTTP under /_control/ so another process can drive it. Binds to loopback only.

Standalone: python -m sandbox.kie --port 8099 --key KEY:CREDITS
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import random
import secrets
import struct
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any, Literal, TypeVar

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from pydantic import TypeAdapter, ValidationError

from sandbox.kie_families import FAMILIES, Action, FakeFamily, Refusal, TaskView
from sandbox.signals import stop_on_signals

Operation = str
"""createTask, recordInfo, credit, or a family's operation ("veo.generate", "suno.recordInfo", …)."""
Validator = Callable[[str, Mapping[str, object]], list[str]]
OutputKind = Callable[[str], str]
Price = Callable[[str, Mapping[str, object]], float | Decimal]
_T = TypeVar("_T")

_MESSAGES = {
    401: "You do not have access permissions",
    402: "insufficient credits",
    404: "task not found",
    422: "validation error",
    429: "rate limited: too many requests",
    455: "service under maintenance",
    500: "internal server error",
    501: "generation failed",
}


# --- media ----------------------------------------------------------------------------------------


def _png(seed: str, size: int = 32) -> bytes:
    """A valid solid-colour RGB PNG; the colour comes from `seed` so different tasks differ."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rgb = hashlib.sha256(seed.encode()).digest()[:3]
    rows = b"".join(b"\x00" + rgb * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _silent_mp3(frames: int = 10) -> bytes:
    """MPEG-1 Layer III, 128 kb/s, 44.1 kHz, mono; all-zero side info decodes as silence."""
    frame = b"\xff\xfb\x90\xc0" + bytes(413)  # 144 * 128000 / 44100 = 417 bytes per frame
    return frame * frames


# One 16x16 H.264 frame in an MP4 (815 bytes), made once with ffmpeg; decodes with ffmpeg.
_MP4 = base64.b64decode(
    "AAAAIGZ0eXBpc29tAAACAGlzb21pc28yYXZjMW1wNDEAAALobW9vdgAAAGxtdmhkAAAAAAAAAAAAAAAAAAAD6AAAA+gAAQAA"
    "AQAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAgAAAjd0cmFrAAAAXHRraGQAAAADAAAAAAAAAAAAAAABAAAAAAAAA+gAAAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAA"
    "AAAAAAABAAAAAAAAAAAAAAAAAABAAAAAABAAAAAQAAAAAAAkZWR0cwAAABxlbHN0AAAAAAAAAAEAAAPoAAAAAAABAAAAAAGv"
    "bWRpYQAAACBtZGhkAAAAAAAAAAAAAAAAAABAAAAAQABVxAAAAAAALWhkbHIAAAAAAAAAAHZpZGUAAAAAAAAAAAAAAABWaWRl"
    "b0hhbmRsZXIAAAABWm1pbmYAAAAUdm1oZAAAAAEAAAAAAAAAAAAAACRkaW5mAAAAHGRyZWYAAAAAAAAAAQAAAAx1cmwgAAAA"
    "AQAAARpzdGJsAAAAtnN0c2QAAAAAAAAAAQAAAKZhdmMxAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAABAAEABIAAAASAAAAAAA"
    "AAABDExhdmMgbGlieDI2NAAAAAAAAAAAAAAAAAAAAAAAAAAAGP//AAAALGF2Y0MBQsAK/+EAFWdCwAraewEQAAADABAAAAMA"
    "IPEiagEABGjOD8gAAAAQcGFzcAAAAAEAAAABAAAAFGJ0cnQAAAAAAAAAuAAAAAAAAAAYc3R0cwAAAAAAAAABAAAAAQAAQAAA"
    "AAAcc3RzYwAAAAAAAAABAAAAAQAAAAEAAAABAAAAFHN0c3oAAAAAAAAAFwAAAAEAAAAUc3RjbwAAAAAAAAABAAADGAAAAD11"
    "ZHRhAAAANW1ldGEAAAAAAAAAIWhkbHIAAAAAAAAAAG1kaXJhcHBsAAAAAAAAAAAAAAAACGlsc3QAAAAIZnJlZQAAAB9tZGF0"
    "AAAAE2WIhDoRigACMXHAAEPKOAAIBeA="
)
_MP3 = _silent_mp3()


@dataclass(frozen=True)
class _Media:
    ext: str
    content_type: str
    render: Callable[[str], bytes]


_MEDIA = {
    "image": _Media("png", "image/png", _png),
    "video": _Media("mp4", "video/mp4", lambda _task_id: _MP4),
    "audio": _Media("mp3", "audio/mpeg", lambda _task_id: _MP3),
}


# --- model ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    success: bool = True
    fail_code: str = "500"
    fail_msg: str = "content policy violation"


OutcomeRule = Callable[[str, Mapping[str, object]], Outcome | None]


def prompt_outcome(_model: str, task_input: Mapping[str, object]) -> Outcome | None:
    """Default rule: a prompt containing "FAIL" fails, so a test picks the outcome by prompt."""
    prompt = task_input.get("prompt")
    return Outcome(success=False) if isinstance(prompt, str) and "FAIL" in prompt else None


@dataclass(frozen=True)
class CallbackPolicy:
    drop: bool = False
    delay_s: float = 0.0
    duplicates: int = 1
    """Copies sent per completion; more than 1 imitates KIE's duplicate deliveries."""


@dataclass
class Account:
    credits: Decimal
    webhook_key: str | None = None
    mirror_http_status: bool | None = None
    """Per-key override of `FakeKieConfig.mirror_http_status`."""


@dataclass
class Fault:
    """Applied to the next `times` calls of `operation` (by `api_key`, or by any key when None).

    With `code` the call is answered with that body code and does nothing. Without it the call is
    processed normally (a createTask does create its task) and the reply is held `hang_s` seconds,
    like a KIE that is slow to answer.
    """

    operation: Operation
    code: int | None = None
    hang_s: float = 0.0
    times: int = 1
    api_key: str | None = None


@dataclass
class FakeKieConfig:
    durations: tuple[float, float] = (0.2, 0.6)
    """Seconds from creation to completion, drawn uniformly; `model_durations` overrides per model."""
    model_durations: dict[str, tuple[float, float]] = field(default_factory=dict)
    fail_ratio: float = 0.0
    """Share of tasks that fail when the outcome rule has no opinion (seeded, so repeatable)."""
    seed: int = 0
    mirror_http_status: bool = False
    """False: HTTP 200 with the error code in the body, as KIE is reported to do."""
    message_key: Literal["msg", "message"] = "msg"
    callbacks: CallbackPolicy = field(default_factory=CallbackPolicy)
    latency_s: float = 0.0
    enforce_rate_limit: bool = False
    create_rate: tuple[int, float] = (20, 10.0)
    read_rate: tuple[int, float] = (10, 1.0)
    callback_timeout_s: float = 15.0
    callback_retries: int = 3
    callback_retry_delay_s: float = 0.5


@dataclass
class FakeTask:
    task_id: str
    api_key: str
    model: str
    input: dict[str, Any]
    callback_url: str | None
    kind: str
    created_at: float
    duration_s: float
    outcome: Outcome
    cost: Decimal
    callbacks: CallbackPolicy | None = None
    """Per-task override of the server's callback policy; read when the task completes."""
    settled: bool = False
    family: str = "jobs"
    """"jobs" (createTask), else the dedicated family that created it."""
    action: str = "generate"
    outputs: int = 1
    """Result files the task makes (Suno: 2 tracks, Midjourney: 4 images)."""

    @property
    def due(self) -> float:
        return self.created_at + self.duration_s

    def state_at(self, now: float) -> str:
        progress = (now - self.created_at) / self.duration_s if self.duration_s > 0 else 1.0
        if progress >= 1.0:
            return "success" if self.outcome.success else "fail"
        if progress >= 0.5:
            return "generating"
        return "queuing" if progress >= 0.2 else "waiting"


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    api_key: str | None
    operation: str | None = None
    code: int | None = None
    """The body code answered (HTTP status for non-API routes); None while still in flight."""


@dataclass
class CallbackDelivery:
    task_id: str
    url: str
    copy: int
    dropped: bool = False
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    delivered: bool = False


_RECORD = web.RequestKey("record", RequestRecord)


class _Reject(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message or _MESSAGES.get(code, "error")


async def _json_object(request: web.Request) -> dict[str, Any]:
    """The request's body as KIE reads it: a JSON object, else a 422 in KIE's envelope."""
    try:
        body = await request.json()
    except ValueError:
        raise _Reject(422, "body is not JSON") from None
    if not isinstance(body, dict):
        raise _Reject(422, "body must be a JSON object")
    return body


def _ms(epoch_s: float) -> int:
    return int(epoch_s * 1000)


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


_CREATES = frozenset({"createTask"} | {a.operation for f in FAMILIES.values() for a in f.actions if a.method == "POST"})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- server ---------------------------------------------------------------------------------------


class FakeKie:
    """The fake server. Register keys, start it, point a client at `base_url`, inspect the state.

    `validator(model, input)` returns problems (an unknown model is one) → 422; `output_kind(model)`
    says "image" (default), "video", "audio" or "text"; `price(model, input)` gives the credits a
    task costs (default 1); `outcome(model, input)` may decide success or failure per task.
    """

    def __init__(
        self,
        config: FakeKieConfig | None = None,
        *,
        validator: Validator | None = None,
        output_kind: OutputKind | None = None,
        price: Price | None = None,
        outcome: OutcomeRule | None = prompt_outcome,
    ) -> None:
        self.config = config or FakeKieConfig()
        self._validator = validator
        self._output_kind = output_kind
        self._price = price
        self._outcome = outcome
        self._rng = random.Random(self.config.seed)
        self.accounts: dict[str, Account] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.requests: list[RequestRecord] = []
        self.callbacks: list[CallbackDelivery] = []
        self.faults: list[Fault] = []
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.base_url = ""

    # -- control (Python) --

    def register_key(
        self,
        api_key: str,
        credits: float | Decimal = 100,
        *,
        webhook_key: str | None = None,
        mirror_http_status: bool | None = None,
    ) -> None:
        self.accounts[api_key] = Account(Decimal(str(credits)), webhook_key, mirror_http_status)

    def balance(self, api_key: str) -> Decimal:
        return self.accounts[api_key].credits

    def inject(
        self,
        operation: Operation,
        *,
        code: int | None = None,
        hang_s: float = 0.0,
        times: int = 1,
        api_key: str | None = None,
    ) -> None:
        self.faults.append(Fault(operation, code, hang_s, times, api_key))

    def set_task_callbacks(self, task_id: str, policy: CallbackPolicy) -> None:
        self.tasks[task_id].callbacks = policy

    def calls(self, operation: Operation, api_key: str | None = None) -> int:
        """How many `operation` requests arrived (any outcome), for one key or all."""
        return sum(1 for r in self.requests if r.operation == operation and (api_key is None or r.api_key == api_key))

    def state_of(self, task_id: str) -> str:
        return self.tasks[task_id].state_at(time.time())

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        return {
            "keys": {
                key: {"credits": _number(acc.credits), "create_calls": self.calls("createTask", key)}
                for key, acc in self.accounts.items()
            },
            "tasks": [
                {
                    "task_id": t.task_id,
                    "model": t.model,
                    "state": t.state_at(now),
                    "input": t.input,
                    "callback_url": t.callback_url,
                    "api_key": t.api_key,
                }
                for t in self.tasks.values()
            ],
            "callbacks": [asdict(c) for c in self.callbacks],
            "requests": [asdict(r) for r in self.requests],
            "faults": [asdict(f) for f in self.faults],
        }

    # -- lifecycle --

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if not _is_loopback(host):
            raise ValueError("the fake KIE server binds to loopback only")
        self._stopping = asyncio.Event()
        self._session = ClientSession()
        app = web.Application(middlewares=[self._record_middleware])
        app.add_routes(
            [
                web.post("/api/v1/jobs/createTask", self._api("createTask", self._create_task)),
                web.get("/api/v1/jobs/recordInfo", self._api("recordInfo", self._record_info)),
                web.get("/api/v1/chat/credit", self._api("credit", self._credit)),
                *self._family_routes(),
                web.get("/files/{name}", self._file),
                web.get("/_control/state", self._control_state),
                web.post("/_control/keys", self._control_key),
                web.post("/_control/faults", self._control_fault),
                web.delete("/_control/faults", self._control_clear_faults),
                web.patch("/_control/config", self._control_config),
                web.post("/_control/tasks/{task_id}/callbacks", self._control_task_callbacks),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.base_url = f"http://{host}:{bound[1]}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()  # releases hung replies at once
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- HTTP plumbing --

    @web.middleware
    async def _record_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/_control/"):
            if not _is_loopback(request.remote or ""):
                raise web.HTTPForbidden()
            return await handler(request)
        # Recorded on arrival, so a test can count a call whose reply is still hanging.
        record = RequestRecord(request.method, request.path, request.query_string, _bearer(request))
        self.requests.append(record)
        request[_RECORD] = record
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            record.code = exc.status
            raise
        if record.code is None:
            record.code = response.status
        return response

    def _api(
        self, operation: Operation, handler: Callable[[web.Request, str, Account], Awaitable[Any]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            record = request[_RECORD]
            record.operation = operation
            if self.config.latency_s:
                await self._hold(self.config.latency_s)
            api_key = record.api_key
            account = self.accounts.get(api_key) if api_key else None
            if api_key is None or account is None:
                return self._reply(record, None, 401, _MESSAGES[401], None)
            fault = self._take_fault(operation, api_key)
            code, message, data = 200, "success", None
            if fault is not None and fault.code is not None:
                code, message = fault.code, _MESSAGES.get(fault.code, "error")
            else:
                try:
                    if not self._within_rate(operation, api_key):
                        raise _Reject(429)
                    data = await handler(request, api_key, account)
                except _Reject as rejection:
                    code, message = rejection.code, rejection.message
            if fault is not None:
                await self._hold(fault.hang_s)
            return self._reply(record, account, code, message, data)

        return endpoint

    def _reply(
        self, record: RequestRecord, account: Account | None, code: int, message: str, data: Any
    ) -> web.Response:
        record.code = code
        mirror = self.config.mirror_http_status
        if account is not None and account.mirror_http_status is not None:
            mirror = account.mirror_http_status
        body = {"code": code, self.config.message_key: message, "data": data}
        return web.json_response(body, status=code if mirror and code != 200 else 200)

    async def _hold(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    def _take_fault(self, operation: Operation, api_key: str) -> Fault | None:
        for fault in self.faults:
            if fault.operation == operation and fault.api_key in (None, api_key):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _within_rate(self, operation: Operation, api_key: str) -> bool:
        if not self.config.enforce_rate_limit or operation == "credit":
            return True
        calls, per_s = self.config.create_rate if operation in _CREATES else self.config.read_rate
        window = self._windows.setdefault((operation, api_key), deque())
        now = time.monotonic()
        while window and window[0] <= now - per_s:
            window.popleft()
        if len(window) >= calls:
            return False
        window.append(now)
        return True

    # -- KIE API --

    async def _create_task(self, request: web.Request, api_key: str, account: Account) -> dict[str, str]:
        body = await _json_object(request)
        model, task_input, callback_url = body.get("model"), body.get("input"), body.get("callBackUrl")
        problems: list[str] = []
        if not isinstance(model, str) or not model:
            problems.append("model is required")
        if not isinstance(task_input, dict):
            problems.append("input must be an object")
        if callback_url is not None and not (
            isinstance(callback_url, str) and callback_url.startswith(("http://", "https://"))
        ):
            problems.append("callBackUrl must be an http(s) URL")
        if not problems and self._validator is not None:
            assert isinstance(model, str) and isinstance(task_input, dict)
            problems = self._validator(model, task_input)
        if problems:
            raise _Reject(422, "; ".join(problems))
        assert isinstance(model, str) and isinstance(task_input, dict)
        cost = Decimal(str(self._price(model, task_input))) if self._price else Decimal(1)
        kind = self._output_kind(model) if self._output_kind else "image"
        task = self._new_task(
            api_key, account, model=model, task_input=task_input, callback_url=callback_url, kind=kind, cost=cost
        )
        return {"taskId": task.task_id}

    def _new_task(
        self,
        api_key: str,
        account: Account,
        *,
        model: str,
        task_input: dict[str, Any],
        callback_url: str | None,
        kind: str,
        cost: Decimal,
        family: str = "jobs",
        action: str = "generate",
        outputs: int = 1,
    ) -> FakeTask:
        """Charge the account and start a task that completes in the background; 402 if it cannot pay."""
        if account.credits < cost:
            raise _Reject(402)
        account.credits -= cost
        low, high = self.config.model_durations.get(model, self.config.durations)
        outcome = self._outcome(model, task_input) if self._outcome else None
        if outcome is None:
            outcome = Outcome(success=self._rng.random() >= self.config.fail_ratio)
        task = FakeTask(
            task_id=secrets.token_hex(16),
            api_key=api_key,
            model=model,
            input=task_input,
            callback_url=callback_url,
            kind=kind,
            created_at=time.time(),
            duration_s=self._rng.uniform(low, high),
            outcome=outcome,
            cost=cost,
            family=family,
            action=action,
            outputs=outputs,
        )
        self.tasks[task.task_id] = task
        background = asyncio.create_task(self._complete(task))
        self._background.add(background)
        background.add_done_callback(self._background.discard)
        return task

    async def _record_info(self, request: web.Request, api_key: str, _account: Account) -> dict[str, Any]:
        task = self.tasks.get(request.query.get("taskId", ""))
        if task is None or task.api_key != api_key:
            raise _Reject(404)
        now = time.time()
        state = task.state_at(now)
        done = state in ("success", "fail")
        if done:
            self._settle(task)
        return {
            "taskId": task.task_id,
            "model": task.model,
            "state": state,
            "param": self._param(task),
            "resultJson": json.dumps(self._result(task)) if state == "success" else "",
            "failCode": task.outcome.fail_code if state == "fail" else "",
            "failMsg": task.outcome.fail_msg if state == "fail" else "",
            "costTime": _ms(task.duration_s) if done else None,
            "createTime": _ms(task.created_at),
            "updateTime": _ms(min(now, task.due)),
            "completeTime": _ms(task.due) if done else None,
        }

    async def _credit(self, _request: web.Request, _api_key: str, account: Account) -> int | float:
        return _number(account.credits)

    async def _file(self, request: web.Request) -> web.Response:
        stem, _, ext = request.match_info["name"].partition(".")
        # A task with several results serves them as <task id>-<n>.<ext> (task ids are hex).
        owner, _, number = stem.rpartition("-")
        task_id = owner if owner and number.isdigit() else stem
        task = self.tasks.get(task_id)
        media = _MEDIA.get(task.kind) if task else None
        if task is None or media is None or ext != media.ext or task.state_at(time.time()) != "success":
            raise web.HTTPNotFound()
        return web.Response(body=media.render(task_id), content_type=media.content_type)

    def _param(self, task: FakeTask) -> str:
        request: dict[str, Any] = {"model": task.model, "input": task.input}
        if task.callback_url:
            request["callBackUrl"] = task.callback_url
        return json.dumps(request)

    def _result(self, task: FakeTask) -> dict[str, Any]:
        media = _MEDIA.get(task.kind)
        if media is None:
            return {"resultObject": {"text": f"fake {task.model} answer", "model": task.model}}
        return {"resultUrls": [f"{self.base_url}/files/{task.task_id}.{media.ext}"]}

    def _urls(self, task: FakeTask) -> tuple[str, ...]:
        media = _MEDIA[task.kind]
        return tuple(f"{self.base_url}/files/{task.task_id}-{n}.{media.ext}" for n in range(task.outputs))

    # -- dedicated families --

    def _family_routes(self) -> list[web.RouteDef]:
        routes = []
        for family in FAMILIES.values():
            for action in family.actions:
                make = self._family_query if action.method == "GET" else self._family_create
                handler = self._api(action.operation, make(family, action))
                routes.append(web.route(action.method, f"/api/v1/{action.path}", handler))
            status = self._api(family.status_operation, self._family_status(family))
            routes.append(web.get(f"/api/v1/{family.status_path}", status))
        return routes

    def _family_create(
        self, family: FakeFamily, action: Action
    ) -> Callable[[web.Request, str, Account], Awaitable[dict[str, str]]]:
        async def create(request: web.Request, api_key: str, account: Account) -> dict[str, str]:
            body = await _json_object(request)
            callback_url = body.get("callBackUrl")
            problems = family.validate(action.action, body)
            if callback_url is not None and not (
                isinstance(callback_url, str) and callback_url.startswith(("http://", "https://"))
            ):
                problems.append("callBackUrl must be an http(s) URL")
            if problems:
                raise _Reject(422, "; ".join(problems))
            task = self._new_task(
                api_key,
                account,
                model=action.operation,
                task_input=body,
                callback_url=callback_url,
                kind=family.kind(action.action, body),
                cost=family.cost(action.action, body),
                family=family.name,
                action=action.action,
                outputs=family.outputs(action.action, body),
            )
            return {"taskId": task.task_id}

        return create

    def _family_query(
        self, family: FakeFamily, action: Action
    ) -> Callable[[web.Request, str, Account], Awaitable[dict[str, Any]]]:
        async def query(request: web.Request, api_key: str, _account: Account) -> dict[str, Any]:
            problems = family.validate(action.action, dict(request.query))
            if problems:
                raise _Reject(422, "; ".join(problems))

            def lookup(task_id: str) -> TaskView | None:
                task = self.tasks.get(task_id)
                ours = task is not None and task.api_key == api_key and task.family == family.name
                return self._view(task) if task is not None and ours else None

            try:
                return family.query(action.action, request.query, lookup, _ms(time.time()))
            except Refusal as refusal:
                raise _Reject(refusal.code, refusal.message) from None

        return query

    def _family_status(self, family: FakeFamily) -> Callable[[web.Request, str, Account], Awaitable[dict[str, Any]]]:
        async def status(request: web.Request, api_key: str, _account: Account) -> dict[str, Any]:
            task = self.tasks.get(request.query.get("taskId", ""))
            if task is None or task.api_key != api_key or task.family != family.name:
                raise _Reject(404)
            view = self._view(task)
            if view.state in ("success", "fail"):
                self._settle(task)
            return family.status(view)

        return status

    def _view(self, task: FakeTask) -> TaskView:
        state = task.state_at(time.time())
        return TaskView(
            task_id=task.task_id,
            action=task.action,
            body=task.input,
            state=state,
            urls=self._urls(task) if state == "success" else (),
            fail_code=task.outcome.fail_code,
            fail_msg=task.outcome.fail_msg,
            content_failure="policy" in task.outcome.fail_msg.lower(),
            created_ms=_ms(task.created_at),
            completed_ms=_ms(task.due) if state in ("success", "fail") else None,
        )

    def _settle(self, task: FakeTask) -> None:
        """Refund a failed task once, whichever of recordInfo or the completion notices first."""
        if not task.settled:
            task.settled = True
            if not task.outcome.success:
                self.accounts[task.api_key].credits += task.cost

    # -- completion and callbacks --

    async def _complete(self, task: FakeTask) -> None:
        await asyncio.sleep(max(0.0, task.due - time.time()))
        self._settle(task)
        if task.callback_url is None:
            return
        policy = task.callbacks or self.config.callbacks
        if policy.drop:
            self.callbacks.append(CallbackDelivery(task.task_id, task.callback_url, 0, dropped=True))
            return
        await asyncio.sleep(policy.delay_s)
        if task.family != "jobs":
            bodies = [json.dumps(b).encode() for b in FAMILIES[task.family].callbacks(self._view(task))]
        else:
            bodies = [json.dumps(self._callback_body(task)).encode()]
        for body in bodies:
            for copy in range(1, policy.duplicates + 1):
                await self._deliver(task, task.callback_url, body, copy)

    def _callback_body(self, task: FakeTask) -> dict[str, Any]:
        key = self.config.message_key
        if not task.outcome.success:
            data = {
                "taskId": task.task_id,
                "model": task.model,
                "state": "fail",
                "failCode": task.outcome.fail_code,
                "failMsg": task.outcome.fail_msg,
                "consumeCredits": 0,
                "completeTime": _ms(task.due),
            }
            return {"code": 501, key: "Playground task failed.", "data": data}
        data = {
            "taskId": task.task_id,
            "model": task.model,
            "state": "success",
            "param": self._param(task),
            "resultJson": json.dumps(self._result(task)),
            "consumeCredits": _number(task.cost),
            "remainedCredits": _number(self.accounts[task.api_key].credits),
            "costTime": _ms(task.duration_s),
            "createTime": _ms(task.created_at),
            "completeTime": _ms(task.due),
            "updateTime": _ms(task.due),
        }
        return {"code": 200, key: "Playground task completed successfully.", "data": data}

    async def _deliver(self, task: FakeTask, url: str, body: bytes, copy: int) -> None:
        assert self._session is not None
        record = CallbackDelivery(task.task_id, url, copy)
        self.callbacks.append(record)
        timeout = ClientTimeout(total=self.config.callback_timeout_s)
        for attempt in range(1 + self.config.callback_retries):
            if attempt:
                await asyncio.sleep(self.config.callback_retry_delay_s)
            record.attempts += 1
            headers = {"Content-Type": "application/json", **self._signature_headers(task)}
            try:
                async with self._session.post(url, data=body, headers=headers, timeout=timeout) as response:
                    record.status = response.status
                    if response.status < 300:
                        record.delivered, record.error = True, None
                        return
                    record.error = f"HTTP {response.status}"
            except (ClientError, TimeoutError) as exc:
                record.error = f"{type(exc).__name__}: {exc}"

    def _signature_headers(self, task: FakeTask) -> dict[str, str]:
        webhook_key = self.accounts[task.api_key].webhook_key
        if not webhook_key:
            return {}
        timestamp = int(time.time())
        digest = hmac.new(webhook_key.encode(), f"{task.task_id}.{timestamp}".encode(), hashlib.sha256).digest()
        return {"X-Webhook-Timestamp": str(timestamp), "X-Webhook-Signature": base64.b64encode(digest).decode()}

    # -- control (HTTP) --

    async def _control_state(self, _request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _control_key(self, request: web.Request) -> web.Response:
        body = await _control_body(request)
        api_key = body.pop("api_key", None)
        if not isinstance(api_key, str) or not api_key:
            raise web.HTTPBadRequest(text="api_key is required")
        body.setdefault("credits", 100)
        self.accounts[api_key] = _validate(Account, body)
        return web.json_response({"ok": True})

    async def _control_fault(self, request: web.Request) -> web.Response:
        self.faults.append(_validate(Fault, await _control_body(request)))
        return web.json_response({"ok": True})

    async def _control_clear_faults(self, _request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response({"ok": True})

    async def _control_config(self, request: web.Request) -> web.Response:
        patch = await _control_body(request)
        unknown = set(patch) - {f.name for f in fields(FakeKieConfig)}
        if unknown:
            raise web.HTTPBadRequest(text=f"unknown config fields: {sorted(unknown)}")
        self.config = _validate(FakeKieConfig, {**asdict(self.config), **patch})
        return web.json_response(asdict(self.config))

    async def _control_task_callbacks(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        if task_id not in self.tasks:
            raise web.HTTPNotFound()
        self.set_task_callbacks(task_id, _validate(CallbackPolicy, await _control_body(request)))
        return web.json_response({"ok": True})


async def _control_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def _validate(cls: type[_T], data: dict[str, Any]) -> _T:
    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


# --- standalone -----------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeKie(
        FakeKieConfig(
            durations=(args.min_duration, args.max_duration),
            mirror_http_status=args.mirror_http_status,
            enforce_rate_limit=args.enforce_rate_limit,
        )
    )
    for spec in args.key:
        api_key, _, credits = spec.partition(":")
        fake.register_key(api_key, Decimal(credits or "1000"))
    print(f"fake KIE listening on {await fake.start(args.host, args.port)}", flush=True)
    stop = stop_on_signals()
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake KIE.ai API server (loopback only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--key", action="append", default=[], metavar="KEY[:CREDITS]")
    parser.add_argument("--min-duration", type=float, default=2.0)
    parser.add_argument("--max-duration", type=float, default=6.0)
    parser.add_argument("--mirror-http-status", action="store_true")
    parser.add_argument("--enforce-rate-limit", action="store_true")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
