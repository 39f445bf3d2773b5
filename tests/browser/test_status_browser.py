"""/status in a real headless Chromium at phone size: sign in through the form, open a tenant, screenshot."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import ViewportSize, async_playwright

from tests.db.test_ops_endpoints import HOSTILE_NAME, OpsEnv, ops_environment
from tests.helpers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
ARTIFACTS = ROOT / "test-artifacts"
PHONE = ViewportSize(width=390, height=844)
STEP_MS = 15_000


def _ensure_chromium() -> None:
    """Install Debian's chromium when missing (root with apt only); skip with the reason otherwise."""
    if CHROMIUM.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{CHROMIUM} is missing and `apt-get install chromium` failed: {exc}")
    if not CHROMIUM.exists():
        pytest.skip(f"apt-get installed chromium but {CHROMIUM} does not exist")


@pytest.fixture(scope="module")
async def env(pool: asyncpg.Pool) -> AsyncIterator[OpsEnv]:
    async with ops_environment(pool, operator_token="op-" + secrets.token_urlsafe(24)) as ops_env:
        yield ops_env


async def test_status_page_in_headless_chromium(env: OpsEnv) -> None:
    _ensure_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            context = await browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
            context.set_default_timeout(STEP_MS)
            page = await context.new_page()

            response = await page.goto(f"{env.base_url}/status")
            assert response is not None and response.status == 401
            await page.fill("input[name=token]", "wrong-token")
            await page.click("button[type=submit]")
            await page.wait_for_selector("text=Wrong token.")

            await page.fill("input[name=token]", env.operator_token)
            async with page.expect_navigation(url=f"{env.base_url}/status"):
                await page.click("button[type=submit]")
            table = page.locator("table#tenants")
            await table.wait_for()
            rows = table.locator("tbody tr")
            assert await rows.count() == 2
            assert env.alpha.slug in await rows.nth(0).inner_text()
            assert HOSTILE_NAME in await rows.nth(0).inner_text()  # shown as text, not run as markup
            assert "active" in await rows.nth(0).locator(".badge").inner_text()
            assert "backoff" in await rows.nth(1).locator(".badge").inner_text()
            # Readable on a phone: the folded table fits the viewport, nothing scrolls sideways.
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"page is {overflow}px wider than a phone screen"
            overview_shot = ARTIFACTS / "status-overview.png"
            await page.screenshot(path=str(overview_shot), full_page=True)

            await rows.nth(0).get_by_role("link", name=env.alpha.slug).click()
            await page.wait_for_url(f"{env.base_url}/status?tenant={env.alpha.slug}")
            heading = page.locator("h1#tenant-detail")
            assert await heading.inner_text() == env.alpha.slug
            detail = await page.locator("table#tenant").inner_text()
            assert "Lock holder" in detail and env.lock_instance in detail
            assert "Restarts\t2" in detail and "Generations today" in detail
            assert env.alpha.bot_token not in await page.content()
            detail_shot = ARTIFACTS / "status-tenant.png"
            await page.screenshot(path=str(detail_shot), full_page=True)
            print(f"screenshots: {overview_shot} {detail_shot}")
            assert overview_shot.stat().st_size > 0 and detail_shot.stat().st_size > 0
        finally:
            await browser.close()
