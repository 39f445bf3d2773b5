"""placeholder"""

from bench.common import Bench, FigureResult


async def figure_generations(bench: Bench) -> FigureResult:
    return FigureResult()
