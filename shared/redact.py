"""Secret masking for logs, errors and operator output.

The process registers every secret it learns (decrypted tokens and keys, master keys, webhook
secrets); `redact` replaces each of them, and anything shaped like a bot token, in any text.
"""

from __future__ import annotations

import re
import threading

# A plain \b misses tokens glued to a path like ".../bot<token>/getMe", hence the look-arounds.
BOT_TOKEN_RE = re.compile(r"(?<![0-9])\d{5,16}:[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])")
_MIN_SECRET_LEN = 6


def mask(secret: str) -> str:
    """Show an operator enough to recognise a secret, never enough to use it: ``1234…wxyz``."""
    if len(secret) < 12:
        return "…" * 3
    return f"{secret[:4]}…{secret[-4:]}"


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register(self, *secrets: str | None) -> None:
        added = False
        with self._lock:
            for secret in secrets:
                if secret and len(secret) >= _MIN_SECRET_LEN and secret not in self._secrets:
                    self._secrets.add(secret)
                    added = True
            if added:
                # Longest first, so a secret containing another is masked whole.
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(lambda m: mask(m.group(0)), text)
        return BOT_TOKEN_RE.sub(lambda m: mask(m.group(0)), text)


REDACTOR = Redactor()
