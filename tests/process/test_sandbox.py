"""The offline sandbox (`make demo`) the way a person runs it: a subprocess, its output, Ctrl-C, no leftovers.

The sandbox gets the test server's DSN as DATABASE_URL and creates (and drops) its own database on it;
the embedded-Postgres path is too slow for the suite and is checked by hand.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SLUGS = ("demo-photo", "demo-video", "demo-en")
# Generous: importing aiogram alone takes seconds on a busy CI machine; the demo itself runs in ~10 s.
RUN_TIMEOUT = 300.0
STOP_TIMEOUT = 20.0


async def _start(pg_server_dsn: str, *args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "DATABASE_URL": pg_server_dsn, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox",
        *args,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def _stop_if_running(proc: asyncio.subprocess.Process) -> None:
    """After a failed assertion: stop the sandbox the polite way first, so it still cleans up."""
    if proc.returncode is not None:
        return
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 40)
    except TimeoutError:
        for child in children:
            child.kill()
        proc.kill()
        await proc.wait()


GOLDEN = ROOT / "tests" / "golden" / "sandbox"
# Lines that depend on timing or on the other flows, not on what the bot says: the progress message
# (its text changes every second while a job runs, and a look may land on any of its states) and the
# KIE account's credits, which the three tenants' flows spend concurrently.
_PROGRESS_LINE = re.compile(r"^\s*<✎?\s+⏳ ")
_KIE_CREDITS = re.compile(r"(Кредиты KIE|KIE credits): [0-9.,]+")


def _golden(section: str) -> str:
    """The tenant's transcript as it is compared with its golden file."""
    head, *lines = section.splitlines()
    kept = [f"══ {head}"]
    for line in lines:
        if line and not line.startswith(" "):
            break  # the end of the transcripts: what follows is the sandbox's other output
        if not _PROGRESS_LINE.match(line):
            kept.append(_KIE_CREDITS.sub(r"\1: N", line))
    return "\n".join(kept).rstrip() + "\n"


def _check_golden(slug: str, section: str) -> None:
    """Every word of the walk is compared with tests/golden/sandbox/<slug>.txt; a change to a text, a
    button, a price or a step shows as a diff. `UPDATE_GOLDEN=1 make test` rewrites the files."""
    path = GOLDEN / f"{slug}.txt"
    got = _golden(section)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got, encoding="utf-8")
        return
    want = path.read_text(encoding="utf-8")
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), str(path), "this run"))
        pytest.fail(f"the {slug} walk differs from its golden transcript (UPDATE_GOLDEN=1 to accept):\n{diff}")


def _sections(output: str) -> dict[str, str]:
    """Each tenant's block of the output, keyed by slug (blocks start with "══ <slug> ·")."""
    return {part.split(" ", 1)[0]: part for part in re.split(r"^══ ", output, flags=re.M)[1:]}


async def _database_exists(server_dsn: str, output: str) -> bool:
    found = re.search(r"^\s+database\s+(sandbox_[0-9a-f]+)", output, re.M)
    assert found, "the sandbox did not print its database name"
    conn = await asyncpg.connect(server_dsn)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", found.group(1)))
    finally:
        await conn.close()


async def test_no_wait_plays_every_tenant_and_exits_cleanly(pg_server_dsn: str) -> None:
    proc = await _start(pg_server_dsn, "--no-wait")
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    finally:
        await _stop_if_running(proc)
    output = out.decode()
    assert proc.returncode == 0, output[-5000:]

    sections = _sections(output)
    assert set(SLUGS) <= set(sections), output[-3000:]
    for slug in SLUGS:
        block = sections[slug]
        # The transcript itself shows the delivered media and the /balance answer, not just the summary.
        assert re.search(r"^\s+<\s+\[(photo|video)\] ✅", block, re.M), block
        assert re.search(r"^\s+> /balance\n\s+<\s+💰 (Баланс|Balance): ", block, re.M), block
        assert "✔ delivered:" in block and "✔ flagship:" in block and "✔ balance:" in block, block
    assert "[video]" in sections["demo-video"]
    # One flagship model per tenant, on its own KIE endpoint: Midjourney's album, Veo's video, Suno's tracks.
    assert re.search(r"✔ flagship: \[photo\] ✅ Midjourney", sections["demo-photo"]), sections["demo-photo"]
    assert re.search(r"✔ flagship: \[video\] ✅ Veo 3.1", sections["demo-video"]), sections["demo-video"]
    assert re.search(r"✔ flagship: \[audio\] ✅ Suno V5", sections["demo-en"]), sections["demo-en"]
    assert "Step 1/" in sections["demo-en"] and "Шаг 1/" in sections["demo-photo"]
    # The paid image model visibly spends the welcome bonus.
    assert "Баланс: 500 ₽" in sections["demo-photo"]
    final = re.search(r"✔ balance: 💰 Баланс: (.+?) ⏎", sections["demo-photo"])
    assert final and final.group(1) != "500 ₽", sections["demo-photo"]
    assert "All 3 scripted flows delivered their results." in output
    for slug in SLUGS:
        _check_golden(slug, sections[slug])
    assert not await _database_exists(pg_server_dsn, output), "the sandbox's database was not dropped"


async def test_stays_up_until_sigint_then_leaves_no_process(pg_server_dsn: str) -> None:
    proc = await _start(pg_server_dsn)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not lines or "Press Ctrl-C" not in lines[-1]:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the sandbox never said it is up:\n" + "".join(lines[-40:])
            line = await asyncio.wait_for(proc.stdout.readline(), remaining)
            assert line, "the sandbox exited instead of staying up:\n" + "".join(lines[-40:])
            lines.append(line.decode())
        output = "".join(lines)
        health = re.search(r"supervisor health\s+(http://127\.0\.0\.1:\d+/health)", output)
        assert health, output[-3000:]
        assert re.search(r"fake Telegram\s+http://127\.0\.0\.1:\d+", output)
        assert re.search(r"/_control/transcript\?token=\d+%3A\S+&chat_id=\d+", output)
        assert re.search(r"fake KIE\s+http://127\.0\.0\.1:\d+", output)

        # Up means serving: all three bots active behind the printed health URL.
        async with httpx.AsyncClient(timeout=5) as client:
            body = (await client.get(health.group(1))).json()
        assert body["tenants"]["by_state"] == {"active": 3}, body

        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "expected at least the supervisor subprocess"
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), STOP_TIMEOUT)
    finally:
        await _stop_if_running(proc)
    tail = rest.decode()
    assert proc.returncode == 0, tail
    assert "supervisor stopped (exit 0)" in tail and "Stopped." in tail, tail
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left running after the sandbox exited: {[p.pid for p in alive]}"
    assert not await _database_exists(pg_server_dsn, output), "the sandbox's database was not dropped"
