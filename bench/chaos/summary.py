"""`python -m bench chaos-summary FILE... [--out PATH]`: the runs of `make chaos` as one table.

Reads the JSON each `python -m bench chaos --out` wrote, prints one Markdown row per seed (the README's
chaos table) and the totals, and writes them to `--out` (default `bench/chaos-seeds.json`, kept in the
repository beside `results.json`). Exit status 1 when any run violated an invariant or its ledger did not
reconcile, 2 for a file that is missing or not a chaos result.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import dump_json

__all__ = ["SeedRun", "main"]

HERE = Path(__file__).resolve().parent.parent

HEADER = (
    "| seed | min | events | violations | worst reconverge | replies | dup | lost | outcomes | dup | lost |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


@dataclass(frozen=True)
class SeedRun:
    seed: int
    minutes: float
    events: int
    violations: int
    worst_reconverge_s: float
    messages: int
    replies: int
    excused_messages: int
    duplicates: int
    duplicates_known_window: int
    lost: int
    generations: int
    outcomes: int
    outcome_duplicates: int
    outcome_duplicates_known_window: int
    outcomes_lost: int
    ledger_reconciled: bool

    @classmethod
    def load(cls, path: Path) -> SeedRun:
        data = json.loads(path.read_text())
        f = data["figures"]
        return cls(
            seed=int(data["seed"]),
            minutes=float(data["minutes"]),
            events=int(f["events_applied"]),
            violations=int(f["violations_total"]),
            worst_reconverge_s=float(f["worst_reconverge_s"]),
            messages=int(f["messages_sent"]),
            replies=int(f["replies"]),
            excused_messages=int(f.get("excused_by_removal", 0)),
            duplicates=int(f["duplicates"]),
            duplicates_known_window=int(f.get("duplicates_known_window", 0)),
            lost=int(f["lost"]),
            generations=int(f["generations"]),
            outcomes=int(f["generation_outcomes"]),
            outcome_duplicates=int(f["generation_duplicates"]),
            outcome_duplicates_known_window=int(f.get("generation_duplicates_known_window", 0)),
            outcomes_lost=int(f["generation_lost"]),
            ledger_reconciled=not data.get("ledger_failures"),
        )

    @property
    def excused_generations(self) -> int:
        """Generate pressed during the shop's removal (which deletes the shop's jobs): no outcome owed."""
        return self.generations - self.outcomes - self.outcomes_lost

    @property
    def passed(self) -> bool:
        return self.violations == 0 and self.ledger_reconciled

    def markdown(self) -> str:
        replies = f"{self.replies}/{self.messages}" + _excused(self.excused_messages)
        outcomes = f"{self.outcomes}/{self.generations}" + _excused(self.excused_generations)
        return (
            f"| {self.seed} | {self.minutes:g} | {self.events} | {self.violations} | {self.worst_reconverge_s} s "
            f"| {replies} | {self.duplicates} | {self.lost} | {outcomes} | {self.outcome_duplicates} "
            f"| {self.outcomes_lost} |"
        )


def _excused(n: int) -> str:
    return f" ({n} excused)" if n else ""


# Counts that add up over the runs; the worst reconvergence is a maximum.
_SUMMED = (
    "events",
    "violations",
    "messages",
    "replies",
    "duplicates",
    "duplicates_known_window",
    "lost",
    "generations",
    "outcomes",
    "outcome_duplicates",
    "outcome_duplicates_known_window",
    "outcomes_lost",
    "ledger_reconciled",
)


def totals(runs: list[SeedRun]) -> dict[str, object]:
    summed = {name: sum(getattr(r, name) for r in runs) for name in _SUMMED}
    worst = max((r.worst_reconverge_s for r in runs), default=0.0)
    return {"seeds": len(runs), "passed": sum(r.passed for r in runs), **summed, "worst_reconverge_s": worst}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chaos-summary", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path, help="chaos results written by `python -m bench chaos --out`")
    parser.add_argument("--out", type=Path, default=HERE / "chaos-seeds.json")
    parser.add_argument("--code", default="", help="the commit the runs were made on, recorded as given")
    args = parser.parse_args(argv)
    runs: list[SeedRun] = []
    for path in args.files:
        try:
            runs.append(SeedRun.load(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"chaos-summary: {path}: not a chaos result ({type(exc).__name__}: {exc})", file=sys.stderr)
            return 2
    print(HEADER)
    print("\n".join(run.markdown() for run in runs))
    summary = totals(runs)
    print(json.dumps(summary))
    dump_json(args.out, {"code": args.code, "totals": summary, "runs": [asdict(r) for r in runs]})
    print(f"wrote {args.out}")
    return 0 if all(r.passed for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
