"""Secret masking for logs, errors and operator output.

The process registers every secret it learns (decrypted tokens and keys, master keys, webhook
secrets); `redact` replaces each of them, and anything shaped like a bot token, in any text.

With thousands of tenants there are thousands of secrets, so no regex alternation of them all
(compiling it per registration is quadratic, and matching costs milliseconds per log line): the
text is cut into runs of secret-alphabet characters and each run is looked up in a set, with a
sliding window only for runs longer than the shortest secret.
"""

from __future__ import annotations

import re
import threading

# A plain \b misses tokens glued to a path like ".../bot<token>/getMe", hence the look-arounds.
BOT_TOKEN_RE = re.compile(r"(?<![0-9])\d{5,16}:[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])")
_MIN_SECRET_LEN = 6
_ALPHABET = r"A-Za-z0-9_\-.:"
_RUN_RE = re.compile(f"[{_ALPHABET}]{{{_MIN_SECRET_LEN},}}")
_PLAIN_RE = re.compile(f"[{_ALPHABET}]+")


def mask(secret: str) -> str:
    """Show an operator enough to recognise a secret, never enough to use it: ``1234…wxyz``."""
    if len(secret) < 12:
        return "…" * 3
    return f"{secret[:4]}…{secret[-4:]}"


class Redactor:
    def __init__(self) -> None:
        self._plain: set[str] = set()
        self._lengths: tuple[int, ...] = ()
        self._odd: tuple[str, ...] = ()  # secrets with other characters (a DB password): plain search
        self._lock = threading.Lock()

    def register(self, *secrets: str | None) -> None:
        with self._lock:
            for secret in secrets:
                if not secret or len(secret) < _MIN_SECRET_LEN:
                    continue
                if _PLAIN_RE.fullmatch(secret):
                    if secret not in self._plain:
                        self._plain.add(secret)
                        if len(secret) not in self._lengths:
                            self._lengths = tuple(sorted({*self._lengths, len(secret)}, reverse=True))
                elif secret not in self._odd:
                    self._odd = (*self._odd, secret)

    def _mask_run(self, run: str) -> str:
        if run in self._plain:
            return mask(run)
        for length in self._lengths:
            for start in range(len(run) - length + 1):
                if run[start : start + length] in self._plain:
                    return (
                        self._mask_run(run[:start])
                        + mask(run[start : start + length])
                        + self._mask_run(run[start + length :])
                    )
        return run

    def redact(self, text: str) -> str:
        for secret in self._odd:
            if secret in text:
                text = text.replace(secret, mask(secret))
        if self._plain:
            shortest = self._lengths[-1]
            pieces: list[str] = []
            last = 0
            for match in _RUN_RE.finditer(text):
                run = match.group()
                if len(run) < shortest:
                    continue
                masked = self._mask_run(run)
                if masked is not run:
                    pieces += [text[last : match.start()], masked]
                    last = match.end()
            if pieces:
                text = "".join(pieces) + text[last:]
        return BOT_TOKEN_RE.sub(lambda m: mask(m.group(0)), text)


REDACTOR = Redactor()
