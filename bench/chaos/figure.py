"""The `chaos` figure of `python -m bench`: one fixed seed, so a full `make bench` includes a chaos run."""

from __future__ import annotations

from bench.chaos.run import ChaosConfig, run_chaos
from bench.common import Bench, FigureResult

FIGURE_SEED = 1


async def figure_chaos(bench: Bench) -> FigureResult:
    config = ChaosConfig(seed=FIGURE_SEED, minutes=0.5 if bench.quick else 2.0, tenants=12 if bench.quick else 30)
    result = await run_chaos(bench, config)
    bench.log(result.text())
    return FigureResult(rows=result.rows(), details=result.to_json())
