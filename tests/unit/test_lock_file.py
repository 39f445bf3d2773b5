"""requirements.lock is what production runs: every runtime dependency of pyproject.toml at the same
pin, every package hashed, and the test environment running exactly those versions (so the tests test
what the image installs)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

from tests.helpers import ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^ \\]+)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes)."""
    found: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        pinned = PIN.match(line)
        if pinned:
            current = _normal(pinned.group(1))
            found[current] = (pinned.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
    return found


def test_every_pyproject_dependency_is_locked_at_its_pin() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    locked = _locked()
    for dep in deps:
        name, _, version = dep.partition("==")
        assert version, f"{dep}: runtime dependencies are pinned with == in pyproject.toml"
        assert locked.get(_normal(name), ("missing", 0))[0] == version, (
            f"{dep} is not locked at {version}; run make lock"
        )


def test_every_locked_package_has_a_hash() -> None:
    locked = _locked()
    assert len(locked) >= 20, "the lock names the whole dependency tree, not only the direct dependencies"
    assert not [name for name, (_, hashes) in locked.items() if hashes == 0]


def test_the_test_environment_runs_the_locked_versions() -> None:
    wrong = {}
    for name, (version, _) in _locked().items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != version:
            wrong[name] = f"locked {version}, installed {installed}"
    assert not wrong, f"the venv differs from requirements.lock (make recreates it when the lock changes): {wrong}"
