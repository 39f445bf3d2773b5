"""/metrics reads each tenant's state and lock from the slots when scraped (no gauge updated per
transition): the current state only, and whether this process holds the lock."""

from __future__ import annotations

from prometheus_client import generate_latest

from shared import metrics


def test_the_scrape_shows_each_tenants_current_state_and_lock() -> None:
    before = metrics.TENANT_STATES.source
    slots = [("shop-a", "active", True), ("shop-b", "backoff", False)]
    metrics.TENANT_STATES.source = lambda: iter(slots)
    try:
        text = generate_latest(metrics.REGISTRY).decode()
        slots[0] = ("shop-a", "standby", False)  # read again on the next scrape, not kept
        again = generate_latest(metrics.REGISTRY).decode()
    finally:
        metrics.TENANT_STATES.source = before
    assert 'tenant_runtime_state{state="active",tenant="shop-a"} 1.0' in text
    assert 'tenant_runtime_state{state="backoff",tenant="shop-b"} 1.0' in text
    assert 'tenant_lock_held{tenant="shop-a"} 1.0' in text and 'tenant_lock_held{tenant="shop-b"} 0.0' in text
    assert 'tenant_runtime_state{state="standby",tenant="shop-a"} 1.0' in again
    assert 'state="active",tenant="shop-a"' not in again, "a past state is not reported"
    assert 'tenant_lock_held{tenant="shop-a"} 0.0' in again
