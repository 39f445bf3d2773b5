"""A chaos run's outcome: figures, violations per invariant, the episodes and the event log.

`text()` is what the command prints (the event log and the replay command only when something failed),
`to_json()` what `--out` writes, and `rows()` the lines of the `chaos` figure in `python -m bench`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.chaos.invariants import INVARIANTS, Episode, Step, Tally
from bench.chaos.schedule import Event
from bench.common import INFO, MISS, PASS, Row, at_most

RECONVERGE_TARGET_S = 10.0


@dataclass
class ChaosResult:
    seed: int
    minutes: float
    tenants: int
    replicas: int
    planned: list[Event]
    steps: list[Step]
    episodes: list[Episode]
    replies: Tally
    outcomes: Tally
    ledger: dict[str, Any]
    ledger_failures: list[str]
    events_applied: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def violations(self) -> dict[str, int]:
        found = dict.fromkeys(INVARIANTS, 0)
        for episode in self.episodes:
            found[episode.invariant] += 1
        found["I3"] += self.replies.lost + self.replies.duplicates
        found["I4"] += self.outcomes.lost + self.outcomes.duplicates + len(self.ledger_failures)
        return found

    @property
    def total_violations(self) -> int:
        return sum(self.violations.values())

    @property
    def measured(self) -> list[Step]:
        return [s for s in self.steps if s.measured]

    @property
    def worst_reconverge(self) -> Step | None:
        done = [s for s in self.measured if s.reconverged_s is not None]
        return max(done, key=lambda s: s.reconverged_s or 0.0, default=None)

    @property
    def never_reconverged(self) -> list[Step]:
        return [s for s in self.measured if s.reconverged_s is None]

    def replay(self) -> str:
        extra = f" --tenants {self.tenants}" if self.tenants != 30 else ""
        return f"python -m bench chaos --seed {self.seed} --minutes {self.minutes:g}{extra}"

    # --- output ------------------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        worst = self.worst_reconverge
        return {
            "events_applied": self.events_applied,
            "event_steps": len(self.steps),
            "event_errors": sum(1 for s in self.steps if s.error),
            "violations": self.violations,
            "violations_total": self.total_violations,
            "worst_reconverge_s": None if worst is None else round(worst.reconverged_s or 0.0, 1),
            "worst_reconverge_after": None if worst is None else worst.line().strip(),
            "never_reconverged": len(self.never_reconverged),
            "messages_sent": self.replies.sent,
            "replies": self.replies.answered,
            "duplicates": self.replies.duplicates,
            "duplicates_known_window": self.replies.known_window,
            "lost": self.replies.lost,
            "excused_by_removal": self.replies.excused,
            "generations": self.outcomes.sent,
            "generation_outcomes": self.outcomes.answered,
            "generation_duplicates": self.outcomes.duplicates,
            "generation_duplicates_known_window": self.outcomes.known_window,
            "generation_lost": self.outcomes.lost,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "minutes": self.minutes,
            "tenants": self.tenants,
            "replicas": self.replicas,
            "replay": self.replay(),
            "figures": self.figures(),
            "episodes": [asdict(e) | {"line": e.line()} for e in self.episodes],
            "reply_problems": self.replies.problems,
            "generation_problems": self.outcomes.problems,
            "ledger": self.ledger,
            "ledger_failures": self.ledger_failures,
            "planned": [asdict(e) | {"kind": e.kind.value} for e in self.planned],
            "event_log": [asdict(s) | {"touched": _touched(s), "line": s.line()} for s in self.steps],
            "info": self.info,
        }

    def text(self) -> str:
        f = self.figures()
        verdict = "PASS" if self.total_violations == 0 else "FAIL"
        lines = [
            f"chaos seed {self.seed}: {verdict} — {self.total_violations} violations "
            f"({', '.join(f'{k} {v}' for k, v in self.violations.items())})",
            f"  events applied      {f['events_applied']} ({f['event_steps']} steps, {f['event_errors']} errors)",
            f"  worst reconverge    {_seconds(f['worst_reconverge_s'])}"
            + (f" after {f['worst_reconverge_after']}" if f["worst_reconverge_after"] else "")
            + (f"; {f['never_reconverged']} steps never reconverged" if f["never_reconverged"] else ""),
            f"  messages            {f['messages_sent']} sent, {f['replies']} replied, {f['duplicates']} duplicates "
            f"(+{f['duplicates_known_window']} in the kill -9 / cut window), "
            f"{f['lost']} lost, {f['excused_by_removal']} excused by a removal",
            f"  generations         {f['generations']} pressed, {f['generation_outcomes']} outcomes, "
            f"{f['generation_duplicates']} duplicates (+{f['generation_duplicates_known_window']} in the kill -9 / cut "
            f"window), {f['generation_lost']} lost; jobs {self.ledger.get('jobs', {})}",
            f"  ledger              {'; '.join(self.ledger_failures) or 'reconciles'}",
        ]
        if f["event_errors"]:
            lines.append(
                f"  WARNING             {f['event_errors']} event steps failed (see the log): on an overloaded "
                "machine CLI calls and boots time out, and violations near them may be artifacts"
            )
        if self.episodes:
            lines.append("violations:")
            lines += [f"  {e.line()}" for e in self.episodes]
        problems = self.replies.problems + self.outcomes.problems
        if problems:
            lines.append("unanswered or duplicated:")
            lines += [f"  {p}" for p in problems[:30]]
            if len(problems) > 30:
                lines.append(f"  … {len(problems) - 30} more")
        if self.total_violations:
            lines.append(f"event log (seed {self.seed}, seconds since the chaos began):")
            lines += [f"  {s.line()}" for s in self.steps]
            lines.append(f"replay: {self.replay()}")
        return "\n".join(lines)

    def rows(self) -> list[Row]:
        f = self.figures()
        note = f"seed {self.seed}, {self.minutes:g} min, {self.tenants} tenants × {self.replicas} replicas"
        rows = [Row("chaos", "events", "events applied", f["events_applied"], "", "—", INFO, note)]
        labels = {
            "I1": "I1 tenants served by exactly one able process",
            "I2": "I2 two pollers / webhook fights",
            "I3": "I3 replies lost or duplicated",
            "I4": "I4 outcomes or ledger wrong",
            "I5": "I5 background loops dead",
        }
        for key, label in labels.items():
            count = self.violations[key]
            example = next((e.line() for e in self.episodes if e.invariant == key), "")
            rows.append(
                Row("chaos", f"violations_{key}", label, count, "", "0", PASS if count == 0 else MISS, example[:200])
            )
        worst = f["worst_reconverge_s"]
        rows.append(
            Row(
                "chaos",
                "worst_reconverge_s",
                "worst time to reconverge after an event",
                worst,
                "s",
                f"≤ {RECONVERGE_TARGET_S:.0f} s",
                MISS if f["never_reconverged"] else at_most(worst, RECONVERGE_TARGET_S),
                (f"{f['never_reconverged']} steps never reconverged; " if f["never_reconverged"] else "")
                + (f["worst_reconverge_after"] or ""),
            )
        )
        rows.append(
            Row(
                "chaos",
                "replies",
                "replies (lost / duplicated)",
                f["replies"],
                "",
                f"{f['messages_sent']}",
                PASS if f["lost"] == 0 and f["duplicates"] == 0 else MISS,
                f"{f['lost']} lost, {f['duplicates']} duplicated (+{f['duplicates_known_window']} in the stated "
                f"kill -9 / cut window), {f['excused_by_removal']} excused by a removal",
            )
        )
        return rows


def _touched(step: Step) -> list[str] | str:
    return "all" if step.touched is None else sorted(step.touched)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"
