"""placeholder"""

from bench.common import Bench, FigureResult


async def figure_failover(bench: Bench) -> FigureResult:
    return FigureResult()
