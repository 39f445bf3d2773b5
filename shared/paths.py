"""The one resolver for the project's data directories (`sql/`, `models/`).

A source checkout keeps them next to the packages; an installed wheel puts them under
`<prefix>/share/tg-tenant-supervisor/`. `APP_DATA_DIR` overrides both.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

_DIST_DIR = "tg-tenant-supervisor"


def _candidates() -> list[Path]:
    found: list[Path] = []
    override = os.environ.get("APP_DATA_DIR")
    if override:
        found.append(Path(override))
    found.append(Path(__file__).resolve().parent.parent)
    found.append(Path(sysconfig.get_path("data")) / "share" / _DIST_DIR)
    found.append(Path(sys.prefix) / "share" / _DIST_DIR)
    return found


def data_dir(name: str) -> Path:
    """Return the directory `name` (``"sql"`` or ``"models"``) or raise naming every place looked at."""
    tried = []
    for base in _candidates():
        path = base / name
        if path.is_dir():
            return path
        tried.append(str(path))
    raise FileNotFoundError(f"data directory {name!r} not found; looked in: {', '.join(tried)}")
