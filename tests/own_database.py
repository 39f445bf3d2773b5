"""Fixtures for a test module that runs in a database of its own: the tenants it adds are encrypted under
keys of their own, which would break tests that rotate every tenant's key in the session database.

A module takes them by assignment, so pytest finds them there:
`database_url = own_database.database_url` and `pool = own_database.pool`.
"""

from __future__ import annotations

import asyncpg
import pytest

__all__ = ["database_url", "pool"]


@pytest.fixture(scope="module")
def database_url(module_database: str) -> str:
    return module_database


@pytest.fixture(scope="module")
def pool(module_pool: asyncpg.Pool) -> asyncpg.Pool:
    return module_pool
