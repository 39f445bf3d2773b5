"""Strict parsing of what callers send: numbers in tokens, token parts, header values, JSON bodies.

Anything reachable from a request is parsed here, and anything that is not exactly the expected shape
is refused the same way (None, or `JsonError`), never by an exception from deeper down:

* `str.isdigit()` accepts "²" and "٣", and `int()` refuses strings over 4,300 digits: a token such as
  `².abc` or a 5,000-digit id would be a 500. Numbers here are ASCII digits of a bounded length.
* `hmac.compare_digest` raises TypeError on non-ASCII `str`; token parts are checked against an ASCII
  alphabet and length first, so only well-formed values are ever compared.
* aiohttp decodes header bytes with `surrogateescape`, so a header value may hold lone surrogates that
  `str.encode()` refuses; header values are checked against printable ASCII.
* `json.loads` recurses once per nested array or object: 5,000 of them inside a 512 KiB body raise
  RecursionError. The loader bounds the depth, and refuses NaN and Infinity, which no sender of ours
  uses and which Postgres' jsonb cannot store. With `storable=True` it also refuses strings jsonb
  cannot store (NUL, lone surrogates), for bodies that are kept as they came.
"""

from __future__ import annotations

import json
import re
from functools import cache

JSON_MAX_DEPTH = 64
"""Telegram updates nest about ten levels (a reply's message's keyboard's rows); KIE callbacks fewer."""

HEX = "0-9a-f"
URLSAFE = "A-Za-z0-9_-"
BASE64 = "A-Za-z0-9+/="
PRINTABLE = "\x21-\x7e"  # visible ASCII: no space, no control character


class JsonError(ValueError):
    """The body is not JSON this process accepts; the message says why and is safe to send back."""


@cache
def _pattern(alphabet: str, min_len: int, max_len: int) -> re.Pattern[str]:
    return re.compile(f"[{alphabet}]{{{min_len},{max_len}}}")


def token(value: str, *, alphabet: str, min_len: int = 1, max_len: int) -> str | None:
    """`value` when it is `min_len`..`max_len` characters of `alphabet` (a regex class body), else None."""
    if len(value) > max_len:  # before the regex: a 1 MB header is refused in O(1)
        return None
    return value if _pattern(alphabet, min_len, max_len).fullmatch(value) else None


def uint(value: str, *, max_digits: int) -> int | None:
    """A non-negative integer written in 1..`max_digits` ASCII digits, else None."""
    digits = token(value, alphabet="0-9", max_len=max_digits)
    return int(digits) if digits is not None else None


def _no_constants(name: str) -> object:
    raise JsonError(f"{name} is not allowed in JSON")


def _depth_exceeds(value: object, limit: int) -> bool:
    # Iterative, so checking depth cannot itself overflow the stack.
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def storable_text(text: str) -> bool:
    """Whether Postgres can store `text` (text and jsonb refuse NUL; UTF-8 has no lone surrogates)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _all_text_storable(value: object) -> bool:
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not storable_text(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def loads(data: bytes | str, *, max_depth: int = JSON_MAX_DEPTH, storable: bool = False) -> object:
    """Parse JSON nested at most `max_depth` arrays/objects deep; raise `JsonError` otherwise."""
    try:
        value = json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise JsonError("JSON nested too deep") from None
    except JsonError:
        raise
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, int() over 4,300 digits
        raise JsonError("body is not JSON") from None
    # Depth can exceed the limit only with more brackets than the limit: one C-speed count spares the
    # walk for every ordinary body.
    brackets = data.count(b"{") + data.count(b"[") if isinstance(data, bytes) else data.count("{") + data.count("[")
    if brackets > max_depth and _depth_exceeds(value, max_depth):
        raise JsonError("JSON nested too deep")
    if storable and not _all_text_storable(value):
        raise JsonError("JSON holds text Postgres cannot store (NUL or a lone surrogate)")
    return value


MAX_WORKERS = 64


def workers(raw: str | None, cpus: int | None) -> int | None:
    """WORKERS: unset or empty for 1, `auto` for one per CPU, or 1..64; None when invalid."""
    if raw is None or raw.strip() == "":
        return 1
    if raw.strip().lower() == "auto":
        return max(1, min(MAX_WORKERS, cpus or 1))
    count = uint(raw.strip(), max_digits=2)
    return count if count is not None and 1 <= count <= MAX_WORKERS else None
