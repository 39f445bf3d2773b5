"""Fixtures shared by the process tests. Each module defines its own `stack` (its tenants, its fakes'
settings) and the supervisors it runs; these build on it."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest

from sandbox.stack import Stack


@pytest.fixture(scope="module")
def db(module_pool: asyncpg.Pool) -> asyncpg.Pool:
    """The module's database, as the supervisors under test see it."""
    return module_pool


@pytest.fixture
def kie_defaults(stack: Stack) -> Iterator[None]:
    """The fake KIE's settings and faults as the module set them, restored after a test changes them."""
    saved = stack.kie.config
    yield None
    stack.kie.config = saved
    stack.kie.faults.clear()
