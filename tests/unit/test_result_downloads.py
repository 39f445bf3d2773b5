"""Result downloads cannot reach this host or its network (issue 15, item 1), over real HTTP on
loopback: an "internal" endpoint on 127.0.0.1 stands for what an attacker's result URL would target."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from sandbox.telegram.server import FakeTelegram
from tenant_runtime.config import TenantConfig, TenantStatus
from tenant_runtime.generation.delivery import TelegramNotifier
from tenant_runtime.generation.downloads import Downloader, DownloadRefused, address_allowed
from tenant_runtime.generation.jobs import Job
from tests.helpers import serving

BODY = b"\x89PNG internal-only secret bytes"
LOOPBACK_OK = Downloader(allow_loopback=True)


@dataclass
class Internal:
    """A loopback server: what a result URL must not reach, and redirects to test hops with."""

    base: str = ""
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def internal() -> AsyncIterator[Internal]:
    state = Internal()

    async def handle(request: web.Request) -> web.StreamResponse:
        state.hits.append(request.path_qs)
        path = request.path
        if path == "/file.png":
            return web.Response(body=BODY, content_type="image/png")
        if path == "/redirect":
            raise web.HTTPFound(request.query["to"])
        if path == "/loop":
            raise web.HTTPFound("/loop")
        if path == "/big":
            response = web.StreamResponse()
            await response.prepare(request)
            for _ in range(8):
                await response.write(b"x" * 256 * 1024)
            return response
        if path == "/big-declared":
            return web.Response(body=b"x" * 2048, headers={"Content-Length": "2048"})
        if path == "/slow":
            await asyncio.sleep(2)  # longer than the 0.5 s cap below
            return web.Response(body=b"late")
        if path == "/gzip":
            return web.Response(body=b"\x1f\x8b...", headers={"Content-Encoding": "gzip"})
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with serving(app) as url:
        state.base = url
        yield state


def _port(internal: Internal) -> str:
    return internal.base.rsplit(":", 1)[1]


# --- the address rule ----------------------------------------------------------------------------------

REFUSED_NETWORKS = [
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
    "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "192.0.0.0/24", "198.18.0.0/15",
    "::1/128", "::/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    "::ffff:127.0.0.0/104", "::ffff:10.0.0.0/104", "::ffff:169.254.0.0/112", "64:ff9b::7f00:0/120",
    "2002:7f00::/24", "2002:a9fe::/32",
]  # fmt: skip


@given(st.sampled_from(REFUSED_NETWORKS), st.integers(min_value=0))
def test_no_address_of_a_refused_network_is_allowed(network: str, offset: int) -> None:
    net = ipaddress.ip_network(network)
    ip = net[offset % net.num_addresses]
    assert not address_allowed(ip), ip


def test_public_addresses_are_allowed_and_loopback_only_on_request() -> None:
    for public in ("93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34"):
        assert address_allowed(ipaddress.ip_address(public)), public
    for loopback in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert address_allowed(ipaddress.ip_address(loopback), allow_loopback=True)
        assert not address_allowed(ipaddress.ip_address(loopback))
    # The switch is for loopback only: private networks stay refused with it on.
    assert not address_allowed(ipaddress.ip_address("10.0.0.1"), allow_loopback=True)
    assert not address_allowed(ipaddress.ip_address("169.254.169.254"), allow_loopback=True)


# --- downloads ------------------------------------------------------------------------------------------


async def test_loopback_is_refused_by_default_however_it_is_spelled(internal: Internal) -> None:
    port = _port(internal)
    for url in (
        f"http://127.0.0.1:{port}/file.png",
        f"http://localhost:{port}/file.png",  # by name: the address is checked after resolution
        f"http://2130706433:{port}/file.png",  # 127.0.0.1 as one number
        f"http://127.1:{port}/file.png",
        f"http://[::ffff:127.0.0.1]:{port}/file.png",
    ):
        with pytest.raises(DownloadRefused, match=r"non-public address|malformed URL"):
            await Downloader().fetch(url)
    assert internal.hits == [], "no request may reach the internal endpoint"
    assert await LOOPBACK_OK.fetch(f"{internal.base}/file.png") == BODY


async def test_schemes_other_than_http_are_refused() -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:70/", "data:text/plain,hi", "//x/y"):
        with pytest.raises(DownloadRefused, match="http and https only"):
            await LOOPBACK_OK.fetch(url)


async def test_redirects_are_checked_hop_by_hop_and_bounded(internal: Internal) -> None:
    via = f"{internal.base}/redirect?to="
    assert await LOOPBACK_OK.fetch(f"{via}/file.png") == BODY
    for target in ("http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/", "http://[fd00::1]/"):
        with pytest.raises(DownloadRefused, match="non-public address"):
            await LOOPBACK_OK.fetch(via + target)
    with pytest.raises(DownloadRefused, match="http and https only"):
        await LOOPBACK_OK.fetch(via + "file:///etc/passwd")
    hits = len(internal.hits)
    with pytest.raises(DownloadRefused, match="more than 5 redirects"):
        await LOOPBACK_OK.fetch(f"{internal.base}/loop")
    assert len(internal.hits) - hits == 6


async def test_size_and_time_are_capped(internal: Internal) -> None:
    small = Downloader(allow_loopback=True, max_bytes=1024 * 1024, total_seconds=0.5)
    with pytest.raises(DownloadRefused, match="larger than"):
        await small.fetch(f"{internal.base}/big")  # streamed without a length: cut at the cap
    with pytest.raises(DownloadRefused, match="larger than"):
        await Downloader(allow_loopback=True, max_bytes=1024).fetch(f"{internal.base}/big-declared")
    with pytest.raises(TimeoutError):
        await small.fetch(f"{internal.base}/slow")
    with pytest.raises(DownloadRefused, match="compressed"):
        await LOOPBACK_OK.fetch(f"{internal.base}/gzip")


# --- the notifier: what the user would have received ----------------------------------------------------

_bots = itertools.count(760_000_001)


def _job(url: str, chat_id: int) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=1, tenant_id=1, user_id=chat_id, chat_id=chat_id, model="m", params={}, kie_input={}, price=0,
        hold_id=None, correlation_id="c", language="en", status="succeeded", task_id="t", kie_state="success",
        result_urls=[url], result_text=None, fail_reason=None, progress_message_id=None, created_at=now,
        submitted_at=now, finished_at=now, deadline_at=now,
    )  # fmt: skip


@dataclass
class Handle:
    config: TenantConfig
    bot: Bot


@pytest.mark.parametrize("allow_loopback", [False, True])
async def test_an_internal_url_is_never_relayed_to_the_user(internal: Internal, allow_loopback: bool) -> None:
    # Telegram could not fetch the URL (its 400): the notifier falls back to downloading it itself.
    # The fake never fetches URLs, so every hit is ours.
    fake = FakeTelegram(fetch_media_urls=False)
    await fake.start()
    token = f"{next(_bots)}:AAfake-downloads"
    await fake.register_bot(token)
    bot = Bot(token, session=AiohttpSession(api=fake.api_server))
    try:
        config = TenantConfig(
            id=1, slug="dl-shop", display_name="DL", status=TenantStatus.ENABLED, bot_id=int(token.split(":")[0]),
            bot_token=token, kie_api_key=None, kie_webhook_key=None, webhook_secret="w", callback_secret="c",
            admin_ids=frozenset(), lock_key=1, markup=Decimal("2"), default_language="en", bot_mode=None,
            welcome_bonus=0, referral_bonus=0, disabled_models=frozenset(), config_version=1,
        )  # fmt: skip
        notifier = TelegramNotifier(None, downloads=Downloader(allow_loopback=allow_loopback))
        await fake.send_text(token, 77, "hi")  # the user's chat with the bot
        await fake.inject_faults(token, bad_request_calls=1)
        url = f"{internal.base}/file.png"
        sent = await notifier._send_media(Handle(config, bot), _job(url, 77), "image", url, "caption", None)
        uploads = [c for c in fake.calls(token, "sendPhoto") if str(c.params.get("photo", "")).startswith("<upload")]
        if allow_loopback:  # the sandbox's switch: the fallback works against the fakes
            assert sent and len(uploads) == 1 and internal.hits == ["/file.png"]
        else:
            assert not sent and uploads == [] and internal.hits == []
    finally:
        await bot.session.close()
        await fake.stop()
