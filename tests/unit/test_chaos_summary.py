"""`python -m bench chaos-summary`: the table of `make chaos` runs, and clear refusals of what is not one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.chaos.summary import main


def _result(path: Path, seed: int, *, violations: int = 0, ledger_failures: list[str] | None = None) -> Path:
    figures = {
        "events_applied": 40,
        "violations_total": violations,
        "worst_reconverge_s": 6.5,
        "messages_sent": 100,
        "replies": 100,
        "excused_by_removal": 1,
        "duplicates": 0,
        "duplicates_known_window": 1,
        "lost": 0,
        "generations": 10,
        "generation_outcomes": 9,
        "generation_duplicates": 0,
        "generation_lost": 0,
    }
    out = path / f"chaos-{seed}.json"
    out.write_text(json.dumps({"seed": seed, "minutes": 3, "figures": figures, "ledger_failures": ledger_failures}))
    return out


def test_runs_are_tabled_and_totalled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [_result(tmp_path, 7), _result(tmp_path, 8)]
    out = tmp_path / "seeds.json"
    assert main([*map(str, files), "--out", str(out), "--code", "abc1234"]) == 0
    printed = capsys.readouterr().out
    assert "| 7 | 3 | 40 | 0 | 6.5 s | 100/100 (1 excused) | 0 | 0 | 9/10 (1 excused) | 0 | 0 |" in printed
    kept = json.loads(out.read_text())
    assert kept["code"] == "abc1234"
    assert kept["totals"]["seeds"] == 2 and kept["totals"]["passed"] == 2 and kept["totals"]["events"] == 80
    assert kept["totals"]["duplicates_known_window"] == 2


@pytest.mark.parametrize("failure", [{"violations": 1}, {"ledger_failures": ["sum of balances differs"]}])
def test_a_violation_or_an_unreconciled_ledger_fails_the_summary(
    tmp_path: Path, failure: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    files = [_result(tmp_path, 7), _result(tmp_path, 9, **failure)]  # type: ignore[arg-type]
    assert main([*map(str, files), "--out", str(tmp_path / "s.json")]) == 1
    assert json.loads((tmp_path / "s.json").read_text())["totals"]["passed"] == 1


@pytest.mark.parametrize("content", [None, "not json", "{}", '{"seed": 1, "minutes": 3, "figures": {}}'])
def test_what_is_not_a_chaos_result_is_refused_by_name(
    tmp_path: Path, content: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "s.json"
    assert main([str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: not a chaos result" in err and "Traceback" not in err
    assert not out.exists()
