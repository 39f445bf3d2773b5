"""Telegram Stars top-up packages: parsing the operator's list, shared by settings and the CLI."""

from __future__ import annotations

MAX_PACKAGES = 8  # one keyboard screen
MAX_STARS = 10_000  # Telegram's limit for one Stars invoice


def parse_packages(value: str) -> tuple[int, ...]:
    """``"50,100,500"`` → (50, 100, 500); a ValueError names what is wrong."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts or not all(p.isdigit() and 1 <= int(p) <= MAX_STARS for p in parts):
        raise ValueError(f"must be a comma-separated list of Star amounts from 1 to {MAX_STARS}, e.g. 50,100,500")
    packages = tuple(sorted({int(p) for p in parts}))
    if len(packages) > MAX_PACKAGES:
        raise ValueError(f"at most {MAX_PACKAGES} packages")
    return packages
