"""Process settings from the environment (and an optional `.env`).

Invalid settings are reported as one line per problem by `load_settings`, never as a traceback,
and secret values are never echoed back.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.stars import parse_packages

TELEGRAM_API_DEFAULT = "https://api.telegram.org"
KIE_BASE_DEFAULT = "https://api.kie.ai"
SECRET_FIELDS = frozenset({"master_keys", "metrics_token", "operator_token", "database_url"})


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
    smoke_test_on_start: bool = False
    smoke_test_tenant: str | None = None
    smoke_test_model_id: str | None = None
    smoke_test_input_json: str | None = None

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
        if self.env == "production":
            if self.master_keys is None:
                raise ValueError("MASTER_KEYS is required in production (a generated key would be lost)")
            if self.database_url is None:
                raise ValueError("DATABASE_URL is required in production")
            if self.public_base_url and not self.public_base_url.startswith("https://"):
                raise ValueError("PUBLIC_BASE_URL must be https:// in production")
        return self

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


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"invalid setting {field.upper()}: {message}" if field != "settings" else message)
        raise SettingsError(lines) from None
