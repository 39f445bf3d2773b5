"""The benchmark suite runs: a tiny subset (`--quick --only start`) as a subprocess, results to a temp file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_start_writes_results(tmp_path: Path, pg_server_dsn: str) -> None:
    out = tmp_path / "results.json"
    env = {**os.environ, "BENCH_PG_SERVER_DSN": pg_server_dsn, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "start", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,  # about 50 s on a quiet 2-core machine; shared CI boxes are slower
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {"generated_at", "machine", "options", "duration_s", "figures", "rows"} <= results.keys()
    assert {"cpu_count", "cpu_model", "ram_gib", "python"} <= results["machine"].keys()
    assert results["options"]["quick"] is True and results["options"]["only"] == ["start"]
    start = results["figures"]["start"]
    assert {"rows", "details"} <= start.keys()
    keys = {row["key"] for row in start["rows"]}
    assert {"health_200_s", "active_cold_10_s", "active_warm_10_s", "active_cold_100_s", "active_warm_100_s"} <= keys
    for row in start["rows"]:
        assert {"figure", "key", "label", "value", "unit", "target", "status", "note"} <= row.keys()
        assert row["status"] in {"PASS", "MISS", "INFO"}, row
        assert row["value"] is not None, row
    assert (tmp_path / "results.md").read_text().startswith("| figure |")
    assert "process start → /health 200" in proc.stdout  # the table is printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "nosuch"], "invalid choice: 'nosuch'"),
        (["--quick", "extra"], "unrecognized arguments: extra"),
    ],
)
def test_bench_bad_arguments_are_one_clear_error_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not (tmp_path / "results.md").exists()
