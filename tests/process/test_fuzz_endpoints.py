"""Fuzzing every public endpoint of a real supervisor process (issue 15): webhook bodies with a valid
secret, bad secrets and headers, KIE callbacks with valid and invalid tokens, media tokens, status
cookies and credentials, /metrics. For every request: no 5xx (the database is up), the process stays
healthy, and a refused request (4xx) writes nothing.

The stack (fake Telegram, fake KIE) runs on an event loop in a thread, so the supervisor can call
the fakes while hypothesis drives plain synchronous HTTP requests. Bounded: the whole module stays
well under 60 s on the shared 2-core machine (examples per endpoint below).
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sandbox.stack import Stack, SupervisorProcess
from shared.crypto import KeyRing
from shared.db import create_pool
from supervisor.ops_access import COOKIE_NAME
from supervisor.tenants import TenantStore
from tenant_runtime.config import TenantConfig
from tenant_runtime.generation.callback_token import make_token
from tenant_runtime.generation.media_links import media_token
from tests.helpers import LoopThread

pytestmark = pytest.mark.slow

OPERATOR_TOKEN = "op-" + secrets.token_urlsafe(24)
METRICS_TOKEN = "mt-" + secrets.token_urlsafe(24)
USERS = (881_000_001, 881_000_002, 881_000_003)
NESTED_5000 = b'{"a":' * 5000 + b"1" + b"}" * 5000
_FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


def fuzz(examples: int) -> settings:
    return settings(_FUZZ, max_examples=examples)


# Tables a request could write to and nothing in the background touches (the poller, the lock beat,
# the instance heartbeat and the hold sweeper write elsewhere).
_SNAPSHOT_SQL = """
    SELECT (SELECT md5(coalesce(string_agg(tenant_id || ':' || update_id || ':' || status, ',' ORDER BY 1), ''))
              FROM updates_inbox) AS inbox,
           (SELECT md5(coalesce(string_agg(task_id, ',' ORDER BY 1), '')) FROM kie_orphan_callbacks) AS orphans,
           (SELECT md5(coalesce(string_agg(tenant_id || ':' || user_id, ',' ORDER BY 1), '')) FROM bot_users) AS users,
           (SELECT md5(coalesce(string_agg(j::text, ',' ORDER BY 1), '')) FROM jobs j WHERE id = $1) AS job,
           (SELECT count(*) FROM ledger_entries) AS ledger,
           (SELECT count(*) FROM star_payments) AS payments
"""


@dataclass
class Env:
    loop: LoopThread
    stack: Stack
    process: SupervisorProcess
    pool: asyncpg.Pool
    tenant: TenantConfig
    job_id: int  # a delivered job: valid callbacks for it change nothing
    http: httpx.Client

    @property
    def base(self) -> str:
        return self.process.base_url

    def snapshot(self) -> asyncpg.Record:
        return self.loop.run(self.pool.fetchrow(_SNAPSHOT_SQL, self.job_id))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a refused one (4xx) must leave the database as it was, none may be a 5xx."""
        before = self.snapshot()
        response = self.http.request(method, self.base + path, **kwargs)
        assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
        if 400 <= response.status_code < 500:
            assert self.snapshot() == before, (method, path, response.status_code, "a refused request wrote")
        return response


async def _start(database_url: str) -> tuple[Stack, SupervisorProcess, asyncpg.Pool, TenantConfig, int]:
    stack = Stack(database_url, Path(tempfile.mkdtemp(prefix="tgsup-fuzz-")))
    await stack.start()
    demo = await stack.add_tenant("fuzz-shop", admins=(USERS[0],))
    process = await stack.start_supervisor("fuzz-1", OPERATOR_TOKEN=OPERATOR_TOKEN, METRICS_TOKEN=METRICS_TOKEN)
    await process.wait_active(1)
    pool = await create_pool(database_url, 2, application_name="tests-fuzz")
    tenant = await TenantStore(pool, KeyRing([stack.master_key])).get(demo.slug)
    job_id = await pool.fetchval(
        """INSERT INTO jobs (tenant_id, user_id, chat_id, model, params, kie_input, price, idempotency_key,
               correlation_id, status, task_id, deadline_at, finished_at)
           VALUES ($1, $2, $2, 'm', '{}', '{}', 0, 'fuzz-delivered', 'c', 'delivered', 'fuzz-task',
                   now() + interval '1 day', now())
           RETURNING id""",
        tenant.id,
        USERS[0],
    )
    for user in USERS:  # chats the fake knows, so handlers can answer in them
        await stack.telegram.send_text(demo.token, user, "hello")
    return stack, process, pool, tenant, job_id


@pytest.fixture(scope="module")
def env(module_database: str) -> Iterator[Env]:
    loop = LoopThread()
    stack, process, pool, tenant, job_id = loop.run(_start(module_database))
    started = time.monotonic()
    with httpx.Client(timeout=30) as http:
        yield Env(loop, stack, process, pool, tenant, job_id, http)
    try:
        assert time.monotonic() - started < 60, "the fuzz suite must stay bounded"
    finally:
        loop.run(pool.close())
        loop.run(process.stop())
        loop.run(stack.stop())
        loop.close()


@pytest.fixture(autouse=True)
def healthy_after(env: Env) -> Iterator[None]:
    yield
    assert env.process.proc.returncode is None, env.process.log()[-3000:]
    health = env.http.get(f"{env.base}/health").json()
    assert health["db"] == "ok" and health["tenants"]["by_state"] == {"active": 1}, health
    # An exception that escaped a request handler is logged by aiohttp and answered 500.
    unhandled = [line for line in env.process.log().splitlines() if "Error handling request" in line]
    assert unhandled == [], unhandled[:3]


# --- strategies ------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25,
)
ids = st.sampled_from(USERS) | st.integers(min_value=-(2**70), max_value=2**70)
texts = st.text(max_size=80) | st.sampled_from(
    ["/start", "/admin", "/help", "/cancel", "/balance", "\x00", "/start ref_x"]
)


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    """Update-shaped bodies: mostly valid for aiogram, with hostile values and missing parts."""
    user = draw(ids)
    sender = {"id": user, "is_bot": draw(st.booleans()), "first_name": draw(st.text(max_size=20))}
    chat = {
        "id": draw(st.just(user) | ids),
        "type": draw(st.sampled_from(["private", "group", "supergroup", "channel"])),
    }
    message: dict[str, Any] = {"message_id": draw(st.integers(min_value=1, max_value=10**6)), "date": 1_700_000_000}
    message["chat"] = chat
    if draw(st.integers(0, 4)) > 0:  # else none: channel posts, messages on behalf of a chat
        message["from"] = sender
    message["text"] = draw(texts)
    kind = draw(st.sampled_from(["message", "edited_message", "channel_post", "callback_query", "my_chat_member"]))
    update: dict[str, Any] = {"update_id": draw(st.integers(min_value=-5, max_value=2**64))}
    if kind == "callback_query":
        update[kind] = {
            "id": draw(st.text(min_size=1, max_size=10)),
            "from": sender,
            "chat_instance": "1",
            "data": draw(st.text(max_size=64) | st.sampled_from(["md:x:1", "v:0:0", "adm:stats", "cat:image:0"])),
            "message": message,
        }
    else:
        update[kind] = message
    if draw(st.integers(0, 9)) == 0:
        update[draw(st.text(max_size=8))] = draw(json_values)
    return update


# --- webhook -------------------------------------------------------------------------------------------


def _sendable(value: bytes) -> bool:
    """Whether an HTTP client can put `value` in a header (no control characters; h11 refuses them)."""
    return not any((c < 0x20 and c != 0x09) or c == 0x7F for c in value)


def _webhook(env: Env, body: bytes, secret: str | bytes | None = None, **headers: str | bytes) -> httpx.Response:
    sent: dict[str, str | bytes] = {"Content-Type": "application/json", **headers}
    sent["X-Telegram-Bot-Api-Secret-Token"] = env.tenant.webhook_secret if secret is None else secret
    return env.request("POST", f"/webhook/{env.tenant.slug}", content=body, headers=sent)


@fuzz(120)
@given(update=updates())
def test_webhook_updates_with_the_valid_secret(env: Env, update: dict[str, Any]) -> None:
    response = _webhook(env, json.dumps(update).encode())
    assert response.status_code in (200, 400), response.text


@fuzz(60)
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
@example(body=NESTED_5000)
@example(body=b"[" * 5000 + b"]" * 5000)
@example(body=b'{"update_id": NaN}')
@example(body=b"\xff\xfe")
@example(body=b'{"update_id": ' + b"9" * 5000 + b"}")
def test_webhook_bodies_that_are_not_updates(env: Env, body: bytes) -> None:
    response = _webhook(env, body)
    assert response.status_code in (200, 400, 413), response.text


@fuzz(60)
@given(secret=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode()))
@example(secret="é".encode())
@example(secret=b"\xff" * 40)
@example(secret=b"a" * 5000)
def test_webhook_with_a_wrong_secret_writes_nothing(env: Env, secret: bytes) -> None:
    if secret == env.tenant.webhook_secret.encode() or not _sendable(secret):
        return  # the one right answer, and bytes no HTTP client sends in a header
    response = _webhook(env, json.dumps({"update_id": 1, "message": {}}).encode(), secret=secret.strip())
    assert response.status_code == 401


def test_a_message_without_a_sender_is_handled_not_failed(env: Env) -> None:
    """Issue 15, item 6: the admin filter got no `ctx` for a message without `from` (TypeError)."""
    update_id = 7_000_000 + secrets.randbelow(10**6)
    update = {
        "update_id": update_id,
        "message": {
            "message_id": 5,
            "date": 1_700_000_000,
            "chat": {"id": USERS[1], "type": "private"},
            "text": "/admin",
        },
    }
    assert _webhook(env, json.dumps(update).encode()).status_code == 200
    status = env.loop.run(
        env.pool.fetchval(
            "SELECT status FROM updates_inbox WHERE tenant_id = $1 AND update_id = $2", env.tenant.id, update_id
        )
    )
    assert status == "done"
    assert "TypeError" not in env.process.log()


# --- KIE callbacks ----------------------------------------------------------------------------------------


def _callback(env: Env, token: str, body: bytes, **headers: str) -> httpx.Response:
    return env.request(
        "POST", f"/kie/callback/{env.tenant.slug}/{quote(token, safe='')}", content=body, headers=headers
    )


callback_bodies = st.fixed_dictionaries(
    {
        "code": st.sampled_from([200, 501, 0]) | st.integers() | st.text(max_size=5),
        "msg": st.text(max_size=20),
        "data": st.fixed_dictionaries(
            {"taskId": st.sampled_from(["fuzz-task", "other-task"]) | st.text(max_size=10)},
            optional={
                "state": st.sampled_from(["success", "fail", "generating", "waiting"]) | json_scalars,
                # URLs are never fetched on these paths; still, only loopback ones, in case they were.
                "resultJson": st.just('{"resultUrls": ["http://127.0.0.1:9/r.png"]}') | st.text(max_size=40),
                "createTime": json_scalars | st.just("1e400"),
                "failCode": json_scalars,
            },
        ),
    }
).map(lambda d: json.dumps(d).encode())


@fuzz(80)
@given(body=callback_bodies | st.binary(max_size=200), known=st.booleans())
@example(body=NESTED_5000, known=True)
@example(body=b'{"code": 200, "data": {"taskId": "x\\u0000", "state": "success"}}', known=False)
def test_callbacks_with_valid_tokens(env: Env, body: bytes, known: bool) -> None:
    # A token made with the tenant's secret: for the delivered job (nothing may change), or for a job
    # that does not exist (the callback is kept as an orphan).
    job_id = env.job_id if known else 9_000_000_000 + secrets.randbelow(10**9)
    response = _callback(env, make_token(env.tenant.callback_secret, env.tenant.id, job_id), body)
    assert response.status_code in (200, 400, 409), response.text


@fuzz(80)
@given(token=st.text(max_size=120) | st.from_regex(r"[0-9]{1,30}\.[0-9a-f]{30,34}", fullmatch=True))
@example(token="²." + "0" * 32)
@example(token="1" * 5000 + "." + "0" * 32)
@example(token="1." + "é" * 32)
def test_callbacks_with_invalid_tokens_write_nothing(env: Env, token: str) -> None:
    if not token or token in (".", ".."):
        return  # not a path segment
    response = _callback(env, token, b'{"code": 200, "data": {"taskId": "fuzz-task", "state": "success"}}')
    assert response.status_code in (401, 404), response.text


# --- media -----------------------------------------------------------------------------------------------


@fuzz(60)
@given(
    token=st.text(max_size=120)
    | st.from_regex(r"[A-Za-z0-9_-]{1,40}\.[0-9]{1,14}\.[A-Za-z0-9_-]{20,28}", fullmatch=True)
    | st.text(min_size=1, max_size=40).map(lambda f: f"signed:{f}")
)
@example(token="eA.².x")
@example(token="eA.99999999999.é")
@example(token="eA." + "9" * 5000 + ".x")
def test_media_tokens(env: Env, token: str) -> None:
    if token.startswith("signed:"):  # a genuine token for a file Telegram does not have
        token = media_token(env.tenant.callback_secret, env.tenant.id, token.removeprefix("signed:"))
    if not token or token in (".", ".."):
        return
    response = env.request("GET", f"/media/{env.tenant.slug}/{quote(token, safe='')}")
    assert response.status_code == 404, response.text


# --- status and metrics --------------------------------------------------------------------------------

header_values = st.binary(max_size=200).filter(lambda b: _sendable(b)) | st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs"]), max_size=200
).map(lambda t: t.encode())


@fuzz(80)
@given(
    path=st.sampled_from(["/status", "/status.json", "/metrics", "/status?tenant=fuzz-shop"]),
    cookie=header_values,
    authorization=header_values | st.just(b"Bearer ") | header_values.map(lambda b: b"Bearer " + b),
    forwarded=st.sampled_from([b"", b"203.0.113.50", b"\xff", b"1.2.3.4, 5.6.7.8", b"::1"]),
)
@example(path="/status.json", cookie=f"{COOKIE_NAME}=².x".encode(), authorization=b"", forwarded=b"")
@example(path="/status.json", cookie=f"{COOKIE_NAME}={'9' * 5000}.x".encode(), authorization=b"", forwarded=b"")
@example(path="/metrics", cookie=b"", authorization="Bearer é".encode(), forwarded=b"")
def test_status_and_metrics_credentials(
    env: Env, path: str, cookie: bytes, authorization: bytes, forwarded: bytes
) -> None:
    headers = {"Cookie": cookie.strip(), "Authorization": authorization.strip(), "X-Forwarded-For": forwarded}
    if not cookie.startswith(COOKIE_NAME.encode()):
        headers["Cookie"] = f"{COOKIE_NAME}=".encode() + cookie.strip()
    response = env.request("GET", path, headers=headers)
    # 400: a header aiohttp's parser refuses (a control character) before any of our code runs.
    assert response.status_code in (400, 401, 429), response.text


@fuzz(40)
@given(
    body=st.binary(max_size=300) | st.text(max_size=100).map(lambda t: f"token={t}".encode()),
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=x", "text/plain"]
    ),
)
def test_status_sign_in_bodies(env: Env, body: bytes, content_type: str) -> None:
    response = env.request(
        "POST", "/status", content=body, headers={"Content-Type": content_type, "X-Forwarded-For": "203.0.113.60"}
    )
    assert response.status_code in (400, 401, 429), response.text


def test_the_right_credentials_still_work(env: Env) -> None:
    # From an address the fuzzing above did not throttle (it guessed from 127.0.0.1 too).
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "X-Forwarded-For": "198.51.100.99"}
    assert env.request("GET", "/status.json", headers=operator).status_code == 200
    assert env.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200
    assert env.request("GET", "/health").status_code == 200
