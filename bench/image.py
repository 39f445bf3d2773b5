"""The `image` figure: the production image built from scratch (on a base already in the daemon), its
size, and `docker run` → Docker's HEALTHCHECK says healthy, then → 10 tenants active against the fakes.

Where Docker cannot run here the rows say why and carry no value (sandbox/image.py: `unavailable`).
"""

from __future__ import annotations

import asyncio
import time

from bench.common import INFO, Bench, FigureResult, Prober, Row, by_state, rounded
from sandbox import image
from sandbox.stack import free_port

TENANTS = 10
# The environment the container gets: the stack's settings a production service would set, no more.
PASSED = ("DATABASE_URL", "MASTER_KEYS", "TELEGRAM_API_BASE", "KIE_BASE_URL", "CREDIT_RATE_MINOR", "LOG_FORMAT")


async def figure_image(bench: Bench) -> FigureResult:
    reason = await asyncio.to_thread(image.unavailable)
    if reason is not None:
        return FigureResult(rows=[_row(key, label, None, "", f"not measured: {reason}") for key, label in _ROWS])
    tag = f"tg-tenant-supervisor:bench-{bench.run_id}"
    build_s = await asyncio.to_thread(image.build, tag, no_cache=True)
    size = await asyncio.to_thread(image.image_size_mib, tag)
    async with bench.stack("image") as stack:
        await stack.add_tenants_direct("img", TENANTS)
        port = free_port()
        env = {k: v for k, v in stack.env().items() if k in PASSED}
        # Polling: production wants an https PUBLIC_BASE_URL for webhooks, which loopback cannot give.
        env |= {"PORT": str(port), "HOST": "127.0.0.1", "BOT_MODE": "polling"}
        started = time.perf_counter()
        container = await asyncio.to_thread(image.run, tag, env)
        prober = Prober()
        try:
            healthy_s = await asyncio.to_thread(container.wait_healthy, 120)
            active_s = None
            while time.perf_counter() - started < 120:
                if by_state(await prober.health(port), "active") >= TENANTS:
                    active_s = time.perf_counter() - started
                    break
                await asyncio.sleep(0.1)
            code, stop_s = await asyncio.to_thread(container.stop_with, "TERM")
            logs = await asyncio.to_thread(container.logs)
        finally:
            await prober.close()
            await asyncio.to_thread(container.remove)
    await asyncio.to_thread(image.remove, tag)
    out = FigureResult()
    out.details.update({"tag": tag, "exit_code": code, "stop_s": rounded(stop_s, 2), "active_s": rounded(active_s, 2)})
    if active_s is None:
        out.details["logs_tail"] = logs[-3000:]  # the supervisor masks every secret it logs
    out.rows += [
        _row("image_build_s", "docker build, no cache", rounded(build_s, 1), "s", "legacy builder, base in the daemon"),
        _row("image_size_mib", "image size", rounded(size, 1), "MiB", "base + locked dependencies + the project"),
        _row(
            "image_healthy_s",
            "docker run → HEALTHCHECK healthy",
            rounded(healthy_s, 2),
            "s",
            f"probed every 1 s here (the image's own interval is 30 s); {TENANTS} tenants active after "
            f"{rounded(active_s, 1)} s; SIGTERM → exit {code} in {stop_s:.2f} s",
        ),
    ]
    return out


_ROWS = (
    ("image_build_s", "docker build, no cache"),
    ("image_size_mib", "image size"),
    ("image_healthy_s", "docker run → HEALTHCHECK healthy"),
)
_UNITS = {"image_build_s": "s", "image_size_mib": "MiB", "image_healthy_s": "s"}


def _row(key: str, label: str, value: float | None, unit: str, note: str) -> Row:
    return Row("image", key, label, value, unit or _UNITS[key], "reported", INFO, note)


__all__ = ["figure_image"]
