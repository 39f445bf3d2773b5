"""`/_control/...` JSON routes: the in-process control API for the sandbox and benchmark processes.

Every route is a thin adapter over a `FakeTelegram` method, so both ways of driving the fake behave
identically. Replies are `{"ok": true, "result": ...}` or `{"ok": false, "error": ...}` with 400 for
misuse, 408 for a wait that timed out and 409 for a declined payment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.telegram.model import ControlError, JSONObject, PaymentDeclinedError

if TYPE_CHECKING:
    from sandbox.telegram.server import FakeTelegram

Route = Callable[["FakeTelegram", "_Body"], Awaitable[Any]]


class _Body:
    """Typed access to a control request's JSON body (POST) or query string (GET)."""

    def __init__(self, values: JSONObject) -> None:
        self._values = values

    @classmethod
    async def of(cls, request: web.Request) -> _Body:
        if request.method == "GET":
            return cls(dict(request.query))
        try:
            body = await request.json() if request.body_exists else {}
        except ValueError as exc:
            raise ControlError("the body must be a JSON object") from exc
        if not isinstance(body, dict):
            raise ControlError("the body must be a JSON object")
        return cls(body)

    def opt_str(self, name: str) -> str | None:
        value = self._values.get(name)
        if value is not None and not isinstance(value, str):
            raise ControlError(f"{name} must be a string")
        return value

    def req_str(self, name: str) -> str:
        value = self.opt_str(name)
        if value is None:
            raise ControlError(f"{name} is required")
        return value

    def opt_int(self, name: str) -> int | None:
        value = self._values.get(name)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)  # query strings carry numbers as text
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ControlError(f"{name} must be an integer")
        return value

    def req_int(self, name: str) -> int:
        value = self.opt_int(name)
        if value is None:
            raise ControlError(f"{name} is required")
        return value

    def opt_float(self, name: str) -> float | None:
        value = self._values.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ControlError(f"{name} must be a number")
        return None if value is None else float(value)

    def opt_bool(self, name: str) -> bool | None:
        value = self._values.get(name)
        if value is not None and not isinstance(value, bool):
            raise ControlError(f"{name} must be a boolean")
        return value


def _rows(items: list[Any]) -> list[JSONObject]:
    return [dataclasses.asdict(item) for item in items]


async def _register(fake: FakeTelegram, body: _Body) -> Any:
    user = await fake.register_bot(
        body.req_str("token"), username=body.opt_str("username"), first_name=body.opt_str("first_name")
    )
    return user.to_api()


async def _send_text(fake: FakeTelegram, body: _Body) -> Any:
    update = await fake.send_text(
        body.req_str("token"),
        body.req_int("user_id"),
        body.req_str("text"),
        language_code=body.opt_str("language_code") or "ru",
        first_name=body.opt_str("first_name"),
        username=body.opt_str("username"),
    )
    return update.to_api()


async def _send_photo(fake: FakeTelegram, body: _Body) -> Any:
    update = await fake.send_photo(
        body.req_str("token"),
        body.req_int("user_id"),
        caption=body.opt_str("caption"),
        language_code=body.opt_str("language_code") or "ru",
        first_name=body.opt_str("first_name"),
        username=body.opt_str("username"),
    )
    return update.to_api()


async def _press_button(fake: FakeTelegram, body: _Body) -> Any:
    update = await fake.press_button(
        body.req_str("token"),
        body.req_int("user_id"),
        body.req_int("message_id"),
        body.req_str("callback_data"),
        force=body.opt_bool("force") or False,
    )
    return update.to_api()


async def _pay_invoice(fake: FakeTelegram, body: _Body) -> Any:
    charge_id = await fake.pay_invoice(
        body.req_str("token"),
        body.req_int("user_id"),
        body.req_int("invoice_message_id"),
        timeout=body.opt_float("timeout") or 10.0,
    )
    return {"telegram_payment_charge_id": charge_id}


async def _redeliver(fake: FakeTelegram, body: _Body) -> Any:
    update = await fake.redeliver(body.req_str("token"), body.req_int("update_id"))
    return update.to_api()


async def _transcript(fake: FakeTelegram, body: _Body) -> Any:
    return _rows(fake.transcript(body.req_str("token"), body.req_int("chat_id")))


async def _wait_for_bot_message(fake: FakeTelegram, body: _Body) -> Any:
    needle = body.opt_str("text_contains")
    entry = await fake.wait_for_bot_message(
        body.req_str("token"),
        body.req_int("chat_id"),
        predicate=None if needle is None else lambda entry: needle in (entry.text or entry.caption or ""),
        after_message_id=body.opt_int("after_message_id"),
        timeout=body.opt_float("timeout") or 5.0,
    )
    return dataclasses.asdict(entry)


async def _faults(fake: FakeTelegram, body: _Body) -> Any:
    token = body.req_str("token")
    if body.opt_bool("clear"):
        await fake.clear_faults(token)
    await fake.inject_faults(
        token,
        revoke=body.opt_bool("revoke"),
        rate_limit_calls=body.opt_int("rate_limit_calls"),
        rate_limit_method=body.opt_str("rate_limit_method"),
        retry_after=body.opt_int("retry_after") or 5,
        server_error_calls=body.opt_int("server_error_calls"),
        server_error_status=body.opt_int("server_error_status") or 500,
        latency=body.opt_float("latency"),
    )
    return True


async def _calls(fake: FakeTelegram, body: _Body) -> Any:
    return _rows(fake.calls(body.req_str("token"), body.opt_str("method")))


async def _callbacks(fake: FakeTelegram, body: _Body) -> Any:
    return _rows(fake.callbacks(body.req_str("token")))


async def _webhook_info(fake: FakeTelegram, body: _Body) -> Any:
    return fake.webhook_info(body.req_str("token")).to_api()


def _adapt(fake: FakeTelegram, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            result = await route(fake, await _Body.of(request))
        except PaymentDeclinedError as exc:
            return web.json_response({"ok": False, "error": f"payment declined: {exc}"}, status=409)
        except ControlError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        except TimeoutError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=408)
        return web.json_response({"ok": True, "result": result})

    return handle


def control_routes(fake: FakeTelegram) -> list[web.RouteDef]:
    posts: dict[str, Route] = {
        "bots": _register,
        "send_text": _send_text,
        "send_photo": _send_photo,
        "press_button": _press_button,
        "pay_invoice": _pay_invoice,
        "redeliver": _redeliver,
        "wait_for_bot_message": _wait_for_bot_message,
        "faults": _faults,
    }
    gets: dict[str, Route] = {
        "transcript": _transcript,
        "calls": _calls,
        "callbacks": _callbacks,
        "webhook_info": _webhook_info,
    }
    return [web.post(f"/_control/{name}", _adapt(fake, route)) for name, route in posts.items()] + [
        web.get(f"/_control/{name}", _adapt(fake, route)) for name, route in gets.items()
    ]
