"""`python -m bench.health_watch PORT TENANTS STARTED TIMEOUT`: probe a supervisor's /health every 50 ms
until TENANTS are active; print {"active_s": seconds since STARTED or null, "stall_s": the longest gap
between answered probes} as JSON.

A process of its own: probing from the bench process, the probes waited behind the fake Telegram there
answering the supervisor's 10,000 getMe and setWebhook calls (in its event loop, or for the GIL from a
thread), and the longest gap measured was 0.36 s where a separate process measured 0.22 s.
STARTED is a `time.perf_counter()` reading of the bench (CLOCK_MONOTONIC: the same clock in every process).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bench.common import Prober, by_state


async def watch(port: int, tenants: int, started: float, timeout: float) -> tuple[float | None, float]:
    prober = Prober()
    last = time.perf_counter()
    stall = 0.0
    try:
        while time.perf_counter() < started + timeout:
            body = await prober.health(port)
            now = time.perf_counter()
            if body is not None:
                stall = max(stall, now - last)
                last = now
                if by_state(body, "active") >= tenants:
                    return now - started, stall
            await asyncio.sleep(0.05)
        return None, stall
    finally:
        await prober.close()


def main(argv: list[str]) -> int:
    port, tenants, started, timeout = int(argv[0]), int(argv[1]), float(argv[2]), float(argv[3])
    active_s, stall = asyncio.run(watch(port, tenants, started, timeout))
    print(json.dumps({"active_s": active_s, "stall_s": stall}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
