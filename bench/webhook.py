"""placeholder"""

from bench.common import Bench, FigureResult


async def figure_webhook(bench: Bench) -> FigureResult:
    return FigureResult()
