"""Webhook delivery with Telegram's guarantees: per-chat order, bounded concurrency, endless retries.

A chat's next update waits until the previous one got a 2xx, so a bot that returns 500 for one user
stalls only that user. Failures back off exponentially and are reported through getWebhookInfo's
last_error_* fields, never raised: a bot whose webhook is down must not take the fake down with it.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable

import aiohttp

from sandbox.telegram.model import BotState, Update, WebhookConfig, now
from sandbox.telegram.params import Params

ReplyExecutor = Callable[[BotState, Params], Awaitable[None]]
"""Runs a Bot API call that the bot returned in its webhook response body."""


class WebhookDeliverer:
    def __init__(
        self,
        bot: BotState,
        config: WebhookConfig,
        session: aiohttp.ClientSession,
        *,
        retry_initial: float,
        retry_max: float,
        timeout: float,
        execute_reply: ReplyExecutor,
    ) -> None:
        self._bot = bot
        self._config = config
        self._session = session
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._execute_reply = execute_reply
        self._slots = asyncio.Semaphore(config.max_connections)
        self._queues: dict[int, deque[Update]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self.queued = 0

    def enqueue(self, update: Update) -> None:
        self._queues.setdefault(update.chat_key, deque()).append(update)
        self.queued += 1
        if update.chat_key not in self._workers:
            self._workers[update.chat_key] = asyncio.create_task(
                self._drain(update.chat_key), name=f"fake-telegram-webhook-{update.chat_key}"
            )

    async def close(self) -> list[Update]:
        """Stop delivering; returns what was still queued so the caller can hand it to getUpdates."""
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        leftover = [update for queue in self._queues.values() for update in queue]
        self._queues.clear()
        self.queued = 0
        return leftover

    async def _drain(self, chat_key: int) -> None:
        queue = self._queues[chat_key]
        delay = self._retry_initial
        try:
            while queue:
                update = queue[0]
                async with self._slots:
                    error = await self._post(update)
                if error is None:
                    queue.popleft()
                    self.queued -= 1
                    self._bot.pending.pop(update.update_id, None)
                    delay = self._retry_initial
                    continue
                self._config.last_error_date = now()
                self._config.last_error_message = error
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
        finally:
            self._workers.pop(chat_key, None)
            if not queue:
                self._queues.pop(chat_key, None)

    async def _post(self, update: Update) -> str | None:
        """One delivery attempt; returns Telegram's wording of the failure, or None on success."""
        headers = {"Content-Type": "application/json"}
        if self._config.secret_token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self._config.secret_token
        body = json.dumps(update.to_api(), ensure_ascii=False).encode()
        try:
            async with self._session.post(
                self._config.url, data=body, headers=headers, timeout=self._timeout
            ) as response:
                if not 200 <= response.status < 300:
                    return f"Wrong response from the webhook: {response.status} {response.reason}"
                reply = await _read_reply(response)
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientConnectorError:
            return "Connection refused"
        except aiohttp.ClientError as exc:
            return f"Connection failed: {type(exc).__name__}"
        if reply is not None:
            await self._execute_reply(self._bot, reply)
        return None


async def _read_reply(response: aiohttp.ClientResponse) -> Params | None:
    """A bot may answer an update with a Bot API call in the response body (aiogram does, as multipart)."""
    try:
        if response.content_type == "multipart/form-data":
            return await Params.from_multipart(aiohttp.MultipartReader(response.headers, response.content))
        if response.content_type == "application/json":
            body = await response.json()
            return Params(body) if isinstance(body, dict) and "method" in body else None
    except ValueError:
        pass  # an unreadable body is just "no call": the update itself was accepted
    return None
