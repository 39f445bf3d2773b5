"""The production image, driven through the docker CLI for the image test and the `image` bench figure:
build it, run it against a database, wait until Docker calls it healthy, stop it with a signal.

Every docker call has a timeout. Containers use the host's network (loopback Postgres, loopback
ports): no bridge, no published ports, nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BASE_IMAGE", "Container", "build", "image_size_mib", "remove", "run", "unavailable"]

BASE_IMAGE = "python:3.11-slim-bookworm"
ROOT = Path(__file__).resolve().parent.parent


def _docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {args[0]} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return done


def unavailable() -> str | None:
    """Why the image cannot be built and run here, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker CLI on this machine"
    try:
        info = _docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "the Docker daemon does not answer within 20 s"
    if info.returncode != 0:
        return f"no Docker daemon running ({info.stderr.strip().splitlines()[-1] if info.stderr.strip() else 'docker info failed'})"
    if _docker("image", "inspect", BASE_IMAGE, timeout=20, check=False).returncode != 0:
        return (
            f"the base image {BASE_IMAGE} is not in the daemon and is not pulled by tests; "
            "`docker pull` it, or build it from Debian's mirror with `sudo bash sandbox/base_image.sh`"
        )
    return None


def build(tag: str, *, no_cache: bool = False, timeout: float = 900) -> float:
    """`docker build` of the repository's Dockerfile (legacy builder, host network); seconds taken."""
    started = time.perf_counter()
    args = ["build", "--network", "host", "-t", tag, *(["--no-cache"] if no_cache else []), str(ROOT)]
    done = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker build failed ({done.returncode}): {(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - started


def image_size_mib(tag: str) -> float:
    return int(_docker("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip()) / 2**20


@dataclass
class Container:
    id: str

    def inspect(self) -> dict[str, object]:
        found = json.loads(_docker("inspect", self.id).stdout)
        state: dict[str, object] = found[0]
        return state

    def health(self) -> str:
        """Docker's health status: starting, healthy or unhealthy ("" when the container stopped)."""
        state = self.inspect()["State"]
        assert isinstance(state, dict)
        health = state.get("Health") or {}
        return str(health.get("Status", "")) if state.get("Running") else ""

    def wait_healthy(self, timeout: float) -> float:
        """Seconds until Docker reports healthy; RuntimeError with the logs when it stops or times out."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            status = self.health()
            if status == "healthy":
                return time.perf_counter() - started
            if status in ("", "unhealthy"):
                raise RuntimeError(f"container is {status or 'not running'}: {self.logs()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"not healthy within {timeout:.0f} s: {self.logs()[-2000:]}")

    def exec(self, *command: str) -> str:
        return _docker("exec", self.id, *command, timeout=30).stdout

    def stop_with(self, signal: str = "TERM", timeout: float = 30) -> tuple[int, float]:
        """Send the signal (not `docker stop`, which adds its own SIGKILL deadline); exit code and seconds."""
        started = time.perf_counter()
        state = self.inspect()["State"]
        assert isinstance(state, dict)
        if not state.get("Running"):
            return int(state.get("ExitCode", -1)), 0.0  # it had already stopped
        _docker("kill", "--signal", signal, self.id)
        code = int(_docker("wait", self.id, timeout=timeout).stdout.strip())
        return code, time.perf_counter() - started

    def logs(self) -> str:
        done = _docker("logs", self.id, timeout=30, check=False)
        return done.stdout + done.stderr

    def remove(self) -> None:
        _docker("rm", "-f", self.id, timeout=30, check=False)


def run(tag: str, env: dict[str, str], *, health_interval: str = "1s") -> Container:
    """Start the image detached on the host network. The image's HEALTHCHECK probes every 30 s (fine
    for an orchestrator); a test waits for the first verdict, so the interval is shortened here. The
    settings go through an env file, not the command line (which any process list shows)."""
    with tempfile.NamedTemporaryFile("w", prefix="image-env-", suffix=".env") as env_file:
        env_file.write("".join(f"{name}={value}\n" for name, value in env.items()))
        env_file.flush()
        args = ["run", "-d", "--network", "host", "--env-file", env_file.name]
        args += ["--health-interval", health_interval, "--health-start-period", "0s"]
        return Container(_docker(*args, tag).stdout.strip())


def remove(tag: str) -> None:
    """Untag the image (its layers stay cached while another tag uses them)."""
    _docker("rmi", tag, timeout=60, check=False)
