"""What must load before aiogram does. aiogram builds ~630 pydantic models on import (seconds on a
small machine): `python -m supervisor run` binds its port and answers /health before loading it, and
every CLI command but `tenants add` (which asks Telegram) never needs it. Found when WORKERS support
pulled aiogram into `run`'s first import and the operator CLI took 8 s per command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sandbox.stack import ROOT


@pytest.mark.parametrize("module", ["supervisor.server", "supervisor.cli"])
def test_module_loads_without_aiogram(module: str) -> None:
    check = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiogram'))"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", f"{module} imports aiogram: {result.stdout[:300]}"
