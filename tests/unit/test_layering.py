"""The layering, read from the source: data flows supervisor -> tenant_runtime -> shared, and the fakes
(sandbox) and benchmarks are reached only from tests and bench, never from what ships."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("supervisor", "tenant_runtime", "shared", "sandbox", "bench", "tests")

# package -> packages of ours it must never import
FORBIDDEN = {
    "shared": {"supervisor", "tenant_runtime", "sandbox", "bench", "tests"},
    "tenant_runtime": {"supervisor", "sandbox", "bench", "tests"},
    "supervisor": {"sandbox", "bench", "tests"},
    "sandbox": {"bench", "tests"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages of ours that a module imports, at any depth (function bodies too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in OURS)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downwards(package: str) -> None:
    violations = [
        f"{path.relative_to(ROOT)} imports {sorted(bad)}"
        for path in sorted((ROOT / package).rglob("*.py"))
        if (bad := imported_packages(path) & FORBIDDEN[package])
    ]
    assert not violations, "\n".join(violations)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from supervisor.app import Supervisor\n    import sandbox.stack\n")
    assert imported_packages(module) == {"supervisor", "sandbox"}
