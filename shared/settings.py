"""Process settings from the environment (and an optional `.env`).

Invalid settings are reported as one line per problem by `load_settings`, never as a traceback,
and secret values are never echoed back. Every problem is reported at once: a bad PORT does not
hide a missing MASTER_KEYS, and production with nothing set names every setting it needs.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import strict
from shared.stars import parse_packages

TELEGRAM_API_DEFAULT = "https://api.telegram.org"
KIE_BASE_DEFAULT = "https://api.kie.ai"
SECRET_FIELDS = frozenset(
    {"master_keys", "metrics_token", "operator_token", "database_url", "platform_bot_token", "alert_webhook_url"}
)
CURRENCIES = ("RUB", "USD", "EUR")  # the currencies prices can be shown in (tenant_runtime.billing.pricing)
# Bearer tokens for /metrics and /status: long enough that guessing online is hopeless (the sign-in is
# throttled too), and printable ASCII without spaces, the only shape an Authorization header carries.
ACCESS_TOKEN_RE = re.compile(r"[\x21-\x7e]{24,512}")
BOT_TOKEN_SHAPE = re.compile(r"[0-9]{5,16}:[A-Za-z0-9_-]{35}")
# A private chat id is a user id (positive); groups and channels are negative (-100... for supergroups).
CHAT_ID_RE = re.compile(r"-?[0-9]{1,16}")
MAX_OPERATOR_CHATS = 20


def parse_chat_ids(value: str) -> tuple[int, ...]:
    """``"111, -1002233"`` -> (111, -1002233): Telegram chat ids, at most 20, no zero, no duplicates.
    The error names the item, never the whole value (the list is not secret, but short is clearer)."""
    chats: list[int] = []
    for raw in value.split(","):
        item = raw.strip()
        if not CHAT_ID_RE.fullmatch(item) or int(item) == 0:
            raise ValueError(f"{item[:20]!r} is not a Telegram chat id (a user id, or a negative group id)")
        if int(item) not in chats:
            chats.append(int(item))
    if len(chats) > MAX_OPERATOR_CHATS:
        raise ValueError(f"at most {MAX_OPERATOR_CHATS} chats")
    return tuple(chats)


def normalize_kie_base(url: str) -> str:
    """Return the KIE origin without a trailing slash or `/api/v1`, so paths are never doubled."""
    base = url.strip().rstrip("/")
    for suffix in ("/api/v1", "/api"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base.rstrip("/")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    env: Literal["development", "production"] = "development"
    database_url: SecretStr | None = None
    master_keys: SecretStr | None = None
    public_base_url: str | None = None
    bot_mode: Literal["webhook", "polling"] | None = None
    port: int = Field(default=10000, ge=1, le=65535)
    # Processes sharing the port, one per core (`auto`); read before the settings by supervisor.server.
    workers: str | None = None
    host: str = "0.0.0.0"
    telegram_api_base: str = TELEGRAM_API_DEFAULT
    kie_base_url: str = KIE_BASE_DEFAULT
    instance_name: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] | None = None
    data_dir: Path = Path(".data")
    db_pool_size: int = Field(default=10, ge=2, le=100)
    metrics_token: SecretStr | None = None
    operator_token: SecretStr | None = None
    # Money: user price = ceil(credits x markup x credit_rate_minor), in minor units (kopecks by default).
    credit_rate_minor: float = Field(default=40.0, gt=0)
    currency_code: str = "RUB"
    # Result downloads may reach loopback addresses: for tests and the sandbox, whose fakes listen on
    # 127.0.0.1; never in production (see tenant_runtime.generation.downloads).
    allow_loopback_downloads: bool = False
    # Telegram Stars top-ups: packages (in Stars) and what one Star credits, in minor units.
    stars_packages: str = "50,100,500"
    stars_rate_minor: int = Field(default=150, ge=1)
    kie_read_timeout_seconds: float = Field(default=30.0, gt=0, le=120)
    job_timeout_seconds: int = Field(default=300, ge=10, le=3600)
    hold_ttl_seconds: int = Field(default=3600, ge=60)
    # A Stars refund whose refundStarPayment got no answer is asked again after this long.
    refund_settle_after_seconds: float = Field(default=300.0, gt=0)
    telegram_connection_limit: int = Field(default=200, ge=10, le=2000)
    webhook_max_body_bytes: int = Field(default=512 * 1024, ge=1024)
    resync_interval_seconds: float = Field(default=60.0, gt=0)
    lock_heartbeat_seconds: float = Field(default=1.0, gt=0)
    lock_trust_window_seconds: float = Field(default=4.0, gt=0)
    # Alerts to operators (supervisor.alerts): a platform bot that writes to the operators' chats, and/or
    # a JSON POST to a webhook; both, one, or none (then nothing is sent).
    platform_bot_token: SecretStr | None = None
    operator_chat_ids: str | None = None
    alert_webhook_url: SecretStr | None = None
    alert_language: Literal["ru", "en"] = "ru"
    alert_interval_seconds: float = Field(default=5.0, ge=0.2, le=60)
    alert_max_per_minute: int = Field(default=10, ge=1, le=100)
    # Shops created by their owners through the platform bot (supervisor.onboarding): `approval` (an
    # operator approves each in the operators' chats), `open` (live at once), `off` (the bot only alerts).
    onboarding: Literal["approval", "open", "off"] = "approval"
    # Who the operator audit names for CLI actions (operator:<name>); else <login>@<host>.
    operator_name: str | None = Field(default=None, pattern=r"^[^\s]{1,64}$")
    smoke_test_on_start: bool = False
    smoke_test_tenant: str | None = None
    smoke_test_model_id: str | None = None
    smoke_test_input_json: str | None = None

    @field_validator("database_url")
    @classmethod
    def _dsn(cls, value: SecretStr | None) -> SecretStr | None:
        """The shape asyncpg needs, checked here so a typo is one line at startup, not a traceback at
        the first connection. The messages never quote the value: it holds the password."""
        if value is None:
            return None
        example = "a URL like postgresql://user:password@host:5432/dbname"
        try:
            parts = urlsplit(value.get_secret_value())
            if "," not in parts.netloc:  # several hosts (h1:5432,h2:5432) are asyncpg's own syntax
                _ = parts.port  # raises ValueError for a port that is not a number in 0-65535
        except ValueError:
            raise ValueError(f"is not {example}") from None
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"must be {example} (postgresql:// or postgres://)")
        return value

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: str | None) -> str | None:
        if strict.workers(value, os.cpu_count()) is None:
            raise ValueError(f"{value!r} is not 'auto' or a number of processes (1-{strict.MAX_WORKERS})")
        return value

    @field_validator("currency_code")
    @classmethod
    def _currency(cls, value: str) -> str:
        code = value.strip().upper()
        if code not in CURRENCIES:
            raise ValueError(f"{value!r} is not supported: use one of {', '.join(CURRENCIES)}")
        return code

    @field_validator("operator_token", "metrics_token")
    @classmethod
    def _access_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        if not ACCESS_TOKEN_RE.fullmatch(value.get_secret_value()):
            # The value itself is never echoed: this line goes to logs.
            raise ValueError(
                "must be 24-512 printable ASCII characters without spaces "
                "(e.g. the output of `python -m supervisor keys generate`)"
            )
        return value

    @field_validator("platform_bot_token")
    @classmethod
    def _platform_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if not BOT_TOKEN_SHAPE.fullmatch(value.get_secret_value().strip()):
            raise ValueError("is not a bot token from @BotFather (digits, a colon, 35 characters)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("operator_chat_ids")
    @classmethod
    def _chats(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return ",".join(str(c) for c in parse_chat_ids(value))

    @property
    def operator_chats(self) -> tuple[int, ...]:
        return parse_chat_ids(self.operator_chat_ids) if self.operator_chat_ids else ()

    @field_validator("alert_webhook_url")
    @classmethod
    def _alert_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        # The URL of a chat-ops webhook is a credential (Slack's, say): never quoted back.
        if value is None or value.get_secret_value() == "":
            return None
        parts = urlsplit(value.get_secret_value().strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return SecretStr(value.get_secret_value().strip())

    def alert_problems(self) -> list[str]:
        # Half a Telegram channel is a mistake, not a choice: say so at start, not at the first incident.
        if self.platform_bot_token is not None and not self.operator_chat_ids:
            return ["PLATFORM_BOT_TOKEN is set but OPERATOR_CHAT_IDS is not: alerts would reach nobody"]
        if self.operator_chat_ids and self.platform_bot_token is None:
            return ["OPERATOR_CHAT_IDS is set but PLATFORM_BOT_TOKEN is not: no bot to send alerts with"]
        return []

    @field_validator("stars_packages")
    @classmethod
    def _packages(cls, value: str) -> str:
        return ",".join(str(p) for p in parse_packages(value))

    @property
    def star_packages(self) -> tuple[int, ...]:
        """The platform's default Stars packages (a tenant may set its own)."""
        return parse_packages(self.stars_packages)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("kie_base_url")
    @classmethod
    def _kie(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return normalize_kie_base(value)

    @field_validator("telegram_api_base")
    @classmethod
    def _tg(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("public_base_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an origin like https://bots.example.com")
        return value.rstrip("/")

    @model_validator(mode="before")
    @classmethod
    def _render_is_production(cls, data: object) -> object:
        # Render sets RENDER=true in every service; treat it as production unless ENV says otherwise.
        if isinstance(data, dict) and os.environ.get("RENDER") and "env" not in {k.lower() for k in data}:
            data = {**data, "env": "production"}
        return data

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        problems = self.alert_problems() + self.production_problems()
        if problems:
            # One error for pydantic; load_settings splits it back into one line per problem.
            raise ValueError("\n".join(problems))
        return self

    def production_problems(self) -> list[str]:
        if self.env != "production":
            return []
        problems = []
        if self.master_keys is None:
            problems.append("MASTER_KEYS is required in production (a generated key would be lost)")
        if self.database_url is None:
            problems.append("DATABASE_URL is required in production")
        if self.public_base_url and not self.public_base_url.startswith("https://"):
            problems.append("PUBLIC_BASE_URL must be https:// in production")
        if self.allow_loopback_downloads:
            problems.append("ALLOW_LOOPBACK_DOWNLOADS is for tests and the sandbox, never production")
        if self.alert_webhook_url and not self.alert_webhook_url.get_secret_value().startswith("https://"):
            problems.append("ALERT_WEBHOOK_URL must be https:// in production")
        return problems

    @property
    def effective_bot_mode(self) -> Literal["webhook", "polling"]:
        if self.bot_mode is not None:
            return self.bot_mode
        return "webhook" if self.public_base_url else "polling"

    @property
    def effective_log_format(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.env == "production" else "console"


class SettingsError(Exception):
    """Raised with one human-readable line per invalid setting."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _lines(exc: ValidationError) -> tuple[list[str], set[str]]:
    """One line per problem, and the fields that have one."""
    lines: list[str] = []
    fields: set[str] = set()
    for err in exc.errors(include_input=False):
        field = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        if field:
            fields.add(field)
            lines.append(f"invalid setting {field.upper()}: {message}")
        else:  # a rule across settings: possibly several problems in one error
            lines.extend(message.split("\n"))
    return lines, fields


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines, bad = _lines(exc)
    if bad:
        # Pydantic checks the rules across settings only when every field is valid. Check them once more
        # with the invalid fields at their defaults, so their problems are reported now, not after the
        # operator fixed the first batch.
        fields = Settings.model_fields
        defaults = {name: fields[name].get_default(call_default_factory=True) for name in bad if name in fields}
        try:
            Settings(**{**overrides, **defaults})
        except ValidationError as again:
            lines += [line for line in _lines(again)[0] if line not in lines]
    raise SettingsError(lines)
