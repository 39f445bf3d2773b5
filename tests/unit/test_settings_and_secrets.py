"""Settings validation, KIE base URL normalisation, encryption, and redaction of every secret."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from shared.crypto import CryptoError, KeyRing, generate_key
from shared.logs import configure_logging, get_logger
from shared.redact import REDACTOR, mask
from shared.settings import CURRENCIES, SettingsError, load_settings, normalize_kie_base
from tenant_runtime.billing.pricing import format_money

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq"


@pytest.mark.parametrize("suffix", ["", "/", "/api/v1", "/api/v1/", "/api", "//"])
def test_kie_base_url_spellings_are_one_origin(suffix: str) -> None:
    assert normalize_kie_base("https://api.kie.ai" + suffix) == "https://api.kie.ai"
    assert load_settings(kie_base_url="https://api.kie.ai" + suffix).kie_base_url == "https://api.kie.ai"


@given(
    host=st.from_regex(r"[a-z]{1,10}(\.[a-z]{2,5}){1,2}", fullmatch=True),
    suffix=st.sampled_from(["", "/", "/api/v1", "/api/v1/"]),
)
def test_kie_normalisation_is_idempotent(host: str, suffix: str) -> None:
    once = normalize_kie_base(f"https://{host}{suffix}")
    assert once == f"https://{host}" and normalize_kie_base(once) == once


def test_invalid_settings_give_one_line_each_and_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_key()
    with pytest.raises(SettingsError) as caught:
        load_settings(port="abc", log_format="xml", kie_base_url="ftp://x", master_keys=secret, bot_mode="push")
    lines = caught.value.lines
    assert len(lines) == 4, lines
    assert {line.split(":")[0] for line in lines} == {
        "invalid setting PORT",
        "invalid setting LOG_FORMAT",
        "invalid setting KIE_BASE_URL",
        "invalid setting BOT_MODE",
    }
    assert secret not in str(caught.value)


def test_production_requires_database_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "MASTER_KEYS", "RENDER"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SettingsError, match="MASTER_KEYS is required in production"):
        load_settings(env="production")
    monkeypatch.setenv("RENDER", "true")
    with pytest.raises(SettingsError, match="required in production"):
        load_settings()
    ok = load_settings(
        env="production",
        master_keys=generate_key(),
        database_url="postgresql://x/y",
        public_base_url="https://bots.example.com",
    )
    assert ok.effective_log_format == "json" and ok.effective_bot_mode == "webhook"
    with pytest.raises(SettingsError, match="https"):
        load_settings(
            env="production",
            master_keys=generate_key(),
            database_url="postgresql://x/y",
            public_base_url="http://bots.example.com",
        )


@given(st.text(max_size=300))
def test_encryption_round_trip_and_binding(plaintext: str) -> None:
    ring = KeyRing([generate_key(), generate_key()])
    token = ring.encrypt(plaintext, scope="tenant:1", column="bot_token")
    assert ring.decrypt(token, scope="tenant:1", column="bot_token") == plaintext
    with pytest.raises(CryptoError):
        ring.decrypt(token, scope="tenant:2", column="bot_token")


def test_old_keys_decrypt_and_unknown_keys_are_named() -> None:
    old, new = generate_key(), generate_key()
    token = KeyRing([old]).encrypt("secret", scope="s", column="c")
    assert KeyRing([new, old]).decrypt(token, scope="s", column="c") == "secret"
    assert KeyRing([new, old]).needs_rotation(token)
    with pytest.raises(CryptoError, match="not in MASTER_KEYS"):
        KeyRing([new]).decrypt(token, scope="s", column="c")
    with pytest.raises(CryptoError, match="altered"):
        KeyRing([old]).decrypt(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), scope="s", column="c")
    with pytest.raises(CryptoError, match="32 bytes"):
        KeyRing(["c2hvcnQ"])


def test_mask_shows_only_the_ends() -> None:
    assert mask(TOKEN) == "1234…sawq"
    assert mask("short") == "………"


def test_every_log_path_is_redacted() -> None:
    stream = io.StringIO()
    structlog.reset_defaults()
    configure_logging("DEBUG", "json", stream=stream)
    registered = "kie_" + "s3cr3t" * 5
    REDACTOR.register(registered)
    log = get_logger("tests.redaction")
    log.info("calling", url=f"https://api.telegram.org/bot{TOKEN}/getMe", key=registered, nested={"k": [registered]})
    logging.getLogger("aiohttp.client").warning("GET https://api.telegram.org/bot%s/getUpdates failed", TOKEN)
    try:
        raise RuntimeError(f"boom with {registered} and {TOKEN}")
    except RuntimeError:
        log.exception("handler failed")
        logging.getLogger("aiogram.dispatcher").exception("stdlib traceback")
    output = stream.getvalue()
    assert TOKEN not in output and registered not in output
    assert "1234…sawq" in output
    lines = [json.loads(line) for line in output.strip().splitlines()]
    assert len(lines) == 4 and all("event" in line for line in lines)
    assert "Traceback" in lines[2]["exception"] and "Traceback" in lines[3]["exception"]
    structlog.reset_defaults()
    configure_logging("INFO", "console")


# --- careless operators (issue 15: items 4, 15, 20) -----------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "MASTER_KEYS", "RENDER", "ENV", "PORT", "PUBLIC_BASE_URL", "CURRENCY_CODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no .env file


@pytest.mark.usefixtures("clean_env")
def test_every_settings_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env="production")
    assert caught.value.lines == [
        "MASTER_KEYS is required in production (a generated key would be lost)",
        "DATABASE_URL is required in production",
    ]
    # A bad field used to hide the rules across settings (pydantic skips them when a field fails).
    with pytest.raises(SettingsError) as caught:
        load_settings(env="production", port="abc", currency_code="XYZ", public_base_url="http://x.example")
    lines = caught.value.lines
    assert [line.split(":")[0] for line in lines] == [
        "invalid setting PORT",
        "invalid setting CURRENCY_CODE",
        "MASTER_KEYS is required in production (a generated key would be lost)",
        "DATABASE_URL is required in production",
        "PUBLIC_BASE_URL must be https",
    ]


@pytest.mark.usefixtures("clean_env")
def test_currency_code_is_checked_at_startup() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(currency_code="XYZ")
    assert caught.value.lines == ["invalid setting CURRENCY_CODE: 'XYZ' is not supported: use one of RUB, USD, EUR"]
    assert load_settings(currency_code=" usd ").currency_code == "USD"
    for code in CURRENCIES:  # every currency the settings accept can be shown to a user
        assert format_money(12345, load_settings(currency_code=code).currency_code, "en")


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("field", ["operator_token", "metrics_token"])
def test_short_or_odd_access_tokens_are_refused(field: str) -> None:
    for bad in ("hunter2", "a" * 23, "with spaces in it " * 3, "ключ" * 10, "a" * 513):
        with pytest.raises(SettingsError) as caught:
            load_settings(**{field: bad})
        assert caught.value.lines[0].startswith(f"invalid setting {field.upper()}: must be 24-512")
        assert bad not in str(caught.value)
    good = generate_key()
    assert getattr(load_settings(**{field: good}), field).get_secret_value() == good


@pytest.mark.usefixtures("clean_env")
def test_loopback_downloads_are_never_allowed_in_production() -> None:
    assert load_settings().allow_loopback_downloads is False
    assert load_settings(allow_loopback_downloads="true").allow_loopback_downloads is True
    with pytest.raises(SettingsError, match="ALLOW_LOOPBACK_DOWNLOADS is for tests"):
        load_settings(
            env="production", master_keys=generate_key(), database_url="postgresql://x/y", allow_loopback_downloads=True
        )
