"""Signed URL tokens: KIE callback tokens and media links, bound to their tenant, never forgeable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tenant_runtime.generation.callback_token import make_token, read_token
from tenant_runtime.generation.media_links import TOKEN_TTL_SECONDS, media_token, read_media_token


@given(job_id=st.integers(min_value=1, max_value=10**15), tenant_id=st.integers(min_value=1, max_value=10**9))
def test_callback_token_names_its_job_for_its_tenant_only(job_id: int, tenant_id: int) -> None:
    token = make_token("secret-a", tenant_id, job_id)
    assert read_token("secret-a", tenant_id, token) == job_id
    assert read_token("secret-b", tenant_id, token) is None
    assert read_token("secret-a", tenant_id + 1, token) is None
    forged = f"{job_id + 1}.{token.split('.', 1)[1]}"
    assert read_token("secret-a", tenant_id, forged) is None


def test_bad_callback_tokens() -> None:
    for token in ("", "x", "1.", ".abc", "1." + "z" * 31, "-1." + "0" * 32, "9" * 40 + "." + "0" * 32):
        assert read_token("s", 1, token) is None


@given(file_id=st.text(min_size=1, max_size=120))
def test_media_token_round_trip_and_binding(file_id: str) -> None:
    token = media_token("secret", 7, file_id, now=1_000_000)
    assert read_media_token("secret", 7, token, now=1_000_100) == file_id
    assert read_media_token("secret", 8, token, now=1_000_100) is None
    assert read_media_token("other", 7, token, now=1_000_100) is None
    assert read_media_token("secret", 7, token, now=1_000_001 + TOKEN_TTL_SECONDS) is None


def test_bad_media_tokens() -> None:
    for token in ("", "abc", "abc.notanumber.mac", "!!!.99999999999.mac"):
        assert read_media_token("s", 1, token) is None
