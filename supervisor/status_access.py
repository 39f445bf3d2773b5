"""The answer for a request to an operator page that is not let in: the rules of /status, owned by
`OpsEndpoints`, applied to every page under /status/ (broadcasts, statistics)."""

from __future__ import annotations

from aiohttp import web

from supervisor.http import json_response
from supervisor.ops import OpsEndpoints
from supervisor.ops_access import Access
from supervisor.ops_html import page as _page

__all__ = ["refused"]


def refused(ops: OpsEndpoints, request: web.Request, *, page: bool) -> web.StreamResponse | None:
    """None when the request may see the page; else the 404 / 429 / 401 it gets (HTML or JSON)."""
    access = ops._access(request)
    if access in (Access.GRANTED, Access.OPEN):
        return None
    if access is Access.DISABLED:
        return json_response({"ok": False, "error": "not enabled: set OPERATOR_TOKEN"}, status=404)
    if access is Access.THROTTLED:
        return json_response({"ok": False, "error": "too many wrong tokens; try again later"}, status=429)
    if page:
        return _page("Sign in", '<p>Sign in on <a href="/status">/status</a> first.</p>', status=401)
    return json_response({"ok": False, "error": "unauthorized"}, status=401)
