"""Async client for the KIE.ai jobs API, shared by every tenant.

One `httpx.AsyncClient` (one connection pool) serves all tenants; every call takes the tenant's API
key. KIE answers errors with HTTP 200 and an error `code` in the body, so the body code decides.
A duplicate createTask costs the tenant money, so createTask is retried only when KIE certainly did
not create a task; anything ambiguous surfaces as `KieUncertainError` for the caller to reconcile.
The API key never goes into an exception, a log line or the limiter/breaker tables.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Annotated, Any, ClassVar, Literal, get_args

import httpx
import structlog
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from shared.settings import KIE_BASE_DEFAULT, normalize_kie_base
from tenant_runtime.kie_limits import (
    Backoff,
    CircuitBreaker,
    CircuitState,
    RateLimit,
    RetryPolicy,
    SlidingWindowLimiter,
    key_id,
)

log = structlog.stdlib.get_logger(__name__)

TaskState = Literal["waiting", "queuing", "generating", "success", "fail"]
FINAL_STATES: frozenset[str] = frozenset({"success", "fail"})
SIGNATURE_MAX_AGE_S = 300
OnRequest = Callable[[str, int, float], None]
"""Metrics hook: (operation, body code or 0 when KIE gave no answer, seconds)."""


# --- errors -------------------------------------------------------------------------------------


class KieError(Exception):
    """A KIE call failed. `code` is KIE's body code, or 0 when no answer came back."""

    retryable: ClassVar[bool] = False
    """Whether trying the same call again later may succeed."""

    def __init__(self, code: int, message: str, *, operation: str) -> None:
        super().__init__(f"KIE {operation} failed: code {code}: {message}")
        self.code = code
        self.message = message
        self.operation = operation


class KieAuthError(KieError):
    """401: the tenant's API key is wrong or revoked."""


class KieInsufficientCreditsError(KieError):
    """402: the tenant's KIE balance cannot pay for the task."""


class KieNotFoundError(KieError):
    """404: unknown task id (or not this key's task)."""


class KieValidationError(KieError):
    """422: KIE rejected the model id or its input."""


class KieRateLimitedError(KieError):
    """429, or 433 (sub-key over its limit): rejected, nothing was created."""

    retryable = True


class KieMaintenanceError(KieError):
    """455: KIE is down for maintenance."""

    retryable = True


class KieServerError(KieError):
    """5xx from KIE (other than 501 and 505), or a reply this client cannot read."""

    retryable = True


class KieGenerationFailedError(KieError):
    """501: the generation failed."""


class KieTransportError(KieError):
    """No answer from KIE: connection failure, protocol error, timeout."""

    retryable = True

    def __init__(self, message: str, *, operation: str, request_sent: bool) -> None:
        super().__init__(0, message, operation=operation)
        self.request_sent = request_sent


class KieTimeoutError(KieTransportError):
    """A connect, pool, read or write timeout."""


class KieUncertainError(KieError):
    """createTask reached KIE but its outcome is unknown: a task may or may not exist.

    Retrying could create (and bill) a second task; reconcile instead, e.g. from the callback or
    the tenant's task history.
    """


class KieCircuitOpenError(KieError):
    """createTask refused locally: KIE kept failing for this key, see `retry_after_s`."""

    retryable = True

    def __init__(self, *, operation: str, retry_after_s: float) -> None:
        super().__init__(0, f"circuit open, retry in {retry_after_s:.1f}s", operation=operation)
        self.retry_after_s = retry_after_s


class KieCallbackError(ValueError):
    """A callback body that is not a KIE task callback."""


_ERRORS_BY_CODE: dict[int, type[KieError]] = {
    401: KieAuthError,
    402: KieInsufficientCreditsError,
    404: KieNotFoundError,
    422: KieValidationError,
    429: KieRateLimitedError,
    433: KieRateLimitedError,
    455: KieMaintenanceError,
    501: KieGenerationFailedError,
}
# 505 "feature disabled" is a 5xx that will not heal by retrying.
_NOT_SERVER_ERRORS = frozenset({501, 505})


def _error_for(code: int, message: str, operation: str) -> KieError:
    cls = _ERRORS_BY_CODE.get(code)
    if cls is None:
        cls = KieServerError if 500 <= code < 600 and code not in _NOT_SERVER_ERRORS else KieError
    return cls(code, message, operation=operation)


# Failures that say KIE itself is unwell; they count towards opening the circuit. Maintenance
# counts too: failing fast during a maintenance window is exactly what the breaker is for.
_UNHEALTHY = (KieServerError, KieTransportError, KieUncertainError, KieMaintenanceError)


# --- wire models ----------------------------------------------------------------------------------


def _json_object(value: object) -> object:
    """KIE sends `param` and `resultJson` as JSON *strings*; "" and null mean nothing."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError("not a JSON document") from None
    return value


def _optional_text(value: object) -> object:
    if value is None or value == "":
        return None
    return str(value) if isinstance(value, int | float) else value


def _epoch_ms(value: object) -> object:
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, int | float | str):
        return datetime.fromtimestamp(float(value) / 1000, tz=UTC)
    return value


def _known_state(value: object) -> object:
    # KIE may add states; an unknown one is treated as still running, so pollers keep going until
    # their own deadline instead of crashing on a new word.
    return value if value in get_args(TaskState) else "generating"


JsonObject = Annotated[dict[str, Any], BeforeValidator(_json_object)]
OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
EpochMs = Annotated[datetime | None, BeforeValidator(_epoch_ms)]


def _alias(camel: str, snake: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(camel, snake))


class TaskInfo(BaseModel):
    """A task as recordInfo (or a callback's `data`) describes it, JSON strings already parsed."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    task_id: str = Field(validation_alias=AliasChoices("taskId", "task_id"))
    model: str = ""
    state: Annotated[TaskState, BeforeValidator(_known_state)]
    param: JsonObject = Field(default_factory=dict)
    result_urls: list[str] = Field(default_factory=list)
    result_object: dict[str, Any] | None = None
    fail_code: OptionalText = _alias("failCode", "fail_code")
    fail_msg: OptionalText = _alias("failMsg", "fail_msg")
    cost_time_ms: float | None = _alias("costTime", "cost_time")
    create_time: EpochMs = _alias("createTime", "create_time")
    update_time: EpochMs = _alias("updateTime", "update_time")
    complete_time: EpochMs = _alias("completeTime", "complete_time")

    @model_validator(mode="before")
    @classmethod
    def _unpack_result_json(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping) or "result_urls" in raw:
            return raw
        result = _json_object(raw.get("resultJson", raw.get("result_json")))
        if not isinstance(result, Mapping):
            raise ValueError("resultJson is not a JSON object")
        return {**raw, "result_urls": result.get("resultUrls") or [], "result_object": result.get("resultObject")}

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class CallbackPayload(BaseModel):
    """The body KIE POSTs to `callBackUrl` when a task ends."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: int
    message: str = ""
    task: TaskInfo
    consume_credits: Decimal | None = None
    remained_credits: Decimal | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_wire(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping) or "task" in raw:
            return raw
        code = raw.get("code")
        message = raw.get("msg") or raw.get("message") or ""
        data = dict(raw["data"]) if isinstance(raw.get("data"), Mapping) else {}
        # Older shapes: the task id at the top level, no state (then the code tells the outcome).
        if "taskId" not in data and "task_id" not in data:
            data["taskId"] = raw.get("taskId", raw.get("task_id"))
        if not data.get("state"):
            data["state"] = "success" if code == 200 else "fail"
        if data["state"] == "fail" and not (data.get("failCode") or data.get("fail_code")):
            data["failCode"] = str(code)
            data.setdefault("failMsg", message)
        return {
            "code": code,
            "message": message,
            "task": data,
            "consume_credits": data.get("consumeCredits", data.get("consume_credits")),
            "remained_credits": data.get("remainedCredits", data.get("remained_credits")),
        }

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def state(self) -> TaskState:
        return self.task.state


def _describe(exc: ValidationError) -> str:
    """Where validation failed, without echoing the (possibly large) input back."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    )


def parse_callback(body: bytes) -> CallbackPayload:
    """Parse a callback body; raise `KieCallbackError` when it is not one."""
    try:
        raw = json.loads(body)
    except ValueError:
        raise KieCallbackError("callback body is not JSON") from None
    if not isinstance(raw, dict):
        raise KieCallbackError("callback body is not a JSON object")
    try:
        return CallbackPayload.model_validate(raw)
    except ValidationError as exc:
        raise KieCallbackError(f"invalid callback: {_describe(exc)}") from None


def _signature(task_id: str, timestamp: int, key: str) -> str:
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_signature(task_id: str, timestamp: str | int, signature: str, key: str, *, now: float | None = None) -> bool:
    """Check KIE's webhook signature headers: base64(HMAC-SHA256(key, f"{task_id}.{timestamp}")).

    Timestamps more than 5 minutes away from now (past or future) are rejected against replays.
    """
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > SIGNATURE_MAX_AGE_S:
        return False
    expected = _signature(task_id, sent_at, key)
    return hmac.compare_digest(expected.encode(), signature.encode())


# --- client ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KieClientConfig:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    create_rate: RateLimit = field(default_factory=lambda: RateLimit(20, 10.0))
    # recordInfo's documented limit; credit shares it, being another cheap read.
    read_rate: RateLimit = field(default_factory=lambda: RateLimit(10, 1.0))
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    max_connections: int = 100


@dataclass(frozen=True)
class _Reply:
    code: int
    message: str
    data: Any


def _scrub(text: str, api_key: str) -> str:
    """Bound a message's size and strip the key, should KIE or httpx ever echo it back."""
    return text.replace(api_key, "***")[:300] if api_key else text[:300]


def _body_code(body: object) -> int | None:
    if not isinstance(body, dict):
        return None
    code = body.get("code")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    if isinstance(code, str) and code.isdigit():
        return int(code)
    return None


def _decode(response: httpx.Response, api_key: str) -> _Reply:
    try:
        body = response.json()
    except ValueError:
        body = None
    code = _body_code(body)
    if code is None:
        status = response.status_code
        return _Reply(status if status >= 400 else 500, f"unreadable reply (HTTP {status})", None)
    assert isinstance(body, dict)
    message = body.get("msg") or body.get("message") or ""
    return _Reply(code, _scrub(str(message), api_key), body.get("data"))


def _transport_error(exc: httpx.TransportError, operation: str, api_key: str) -> KieTransportError:
    # These fail before a byte of the request leaves: KIE certainly saw nothing.
    not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    cls = KieTimeoutError if isinstance(exc, httpx.TimeoutException) else KieTransportError
    detail = _scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), api_key)
    return cls(detail, operation=operation, request_sent=not not_sent)


class KieClient:
    """The KIE jobs API for all tenants: `create_task`, `record_info`, `credit`.

    Per key: rate limits (callers wait), retries with backoff where safe, a circuit breaker on
    createTask. Use as an async context manager or call `aclose()`.
    """

    def __init__(
        self,
        base_url: str = KIE_BASE_DEFAULT,
        config: KieClientConfig | None = None,
        *,
        on_request: OnRequest | None = None,
    ) -> None:
        origin = normalize_kie_base(base_url)
        if not origin.startswith(("http://", "https://")):
            raise ValueError("the KIE base URL must start with http:// or https://")
        self._config = config or KieClientConfig()
        self._on_request = on_request
        cfg = self._config
        self._http = httpx.AsyncClient(
            base_url=f"{origin}/api/v1/",
            timeout=httpx.Timeout(cfg.read_timeout_s, connect=cfg.connect_timeout_s, pool=cfg.connect_timeout_s),
            limits=httpx.Limits(max_connections=cfg.max_connections),
            headers={"Accept": "application/json"},
        )
        self._create_limiter = SlidingWindowLimiter(cfg.create_rate)
        self._read_limiter = SlidingWindowLimiter(cfg.read_rate)
        self._breaker = CircuitBreaker(cfg.breaker_threshold, cfg.breaker_cooldown_s)

    async def __aenter__(self) -> KieClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def circuit_state(self, api_key: str) -> CircuitState:
        return self._breaker.state(key_id(api_key))

    async def create_task(
        self, api_key: str, model: str, input: Mapping[str, Any], callback_url: str | None = None
    ) -> str:
        """Create a task and return its id. Raises `KieUncertainError` when the outcome is unknown."""
        kid = key_id(api_key)
        if not self._breaker.allow(kid):
            raise KieCircuitOpenError(operation="create_task", retry_after_s=self._breaker.retry_after(kid))
        body: dict[str, Any] = {"model": model, "input": dict(input)}
        if callback_url:
            body["callBackUrl"] = callback_url
        started = time.monotonic()
        healthy: bool | None = None
        try:
            task_id = await self._create_with_retries(api_key, body)
            healthy = True
        except KieError as exc:
            healthy = not isinstance(exc, _UNHEALTHY)
            log.warning(
                "kie.create_task_failed",
                model=model,
                code=exc.code,
                error=type(exc).__name__,
                seconds=round(time.monotonic() - started, 3),
                input_keys=sorted(input),
            )
            raise
        finally:
            if healthy is None:
                self._breaker.release(kid)
            elif healthy:
                self._breaker.record_success(kid)
            elif self._breaker.record_failure(kid):
                log.warning("kie.circuit_opened", cooldown_s=self._config.breaker_cooldown_s)
        log.info(
            "kie.task_created",
            model=model,
            task_id=task_id,
            seconds=round(time.monotonic() - started, 3),
            input_keys=sorted(input),
        )
        return task_id

    async def record_info(self, api_key: str, task_id: str) -> TaskInfo:
        data = await self._read_with_retries("record_info", api_key, "jobs/recordInfo", {"taskId": task_id})
        try:
            info = TaskInfo.model_validate(data)
        except ValidationError as exc:
            raise KieServerError(500, f"malformed recordInfo data: {_describe(exc)}", operation="record_info") from None
        log.debug("kie.record_info", task_id=task_id, model=info.model, state=info.state)
        return info

    async def credit(self, api_key: str) -> Decimal:
        """The key's remaining KIE credits."""
        data = await self._read_with_retries("credit", api_key, "chat/credit", None)
        try:
            if isinstance(data, bool) or not isinstance(data, int | float | str):
                raise InvalidOperation
            return Decimal(str(data))
        except InvalidOperation:
            raise KieServerError(500, "credit reply is not a number", operation="credit") from None

    async def _create_with_retries(self, api_key: str, body: dict[str, Any]) -> str:
        backoff = Backoff(self._config.retry)
        while True:
            try:
                return await self._create_once(api_key, body)
            # Only rejections that certainly created nothing get here: a 429, or a transport
            # failure before sending (sent ones became KieUncertainError).
            except (KieRateLimitedError, KieTransportError) as exc:
                await self._pause_or_raise(backoff, exc)

    async def _create_once(self, api_key: str, body: dict[str, Any]) -> str:
        operation = "create_task"
        try:
            reply = await self._send(operation, api_key, "POST", "jobs/createTask", json_body=body)
        except KieTransportError as exc:
            if exc.request_sent:
                raise KieUncertainError(exc.code, exc.message, operation=operation) from None
            raise
        if reply.code == 200:
            task_id = reply.data.get("taskId") if isinstance(reply.data, dict) else None
            if not isinstance(task_id, str) or not task_id:
                raise KieUncertainError(200, "accepted without a taskId", operation=operation)
            return task_id
        error = _error_for(reply.code, reply.message, operation)
        if isinstance(error, KieServerError):
            raise KieUncertainError(error.code, error.message, operation=operation)
        raise error

    async def _read_with_retries(self, operation: str, api_key: str, path: str, params: dict[str, str] | None) -> Any:
        backoff = Backoff(self._config.retry)
        while True:
            try:
                reply = await self._send(operation, api_key, "GET", path, params=params)
                if reply.code == 200:
                    return reply.data
                raise _error_for(reply.code, reply.message, operation)
            except (KieRateLimitedError, KieServerError, KieTransportError) as exc:
                await self._pause_or_raise(backoff, exc)

    async def _pause_or_raise(self, backoff: Backoff, exc: KieError) -> None:
        delay = backoff.next_delay()
        if delay is None:
            raise exc
        log.warning(
            "kie.retry",
            operation=exc.operation,
            code=exc.code,
            error=type(exc).__name__,
            attempt=backoff.attempt,
            delay_s=round(delay, 3),
        )
        await asyncio.sleep(delay)

    async def _send(
        self,
        operation: str,
        api_key: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> _Reply:
        limiter = self._create_limiter if operation == "create_task" else self._read_limiter
        queued_s = await limiter.acquire(key_id(api_key))
        started = time.monotonic()
        try:
            response = await self._http.request(
                method, path, params=params, json=json_body, headers={"Authorization": f"Bearer {api_key}"}
            )
        except httpx.TransportError as exc:
            # Re-raised without the httpx exception chained: it carries the request, headers included.
            self._report(operation, 0, time.monotonic() - started)
            raise _transport_error(exc, operation, api_key) from None
        reply = _decode(response, api_key)
        seconds = time.monotonic() - started
        self._report(operation, reply.code, seconds)
        log.debug(
            "kie.request",
            operation=operation,
            code=reply.code,
            seconds=round(seconds, 3),
            queued_s=round(queued_s, 3),
        )
        return reply

    def _report(self, operation: str, code: int, seconds: float) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(operation, code, seconds)
        except Exception:
            log.exception("kie.metrics_hook_failed", operation=operation)
