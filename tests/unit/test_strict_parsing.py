"""Strict parsing of what callers send: every token, id, cookie part and JSON body refused by shape,
never by an exception from deeper down (issue 15, items 2 and 3)."""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shared import strict
from tenant_runtime.generation.callback_token import make_token, read_token
from tenant_runtime.generation.media_links import media_token, read_media_token
from tenant_runtime.kie.callbacks import parse_callback, verify_signature
from tenant_runtime.kie.errors import KieCallbackError

NESTED_5000 = b'{"a":' * 5000 + b"1" + b"}" * 5000
DIGITS = re.compile(r"[0-9]+")


@given(st.text(max_size=60))
@example("²")
@example("٣")
@example("1" * 5000)
@example("-1")
@example(" 12")
def test_uint_accepts_ascii_digits_only(value: str) -> None:
    parsed = strict.uint(value, max_digits=18)
    if DIGITS.fullmatch(value) and len(value) <= 18:
        assert parsed == int(value)
    else:
        assert parsed is None


@given(st.text(max_size=80), st.integers(min_value=1, max_value=40))
def test_token_is_bounded_ascii_of_its_alphabet(value: str, max_len: int) -> None:
    parsed = strict.token(value, alphabet=strict.HEX, max_len=max_len)
    if parsed is not None:
        assert parsed == value and 1 <= len(value) <= max_len and value.isascii()
        assert set(value) <= set("0123456789abcdef")


@given(st.binary(max_size=300))
def test_loads_raises_only_json_error_on_bytes(body: bytes) -> None:
    with contextlib.suppress(strict.JsonError):
        strict.loads(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@given(json_values)
def test_loads_round_trips_ordinary_json(value: object) -> None:
    assert strict.loads(json.dumps(value)) == value


@pytest.mark.parametrize("opening,closing", [(b'{"a":', b"}"), (b"[", b"]")])
def test_depth_limit_is_exact_and_deep_bodies_are_refused(opening: bytes, closing: bytes) -> None:
    def nested(depth: int) -> bytes:
        return opening * depth + b"1" + closing * depth

    strict.loads(nested(strict.JSON_MAX_DEPTH))
    for depth in (strict.JSON_MAX_DEPTH + 1, 900, 5000, 100_000):
        with pytest.raises(strict.JsonError, match="nested too deep"):
            strict.loads(nested(depth))


def test_nan_infinity_and_unstorable_text() -> None:
    for body in (b"NaN", b"[Infinity]", b'{"a": -Infinity}'):
        with pytest.raises(strict.JsonError):
            strict.loads(body)
    for body in (b'{"a": "x\\u0000y"}', b'["\\ud800"]', b'{"\\u0000": 1}'):
        assert strict.loads(body) is not None  # parses: only callers that store it as it came refuse it
        with pytest.raises(strict.JsonError, match="cannot store"):
            strict.loads(body, storable=True)


# --- the tokens built on it ------------------------------------------------------------------------


@given(st.text(max_size=120))
@example("².00000000000000000000000000000000")
@example("1." + "é" * 32)
@example("1" * 5000 + "." + "0" * 32)
def test_callback_tokens_never_raise(token: str) -> None:
    job_id = read_token("secret", 1, token)
    assert job_id is None or 0 <= job_id < 10**18


@given(st.integers(min_value=1, max_value=10**18 - 1))
def test_callback_tokens_round_trip(job_id: int) -> None:
    assert read_token("secret", 3, make_token("secret", 3, job_id)) == job_id


def test_non_ascii_macs_never_reach_compare_digest() -> None:
    # On the old code these raised TypeError in hmac.compare_digest (a 500 on the callback route).
    assert read_token("s", 1, "1." + "é" * 32) is None
    assert read_token("s", 1, "²." + "0" * 32) is None
    good = media_token("s", 1, "file", now=1_000)
    encoded, expires, _mac = good.split(".")
    assert read_media_token("s", 1, f"{encoded}.{expires}." + "é" * 24, now=1_000) is None
    assert read_media_token("s", 1, f"{encoded}.²." + "A" * 24, now=1_000) is None
    assert read_media_token("s", 1, f"eA.{'9' * 5000}.x", now=1_000) is None


@given(st.text(max_size=200))
@example("eA.².x")
@example("eA.99999999999.é")
@example("a.1.AAAAAAAAAAAAAAAAAAAAAAAA")  # one base64 character: cannot be decoded
def test_media_tokens_never_raise(token: str) -> None:
    assert read_media_token("secret", 1, token, now=1_000) is None or token.count(".") == 2


# --- the KIE callback body -------------------------------------------------------------------------


def test_deep_callback_bodies_are_a_callback_error() -> None:
    with pytest.raises(KieCallbackError, match="nested too deep"):
        parse_callback(NESTED_5000)
    deep_result = json.dumps("[" * 5000 + "]" * 5000)
    body = f'{{"code": 200, "data": {{"taskId": "t", "state": "success", "resultJson": {deep_result}}}}}'
    with pytest.raises(KieCallbackError):
        parse_callback(body.encode())


@pytest.mark.parametrize("stamp", ["1e400", 1e300, "99999999999999999999", "inf"])
def test_absurd_callback_times_are_a_callback_error(stamp: object) -> None:
    # fromtimestamp raises OverflowError/OSError for these, which pydantic does not turn into a
    # validation error: on the old code they escaped as a 500.
    body = json.dumps({"code": 200, "data": {"taskId": "t", "state": "success", "createTime": stamp}})
    with pytest.raises(KieCallbackError):
        parse_callback(body.encode())


@given(
    st.dictionaries(
        st.sampled_from(["code", "msg", "data", "taskId", "message"]),
        json_values | st.dictionaries(st.sampled_from(["taskId", "state", "resultJson", "createTime"]), json_values),
        max_size=5,
    )
)
def test_parse_callback_raises_only_callback_errors(raw: dict[str, object]) -> None:
    with contextlib.suppress(KieCallbackError):
        parse_callback(json.dumps(raw).encode())


@given(stamp=st.text(max_size=30), signature=st.text(max_size=80))
@example(stamp="1700000000", signature="\udcff" * 44)
@example(stamp="٣" * 10, signature="A" * 44)
def test_verify_signature_never_raises(stamp: str, signature: str) -> None:
    assert verify_signature("t1", stamp, signature, "k", now=1_700_000_000) in (True, False)
