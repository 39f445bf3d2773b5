"""The KIE client against the fake KIE server, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import socket
import struct
import time
import traceback
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import httpx
import pytest
import structlog
from aiohttp import web
from multidict import CIMultiDict

from sandbox.kie import CallbackPolicy, FakeKie, FakeKieConfig
from tenant_runtime.kie.callbacks import parse_callback, verify_signature
from tenant_runtime.kie.client import KieClient, KieClientConfig
from tenant_runtime.kie.errors import (
    KieAuthError,
    KieCallbackError,
    KieCircuitOpenError,
    KieError,
    KieInsufficientCreditsError,
    KieMaintenanceError,
    KieServerError,
    KieTimeoutError,
    KieTransportError,
    KieUncertainError,
    KieValidationError,
)
from tenant_runtime.kie.limits import RateLimit, RetryPolicy
from tenant_runtime.kie.tasks import TaskInfo
from tests.helpers import serving

API_KEY = "kie-test-key-3f9a1c77e2b04d5d8e61"
OTHER_KEY = "kie-other-key-0b7d55e1c9aa4f02"
UNKNOWN_KEY = "kie-unknown-key-77c1de0f3b2a9e45"
SECRETS = (API_KEY, OTHER_KEY, UNKNOWN_KEY)
WEBHOOK_KEY = "webhook-hmac-key-5e2f"
FAST_RETRY = RetryPolicy(attempts=4, base_delay_s=0.02, max_delay_s=0.1, budget_s=3.0)
PROMPT = {"prompt": "a red fox in snow", "aspect_ratio": "1:1"}


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


async def poll_until_final(client: KieClient, task_id: str, seen: list[str] | None = None) -> TaskInfo:
    deadline = time.monotonic() + 5.0
    while True:
        info = await client.record_info(API_KEY, task_id)
        if seen is not None:
            seen.append(info.state)
        if info.is_final:
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} still {info.state}")
        await asyncio.sleep(0.03)


@dataclass
class Hit:
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Receiver:
    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    failures_left: int = 0
    """Answer this many POSTs with 500 first, to exercise the fake's retries."""


class MakeFake(Protocol):
    def __call__(self, config: FakeKieConfig | None = None, **kwargs: Any) -> Awaitable[FakeKie]: ...


class MakeClient(Protocol):
    def __call__(self, base_url: str, **config: Any) -> KieClient: ...


@pytest.fixture(autouse=True)
def no_key_in_logs(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[list[MutableMapping[str, Any]]]:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        yield events
    out, err = capsys.readouterr()
    text = repr(events) + caplog.text + out + err
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        rec.hits.append(Hit(request.headers.copy(), await request.read()))
        if rec.failures_left > 0:
            rec.failures_left -= 1
            return web.Response(status=500)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/kie/callback", handle)
    async with serving(app) as url:
        rec.url = f"{url}/kie/callback"
        yield rec


@pytest.fixture
async def make_fake() -> AsyncIterator[MakeFake]:
    fakes: list[FakeKie] = []

    async def make(config: FakeKieConfig | None = None, **kwargs: Any) -> FakeKie:
        fake = FakeKie(config or FakeKieConfig(durations=(0.05, 0.15), callback_retry_delay_s=0.05), **kwargs)
        fake.register_key(API_KEY, 100, webhook_key=WEBHOOK_KEY)
        fake.register_key(OTHER_KEY, 100)
        await fake.start()
        fakes.append(fake)
        return fake

    yield make
    for fake in fakes:
        await fake.stop()


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    clients: list[KieClient] = []

    def make(base_url: str, **config: Any) -> KieClient:
        settings: dict[str, Any] = {"connect_timeout_s": 1.0, "read_timeout_s": 2.0, "retry": FAST_RETRY}
        client = KieClient(base_url, KieClientConfig(**{**settings, **config}))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def assert_valid_png(data: bytes) -> None:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        tag, payload = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(tag + payload) == crc
        chunks[tag] = payload
        offset += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + 3 * width)
    assert b"IEND" in chunks


async def test_success_via_signed_callback(make_fake: MakeFake, make_client: MakeClient, receiver: Receiver) -> None:
    fake = await make_fake()
    client = make_client(fake.base_url)

    task_id = await client.create_task(API_KEY, "z-image", PROMPT, receiver.url)

    await eventually(lambda: len(receiver.hits) == 1)
    hit = receiver.hits[0]
    timestamp, signature = hit.headers["X-Webhook-Timestamp"], hit.headers["X-Webhook-Signature"]
    assert verify_signature(task_id, timestamp, signature, WEBHOOK_KEY)
    assert not verify_signature(task_id, timestamp, signature, "another-key")
    assert not verify_signature("other-task", timestamp, signature, WEBHOOK_KEY)
    payload = parse_callback(hit.body)
    assert (payload.code, payload.task_id, payload.state) == (200, task_id, "success")
    assert payload.task.param["input"] == PROMPT
    assert (payload.consume_credits, payload.remained_credits) == (Decimal(1), Decimal(99))

    async with httpx.AsyncClient() as http:
        media = await http.get(payload.task.result_urls[0])
    assert media.headers["content-type"] == "image/png"
    assert_valid_png(media.content)

    info = await client.record_info(API_KEY, task_id)
    assert info.state == "success" and info.result_urls == payload.task.result_urls
    assert info.complete_time is not None and info.cost_time_ms
    assert await client.credit(API_KEY) == Decimal(99)


async def test_polling_when_callbacks_are_dropped(
    make_fake: MakeFake, make_client: MakeClient, receiver: Receiver
) -> None:
    fake = await make_fake(FakeKieConfig(durations=(0.3, 0.3), callbacks=CallbackPolicy(drop=True)))
    client = make_client(fake.base_url)

    task_id = await client.create_task(API_KEY, "z-image", PROMPT, receiver.url)
    delivered_id = await client.create_task(API_KEY, "z-image", PROMPT, receiver.url)
    fake.set_task_callbacks(delivered_id, CallbackPolicy(delay_s=0.05))
    states: list[str] = []
    info = await poll_until_final(client, task_id, states)

    assert info.state == "success" and info.result_urls[0].endswith(f"/files/{task_id}.png")
    assert "generating" in states and states.index("generating") < states.index("success")
    assert fake.state_of(task_id) == "success"
    await eventually(lambda: len(fake.callbacks) == 2 and fake.callbacks[1].delivered)
    assert fake.callbacks[0].task_id == task_id and fake.callbacks[0].dropped
    assert [parse_callback(hit.body).task_id for hit in receiver.hits] == [delivered_id]


async def test_duplicate_and_retried_callbacks(
    make_fake: MakeFake, make_client: MakeClient, receiver: Receiver
) -> None:
    fake = await make_fake(
        FakeKieConfig(durations=(0.05, 0.05), callbacks=CallbackPolicy(duplicates=3), callback_retry_delay_s=0.02)
    )
    client = make_client(fake.base_url)
    receiver.failures_left = 2

    task_id = await client.create_task(API_KEY, "z-image", PROMPT, receiver.url)

    await eventually(lambda: sum(d.delivered for d in fake.callbacks) == 3)
    assert len(receiver.hits) == 5
    assert {parse_callback(h.body).task_id for h in receiver.hits} == {task_id}
    assert [(d.copy, d.attempts) for d in fake.callbacks] == [(1, 3), (2, 1), (3, 1)]


async def test_failed_task(make_fake: MakeFake, make_client: MakeClient, receiver: Receiver) -> None:
    fake = await make_fake(FakeKieConfig(durations=(0.05, 0.1), message_key="message"))
    client = make_client(fake.base_url)

    task_id = await client.create_task(API_KEY, "z-image", {"prompt": "please FAIL"}, receiver.url)

    await eventually(lambda: len(receiver.hits) == 1)
    payload = parse_callback(receiver.hits[0].body)
    assert (payload.code, payload.state, payload.message) == (501, "fail", "Playground task failed.")
    assert (payload.task.fail_code, payload.task.fail_msg) == ("500", "content policy violation")
    info = await client.record_info(API_KEY, task_id)
    assert (info.state, info.fail_code, info.result_urls) == ("fail", "500", [])
    assert await client.credit(API_KEY) == Decimal(100)  # refunded


async def test_insufficient_credits(make_fake: MakeFake, make_client: MakeClient) -> None:
    fake = await make_fake(price=lambda _model, _input: 2.5)
    fake.register_key(OTHER_KEY, 2)
    client = make_client(fake.base_url)

    with pytest.raises(KieInsufficientCreditsError) as caught:
        await client.create_task(OTHER_KEY, "z-image", PROMPT)

    assert caught.value.code == 402 and not caught.value.retryable
    assert fake.tasks == {} and fake.calls("createTask") == 1
    await client.create_task(API_KEY, "z-image", PROMPT)
    assert fake.balance(API_KEY) == Decimal("97.5")


async def test_record_info_retries_429_and_500(make_fake: MakeFake) -> None:
    fake = await make_fake()
    seen: list[tuple[str, int]] = []
    config = KieClientConfig(retry=FAST_RETRY)
    async with KieClient(fake.base_url, config, on_request=lambda op, code, _s: seen.append((op, code))) as client:
        task_id = await client.create_task(API_KEY, "z-image", PROMPT)
        fake.inject("recordInfo", code=429)
        fake.inject("recordInfo", code=500)

        info = await client.record_info(API_KEY, task_id)

    assert info.task_id == task_id
    assert seen == [("create_task", 200), ("record_info", 429), ("record_info", 500), ("record_info", 200)]
    assert fake.calls("recordInfo") == 3


async def test_create_task_429_is_retried(make_fake: MakeFake, make_client: MakeClient) -> None:
    fake = await make_fake()
    fake.inject("createTask", code=429, times=2)
    client = make_client(fake.base_url)

    task_id = await client.create_task(API_KEY, "z-image", PROMPT)

    assert fake.calls("createTask") == 3 and list(fake.tasks) == [task_id]


async def test_create_task_after_sending_is_never_retried(make_fake: MakeFake, make_client: MakeClient) -> None:
    fake = await make_fake()
    client = make_client(fake.base_url, read_timeout_s=0.3)

    fake.inject("createTask", hang_s=5)
    with pytest.raises(KieUncertainError) as timed_out:
        await client.create_task(API_KEY, "z-image", PROMPT)
    assert fake.calls("createTask") == 1 and len(fake.tasks) == 1  # created, client unaware
    assert timed_out.value.code == 0 and "ReadTimeout" in timed_out.value.message

    fake.inject("createTask", code=500)
    with pytest.raises(KieUncertainError) as server_error:
        await client.create_task(API_KEY, "z-image", PROMPT)
    assert server_error.value.code == 500 and fake.calls("createTask") == 2


async def test_connect_failure_is_retried_then_reported(make_client: MakeClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{closed_port}")

    with pytest.raises(KieTransportError) as caught:
        await client.create_task(API_KEY, "z-image", PROMPT)

    assert not caught.value.request_sent and not isinstance(caught.value, KieUncertainError)


@pytest.mark.parametrize("mirror", [False, True])
async def test_body_code_is_authoritative(make_fake: MakeFake, make_client: MakeClient, mirror: bool) -> None:
    fake = await make_fake(FakeKieConfig(mirror_http_status=mirror))
    client = make_client(fake.base_url)

    fake.inject("createTask", code=455)
    with pytest.raises(KieMaintenanceError):
        await client.create_task(API_KEY, "z-image", PROMPT)
    with pytest.raises(KieAuthError):
        await client.credit(UNKNOWN_KEY)

    fake.inject("credit", code=455)
    async with httpx.AsyncClient() as http:
        raw = await http.get(f"{fake.base_url}/api/v1/chat/credit", headers={"Authorization": f"Bearer {API_KEY}"})
    assert raw.status_code == (455 if mirror else 200) and raw.json()["code"] == 455


async def test_validation_through_injected_validator(make_fake: MakeFake, make_client: MakeClient) -> None:
    def validator(model: str, params: Mapping[str, object]) -> list[str]:
        if model != "z-image":
            return [f"unknown model {model!r}"]
        return [] if params.get("aspect_ratio") in {"1:1", "16:9"} else ["aspect_ratio: must be 1:1 or 16:9"]

    fake = await make_fake(FakeKieConfig(message_key="message"), validator=validator)
    client = make_client(fake.base_url)

    with pytest.raises(KieValidationError) as caught:
        await client.create_task(API_KEY, "z-image", {"prompt": "x", "aspect_ratio": "2:1"})
    assert caught.value.code == 422 and "aspect_ratio: must be 1:1 or 16:9" in caught.value.message
    with pytest.raises(KieValidationError, match="unknown model 'no-such-model'"):
        await client.create_task(API_KEY, "no-such-model", PROMPT)
    assert fake.tasks == {} and fake.calls("createTask") == 2
    assert await client.create_task(API_KEY, "z-image", PROMPT) in fake.tasks


async def test_circuit_breaker_opens_and_recovers(make_fake: MakeFake, make_client: MakeClient) -> None:
    fake = await make_fake()
    client = make_client(fake.base_url, breaker_threshold=2, breaker_cooldown_s=0.3, retry=RetryPolicy(attempts=1))
    fake.inject("createTask", code=500, times=3, api_key=API_KEY)

    for _ in range(2):
        with pytest.raises(KieUncertainError):
            await client.create_task(API_KEY, "z-image", PROMPT)
    assert client.circuit_state(API_KEY) == "open"
    with pytest.raises(KieCircuitOpenError) as fast_fail:
        await client.create_task(API_KEY, "z-image", PROMPT)
    assert fake.calls("createTask") == 2 and 0 < fast_fail.value.retry_after_s <= 0.3
    await client.create_task(OTHER_KEY, "z-image", PROMPT)  # other tenants are unaffected

    await eventually(lambda: client.circuit_state(API_KEY) == "half_open", timeout=2)
    with pytest.raises(KieUncertainError):  # the probe fails: open again
        await client.create_task(API_KEY, "z-image", PROMPT)
    assert client.circuit_state(API_KEY) == "open"

    await eventually(lambda: client.circuit_state(API_KEY) == "half_open", timeout=2)
    task_id = await client.create_task(API_KEY, "z-image", PROMPT)
    assert client.circuit_state(API_KEY) == "closed" and task_id in fake.tasks
    assert fake.calls("createTask", API_KEY) == 4


async def test_base_url_spellings_make_identical_requests(make_fake: MakeFake) -> None:
    fake = await make_fake()
    spellings = [fake.base_url, f"{fake.base_url}/", f"{fake.base_url}/api/v1", f"{fake.base_url}/api/v1/"]
    seen: list[list[tuple[str, str, str]]] = []
    for spelling in spellings:
        start = len(fake.requests)
        async with KieClient(spelling) as client:
            task_id = await client.create_task(API_KEY, "z-image", PROMPT)
            await client.record_info(API_KEY, task_id)
            await client.credit(API_KEY)
        seen.append([(r.method, r.path, r.query.replace(task_id, "ID")) for r in fake.requests[start:]])

    assert (
        seen
        == [
            [
                ("POST", "/api/v1/jobs/createTask", ""),
                ("GET", "/api/v1/jobs/recordInfo", "taskId=ID"),
                ("GET", "/api/v1/chat/credit", ""),
            ]
        ]
        * 4
    )


async def test_output_kinds(make_fake: MakeFake, make_client: MakeClient) -> None:
    kinds = {"veo3": "video", "suno": "audio", "gpt-4o": "text"}
    fake = await make_fake(output_kind=lambda model: kinds.get(model, "image"))
    client = make_client(fake.base_url)
    tasks = {model: await client.create_task(API_KEY, model, PROMPT) for model in kinds}

    infos = {model: await poll_until_final(client, task_id) for model, task_id in tasks.items()}

    async with httpx.AsyncClient() as http:
        video = await http.get(infos["veo3"].result_urls[0])
        audio = await http.get(infos["suno"].result_urls[0])
    assert video.headers["content-type"] == "video/mp4" and video.content[4:8] == b"ftyp"
    assert audio.headers["content-type"] == "audio/mpeg" and audio.content[:2] == b"\xff\xfb"
    assert infos["gpt-4o"].result_urls == [] and infos["gpt-4o"].result_object is not None


async def test_client_queues_creations_instead_of_hitting_429(make_fake: MakeFake, make_client: MakeClient) -> None:
    fake = await make_fake(FakeKieConfig(enforce_rate_limit=True, create_rate=(3, 0.5)))
    # A slightly stricter window than the server's absorbs network jitter between the two clocks.
    client = make_client(fake.base_url, create_rate=RateLimit(3, 0.6))
    started = time.monotonic()

    await asyncio.gather(*(client.create_task(API_KEY, "z-image", PROMPT) for _ in range(6)))

    assert time.monotonic() - started >= 0.6
    assert len(fake.tasks) == 6 and all(r.code == 200 for r in fake.requests)


async def test_api_key_never_in_errors_or_logs(
    make_fake: MakeFake, make_client: MakeClient, no_key_in_logs: list[MutableMapping[str, Any]]
) -> None:
    fake = await make_fake()
    client = make_client(fake.base_url, read_timeout_s=0.2, retry=RetryPolicy(attempts=2, base_delay_s=0.01))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        unreachable = make_client(
            f"http://127.0.0.1:{probe.getsockname()[1]}", retry=RetryPolicy(attempts=2, base_delay_s=0.01)
        )
    fake.inject("createTask", hang_s=2)
    fake.inject("recordInfo", hang_s=2, times=2)
    fake.inject("credit", code=500, times=2)
    calls: list[Awaitable[object]] = [
        client.create_task(UNKNOWN_KEY, "z-image", PROMPT),
        client.record_info(UNKNOWN_KEY, "task"),
        client.create_task(API_KEY, "z-image", PROMPT),
        client.record_info(API_KEY, "task"),
        client.credit(API_KEY),
        unreachable.create_task(OTHER_KEY, "z-image", PROMPT),
        unreachable.credit(OTHER_KEY),
    ]
    errors: list[KieError] = []
    for call in calls:
        with pytest.raises(KieError) as caught:
            await call
        errors.append(caught.value)

    kinds = [type(e) for e in errors]
    assert kinds == [
        KieAuthError,
        KieAuthError,
        KieUncertainError,
        KieTimeoutError,
        KieServerError,
        KieTransportError,
        KieTransportError,
    ]
    for error in errors:
        rendered = str(error) + repr(error) + "".join(traceback.format_exception(error))
        for secret in SECRETS:
            assert secret not in rendered
    # The logs were captured and scanned: the retry line is among them.
    assert any(e.get("event") == "KIE call retried after a pause" for e in no_key_in_logs)


async def test_http_control_routes(make_fake: MakeFake, make_client: MakeClient) -> None:
    fake = await make_fake()
    client = make_client(fake.base_url)
    async with httpx.AsyncClient(base_url=f"{fake.base_url}/_control") as control:
        assert (await control.post("/keys", json={"api_key": UNKNOWN_KEY, "credits": 7.5})).status_code == 200
        assert (await control.post("/faults", json={"operation": "credit", "code": 455})).status_code == 200
        assert (await control.patch("/config", json={"bogus": 1})).status_code == 400
        patched = await control.patch("/config", json={"message_key": "message", "durations": [0.01, 0.02]})
        assert patched.json()["message_key"] == "message"

        with pytest.raises(KieMaintenanceError):
            await client.credit(UNKNOWN_KEY)
        assert await client.credit(UNKNOWN_KEY) == Decimal("7.5")
        task_id = await client.create_task(UNKNOWN_KEY, "z-image", PROMPT)

        state = (await control.get("/state")).json()
    assert state["keys"][UNKNOWN_KEY] == {"credits": 6.5, "create_calls": 1}
    assert [t["task_id"] for t in state["tasks"]] == [task_id]


def test_parse_callback_shapes() -> None:
    older = b'{"code": 501, "message": "boom", "data": {"task_id": "t1"}}'
    payload = parse_callback(older)
    assert (payload.task_id, payload.state, payload.message) == ("t1", "fail", "boom")
    assert (payload.task.fail_code, payload.task.fail_msg) == ("501", "boom")

    top_level_id = parse_callback(b'{"code": 200, "msg": "ok", "taskId": "t2", "data": {"resultJson": ""}}')
    assert (top_level_id.task_id, top_level_id.state, top_level_id.task.result_urls) == ("t2", "success", [])

    for bad in (b"not json", b"[]", b'{"code": 200, "data": {}}'):
        with pytest.raises(KieCallbackError):
            parse_callback(bad)


def test_verify_signature_rejects_stale_or_garbled() -> None:
    now = 1_700_000_000

    def sign(timestamp: int) -> str:
        digest = hmac.new(b"k", f"t1.{timestamp}".encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    assert verify_signature("t1", str(now - 10), sign(now - 10), "k", now=now)
    assert not verify_signature("t1", str(now - 301), sign(now - 301), "k", now=now)
    assert not verify_signature("t1", str(now + 301), sign(now + 301), "k", now=now)
    assert not verify_signature("t1", "yesterday", sign(now), "k", now=now)
    assert not verify_signature("t1", str(now), "ünïcode", "k", now=now)
