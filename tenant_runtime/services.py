"""What every tenant runtime shares: one pool, one dispatcher, one HTTP session, one KIE client."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiogram import Dispatcher

from shared.settings import Settings
from tenant_runtime.inbox import Inbox


@dataclass
class Services:
    pool: asyncpg.Pool
    settings: Settings
    instance: str
    inbox: Inbox
    dispatcher: Dispatcher
