"""Async client for the KIE.ai API, shared by every tenant.

`create_task`/`record_info` speak the jobs API; `submit`/`read` are the same protections for any
endpoint (the dedicated families in `tenant_runtime.kie.families` build their requests on them).

One `httpx.AsyncClient` (one connection pool) serves all tenants; every call takes the tenant's API
key. KIE answers errors with HTTP 200 and an error `code` in the body, so the body code decides.
A duplicate createTask costs the tenant money, so createTask is retried only when KIE certainly did
not create a task; anything ambiguous surfaces as `KieUncertainError` for the caller to reconcile.
The API key never goes into an exception, a log line or the limiter/breaker tables.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any

import httpx
import structlog
from pydantic import ValidationError

from shared import strict
from shared.settings import KIE_BASE_DEFAULT, normalize_kie_base
from tenant_runtime.kie.errors import (
    UNHEALTHY,
    KieCircuitOpenError,
    KieError,
    KieRateLimitedError,
    KieServerError,
    KieTimeoutError,
    KieTransportError,
    KieUncertainError,
    error_for,
)
from tenant_runtime.kie.limits import (
    Backoff,
    CircuitBreaker,
    CircuitState,
    RateLimit,
    RetryPolicy,
    SlidingWindowLimiter,
    key_id,
)
from tenant_runtime.kie.tasks import TaskInfo, describe

log = structlog.stdlib.get_logger(__name__)

OnRequest = Callable[[str, int, float], None]
"""Metrics hook: (operation, body code or 0 when KIE gave no answer, seconds)."""


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
    if isinstance(code, str):
        return strict.uint(code, max_digits=6)
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
        body: dict[str, Any] = {"model": model, "input": dict(input)}
        if callback_url:
            body["callBackUrl"] = callback_url
        return await self.submit(api_key, "jobs/createTask", body, model=model)

    async def submit(self, api_key: str, path: str, body: Mapping[str, Any], *, model: str) -> str:
        """POST a task-creating request to `path` (under /api/v1/) and return `data.taskId`, with the
        createTask protections: the creation rate limit, the circuit breaker, retries only when KIE
        certainly created nothing. Raises `KieUncertainError` when the outcome is unknown."""
        kid = key_id(api_key)
        if not self._breaker.allow(kid):
            raise KieCircuitOpenError(operation="create_task", retry_after_s=self._breaker.retry_after(kid))
        started = time.monotonic()
        healthy: bool | None = None
        inner = body.get("input")
        input_keys = sorted(inner if isinstance(inner, Mapping) else body)
        try:
            task_id = await self._create_with_retries(api_key, path, dict(body))
            healthy = True
        except KieError as exc:
            healthy = not isinstance(exc, UNHEALTHY)
            log.warning(
                "KIE createTask failed",
                model=model,
                code=exc.code,
                error=type(exc).__name__,
                seconds=round(time.monotonic() - started, 3),
                input_keys=input_keys,
            )
            raise
        finally:
            if healthy is None:
                self._breaker.release(kid)
            elif healthy:
                self._breaker.record_success(kid)
            elif self._breaker.record_failure(kid):
                log.warning("KIE circuit opened: createTask paused", cooldown_s=self._config.breaker_cooldown_s)
        log.info(
            "KIE task created",
            model=model,
            task_id=task_id,
            seconds=round(time.monotonic() - started, 3),
            input_keys=input_keys,
        )
        return task_id

    async def read(self, api_key: str, path: str, params: Mapping[str, str], *, operation: str = "record_info") -> Any:
        """GET `path` (under /api/v1/) and return `data`, with the read rate limit and retries of 429,
        5xx and transport failures; any other body code raises its `KieError`."""
        return await self._read_with_retries(operation, api_key, path, dict(params))

    async def record_info(self, api_key: str, task_id: str) -> TaskInfo:
        data = await self.read(api_key, "jobs/recordInfo", {"taskId": task_id})
        try:
            info = TaskInfo.model_validate(data)
        except ValidationError as exc:
            raise KieServerError(500, f"malformed recordInfo data: {describe(exc)}", operation="record_info") from None
        log.debug("KIE recordInfo answered", task_id=task_id, model=info.model, state=info.state)
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

    async def _create_with_retries(self, api_key: str, path: str, body: dict[str, Any]) -> str:
        backoff = Backoff(self._config.retry)
        while True:
            try:
                return await self._create_once(api_key, path, body)
            # Only rejections that certainly created nothing get here: a 429, or a transport
            # failure before sending (sent ones became KieUncertainError).
            except (KieRateLimitedError, KieTransportError) as exc:
                await self._pause_or_raise(backoff, exc)

    async def _create_once(self, api_key: str, path: str, body: dict[str, Any]) -> str:
        operation = "create_task"
        try:
            reply = await self._send(operation, api_key, "POST", path, json_body=body)
        except KieTransportError as exc:
            if exc.request_sent:
                raise KieUncertainError(exc.code, exc.message, operation=operation) from None
            raise
        if reply.code == 200:
            task_id = reply.data.get("taskId") if isinstance(reply.data, dict) else None
            if not isinstance(task_id, str) or not task_id:
                raise KieUncertainError(200, "accepted without a taskId", operation=operation)
            return task_id
        error = error_for(reply.code, reply.message, operation)
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
                raise error_for(reply.code, reply.message, operation)
            except (KieRateLimitedError, KieServerError, KieTransportError) as exc:
                await self._pause_or_raise(backoff, exc)

    async def _pause_or_raise(self, backoff: Backoff, exc: KieError) -> None:
        delay = backoff.next_delay()
        if delay is None:
            raise exc
        log.warning(
            "KIE call retried after a pause",
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
            "KIE request",
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
            log.exception("KIE metrics hook failed", operation=operation)
