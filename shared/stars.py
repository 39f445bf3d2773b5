"""Telegram Stars top-up packages: parsing the operator's list, shared by settings and the CLI."""

from __future__ import annotations

from shared import strict

MAX_PACKAGES = 8  # one keyboard screen
MAX_STARS = 10_000  # Telegram's limit for one Stars invoice


def parse_packages(value: str) -> tuple[int, ...]:
    """``"50,100,500"`` → (50, 100, 500); a ValueError names what is wrong."""
    amounts = [strict.uint(p.strip(), max_digits=len(str(MAX_STARS))) for p in value.split(",") if p.strip()]
    if not amounts or not all(a is not None and 1 <= a <= MAX_STARS for a in amounts):
        raise ValueError(f"must be a comma-separated list of Star amounts from 1 to {MAX_STARS}, e.g. 50,100,500")
    packages = tuple(sorted({a for a in amounts if a is not None}))
    if len(packages) > MAX_PACKAGES:
        raise ValueError(f"at most {MAX_PACKAGES} packages")
    return packages
