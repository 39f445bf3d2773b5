"""`python -m bench [--quick] [--only NAME ...] [--out PATH] [--profile]`: run the figures, print the table.

Writes results.json (machine, every row and the details) and results.md (the table, for the README).
Exit status: 0 when every figure ran (a MISS is a finding, not a failure), 1 when a figure crashed.

`python -m bench chaos --seed N --minutes M [--out PATH]` runs one seeded fault simulation instead
(see bench/chaos); its exit status is 1 when an invariant was violated. `python -m bench chaos-summary
FILE...` tables such runs (`make chaos` calls it) and keeps the table in bench/chaos-seeds.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import broadcast, failover, generations, idle, image, scale, stats, webhook
from bench.chaos import figure as chaos
from bench.common import ERROR, Bench, FigureResult, Row, dump_json, machine, server_dsn

HERE = Path(__file__).resolve().parent

FIGURES: dict[str, Callable[[Bench], Awaitable[FigureResult]]] = {
    "start": scale.figure_start,
    "memory": scale.figure_memory,
    "connections": scale.figure_connections,
    "webhook": webhook.figure_webhook,
    "failover": failover.figure_failover,
    "generations": generations.figure_generations,
    "broadcast": broadcast.figure_broadcast,
    "stats": stats.figure_stats,
    "export": stats.figure_export,
    "idle": idle.figure_idle,
    "rebalance": idle.figure_rebalance,
    "lock_limit": idle.figure_lock_limit,
    "chaos": chaos.figure_chaos,
    "image": image.figure_image,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller N (10/100 tenants) and fewer updates")
    parser.add_argument(
        "--only", action="append", choices=sorted(FIGURES), metavar="NAME", help=f"run one figure: {', '.join(FIGURES)}"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="results JSON path")
    parser.add_argument("--md", type=Path, default=None, help="markdown table path (default: next to --out)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the supervisor during the webhook closed loop (raw stacks in the run's temp dir, top frames in results.json)",
    )
    return parser.parse_args(argv)


def markdown(rows: list[Row], info: dict[str, Any]) -> str:
    lines = [
        "| figure | measure | value | target | result | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.figure} | {r.label} | {r.shown_value()} | {r.target} | {r.status} | {r.note.replace('|', '/')} |"
        )
    lines.append("")
    lines.append(
        f"Machine: {info['cpu_count']} × {info['cpu_model']}, {info['ram_gib']} GiB RAM, "
        f"Python {info['python']}, aiogram {info['aiogram']}; load average at start {info['load_avg_at_start']}."
    )
    return "\n".join(lines) + "\n"


def table(rows: list[Row]) -> str:
    headers = ("figure", "measure", "value", "target", "result")
    cells = [(r.figure, r.label, r.shown_value(), r.target, r.status) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(out)


async def run(args: argparse.Namespace) -> int:
    names = args.only or list(FIGURES)
    info = machine()
    bench = Bench(
        quick=args.quick,
        workdir=Path(tempfile.mkdtemp(prefix="tgsup-bench-")),
        server_dsn=server_dsn(),
        profile=args.profile,
    )
    bench.log(f"bench {bench.run_id}: {', '.join(names)}{' (quick)' if args.quick else ''}; logs in {bench.workdir}")
    started = time.monotonic()
    figures: dict[str, dict[str, Any]] = {}
    rows: list[Row] = []
    failed = False
    try:
        for name in names:
            bench.log(f"[{name}] …")
            figure_started = time.monotonic()
            try:
                result = await FIGURES[name](bench)
            except Exception as exc:
                failed = True
                bench.log(traceback.format_exc())
                result = FigureResult(
                    rows=[
                        Row(name, "error", "figure failed", None, "", "—", ERROR, f"{type(exc).__name__}: {exc}"[:300])
                    ]
                )
            result.details["seconds"] = round(time.monotonic() - figure_started, 1)
            figures[name] = result.to_json()
            rows += result.rows
            bench.log(f"[{name}] done in {result.details['seconds']} s")
    finally:
        await bench.drop_databases()
    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "options": {"quick": args.quick, "only": names, "profile": args.profile},
        "duration_s": round(time.monotonic() - started, 1),
        "figures": figures,
        "rows": [r.__dict__ for r in rows],
    }
    out: Path = args.out
    dump_json(out, results)
    md_path: Path = args.md or out.with_suffix(".md")
    md_path.write_text(markdown(rows, info))
    print(table(rows))
    print(f"\nmachine: {info['cpu_count']} × {info['cpu_model']}, {info['ram_gib']} GiB, Python {info['python']}")
    print(f"wrote {out} and {md_path} in {results['duration_s']} s")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["chaos"]:
        from bench.chaos.cli import main as chaos_main

        return chaos_main(args[1:])
    if args[:1] == ["chaos-summary"]:
        from bench.chaos.summary import main as summary_main

        return summary_main(args[1:])
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
