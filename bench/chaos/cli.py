"""`python -m bench chaos --seed N --minutes M [--out PATH]`: one seeded chaos run, printed and judged.

Exit status: 0 when no invariant was violated, 1 when one was (the seed and the event log are printed
so the run can be replayed), 2 for bad arguments, 130 when interrupted (SIGINT or SIGTERM: every
process is stopped and the database dropped first).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path

from bench.chaos.report import ChaosResult
from bench.chaos.run import ChaosConfig, run_chaos
from bench.common import Bench, dump_json, server_dsn
from sandbox.stack import ROOT


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench chaos", description=__doc__)
    parser.add_argument("--seed", type=int, required=True, help="seeds the schedule, the tenants' modes and the users")
    parser.add_argument("--minutes", type=_positive_float, default=2.0, help="length of the chaos phase")
    parser.add_argument("--tenants", type=_positive_int, default=30)
    parser.add_argument("--replicas", type=int, choices=(2, 3, 4), default=3)
    parser.add_argument("--quiet", type=_positive_float, default=75.0, help="cap on the quiet period (s)")
    parser.add_argument("--out", type=Path, help="write the figures, violations and event log as JSON here")
    parser.add_argument(
        "--code", type=Path, default=ROOT, help="checkout to run the supervisor and CLI from (default: this one)"
    )
    args = parser.parse_args(argv)
    if not (args.code / "supervisor" / "__main__.py").exists():
        parser.error(f"--code {args.code}: no supervisor package there")
    return args


async def run(args: argparse.Namespace) -> ChaosResult:
    bench = Bench(quick=False, workdir=Path(tempfile.mkdtemp(prefix="tgsup-chaos-")), server_dsn=server_dsn())
    config = ChaosConfig(
        seed=args.seed,
        minutes=args.minutes,
        tenants=args.tenants,
        replicas=args.replicas,
        quiet_s=args.quiet,
        code_root=args.code.resolve(),
    )
    bench.log(f"chaos {bench.run_id}: seed {args.seed}, logs in {bench.workdir}")
    try:
        return await run_chaos(bench, config)
    finally:
        await bench.drop_databases()


async def run_until_signalled(args: argparse.Namespace) -> ChaosResult:
    """SIGINT or SIGTERM cancel the run, so every process is still stopped and the database dropped."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    return await run(args)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = asyncio.run(run_until_signalled(args))
    except asyncio.CancelledError:
        print("chaos: interrupted; every process stopped", file=sys.stderr)
        return 130
    print(result.text())
    if args.out is not None:
        dump_json(args.out, result.to_json())
        print(f"wrote {args.out}")
    return 0 if result.total_violations == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
