"""What every tenant runtime shares: one pool, one dispatcher, one KIE client, one job service."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from aiogram import Dispatcher

from shared.registry import Registry
from shared.settings import Settings
from tenant_runtime.inbox import Inbox
from tenant_runtime.jobs import JobService
from tenant_runtime.kie_client import KieClient
from tenant_runtime.ledger import Ledger
from tenant_runtime.users import Users


@dataclass
class Services:
    pool: asyncpg.Pool
    settings: Settings
    instance: str
    inbox: Inbox
    dispatcher: Dispatcher
    registry: Registry
    ledger: Ledger
    users: Users
    kie: KieClient
    jobs: JobService

    @property
    def credit_rate(self) -> Decimal:
        return Decimal(str(self.settings.credit_rate_minor))
