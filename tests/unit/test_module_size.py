"""The house shows its architecture: no module of what ships over 400 lines, no function over 60. A file
past either has grown a second concept; split it into modules named for what they are."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("supervisor", "tenant_runtime", "shared")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def oversized(path: Path) -> list[str]:
    """What in one module is over the limits, as "path: what (lines)"."""
    source = path.read_text(encoding="utf-8")
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    found = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{name}: module ({lines} lines)")
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{name}: {node.name}() at line {node.lineno} ({length} lines)")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_or_function_is_too_long(package: str) -> None:
    found = [problem for path in sorted((ROOT / package).rglob("*.py")) for problem in oversized(path)]
    assert not found, "\n".join(found)


def test_the_checker_sees_a_long_function_and_a_long_module(tmp_path: Path) -> None:
    def function(name: str, lines: int) -> str:
        return f"async def {name}():\n" + "".join(f"    x{i} = {i}\n" for i in range(lines - 1))

    at_the_limit = tmp_path / "fits.py"
    at_the_limit.write_text(function("fits", MAX_FUNCTION_LINES))
    assert oversized(at_the_limit) == []

    too_long = tmp_path / "sprawls.py"
    too_long.write_text(function("sprawling", MAX_FUNCTION_LINES + 1) + "y = 1\n" * MAX_MODULE_LINES)
    assert oversized(too_long) == [
        f"sprawls.py: module ({MAX_MODULE_LINES + MAX_FUNCTION_LINES + 1} lines)",
        f"sprawls.py: sprawling() at line 1 ({MAX_FUNCTION_LINES + 1} lines)",
    ]
