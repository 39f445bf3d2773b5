"""What every tenant runtime shares: one pool, one dispatcher, one KIE client, one job service."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from aiogram import Dispatcher

from shared.registry import Registry
from shared.settings import Settings
from tenant_runtime.arrival import Arrivals
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.generation.jobs import JobService
from tenant_runtime.inbox import Inbox
from tenant_runtime.kie.client import KieClient
from tenant_runtime.telegram.fence import ALWAYS_HELD, Lease
from tenant_runtime.users import Users


@dataclass
class Services:
    pool: asyncpg.Pool
    settings: Settings
    instance: str
    inbox: Inbox
    arrivals: Arrivals
    dispatcher: Dispatcher
    registry: Registry
    ledger: Ledger
    users: Users
    kie: KieClient
    jobs: JobService
    lease: Lease = ALWAYS_HELD  # the locker's hold: owned work stops when it lapses (telegram.fence)

    @property
    def credit_rate(self) -> Decimal:
        return Decimal(str(self.settings.credit_rate_minor))
