"""`POST /kie/callback/{slug}/{token}`: KIE.ai reports a task's end; the token in the URL names and
authenticates the job (see tenant_runtime.generation.callback_token). Resolve the tenant, then let
the job service verify and apply it.

With the database unreachable the answer is 503 and one warning line: KIE retries on 5xx, and an
outage is not a bug in this handler, so no traceback."""

from __future__ import annotations

from aiohttp import web

from shared.db import DB_UNAVAILABLE
from shared.logs import get_logger
from supervisor.http import error_response, json_response
from supervisor.webhooks import RuntimeResolver
from tenant_runtime.generation.callbacks import CallbackVerdict, receive_callback
from tenant_runtime.generation.jobs import JobService

__all__ = ["KieCallbacks"]

log = get_logger(__name__)


class KieCallbacks:
    def __init__(self, resolve: RuntimeResolver, jobs: JobService) -> None:
        self._resolve = resolve
        self._jobs = jobs

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        runtime = self._resolve(request.match_info["slug"])
        if runtime is None:
            return error_response(404, "unknown tenant")
        body = await request.read()
        try:
            verdict = await receive_callback(self._jobs, runtime, request.match_info["token"], body, request.headers)
        except DB_UNAVAILABLE as exc:
            log.warning("database unavailable", tenant=runtime.config.slug, error=type(exc).__name__)
            return error_response(503, "temporarily unavailable")
        status = _STATUS[verdict]
        return json_response({"ok": status == 200}, status=status)


_STATUS = {
    CallbackVerdict.ACCEPTED: 200,
    CallbackVerdict.BAD_TOKEN: 401,
    CallbackVerdict.BAD_SIGNATURE: 401,
    CallbackVerdict.BAD_BODY: 400,
    CallbackVerdict.FOREIGN_TASK: 409,
}
