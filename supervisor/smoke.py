"""SMOKE_TEST_ON_START: one real generation through the real KIE client after startup.

Runs in the background (never blocks startup or serving) with the tenant's own key, charges no
user, and logs PASSED or FAILED with timings, so an operator sees after a deploy that KIE works.
"""

from __future__ import annotations

import asyncio
import json
import time

from shared.logs import get_logger
from shared.registry import Registry, to_kie_input, validate_input
from shared.settings import Settings
from tenant_runtime.config import TenantConfig
from tenant_runtime.kie.client import KieClient
from tenant_runtime.kie.errors import KieError

log = get_logger(__name__)

SMOKE_TIMEOUT_S = 120.0


async def run_smoke_test(
    settings: Settings, registry: Registry, kie: KieClient, tenant: TenantConfig | None, *, poll_every: float = 3.0
) -> bool:
    started = time.monotonic()
    bound = log.bind(tenant=settings.smoke_test_tenant, model=settings.smoke_test_model_id, smoke_test=True)
    spec = registry.get(settings.smoke_test_model_id or "")
    problem: str | None = None
    params: dict[str, object] = {}
    if tenant is None or not tenant.kie_api_key:
        problem = "SMOKE_TEST_TENANT is not a tenant with a KIE key"
    elif spec is None:
        problem = "SMOKE_TEST_MODEL_ID is not in the model registry"
    else:
        try:
            loaded = json.loads(settings.smoke_test_input_json or "{}")
            params = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            problem = "SMOKE_TEST_INPUT_JSON is not JSON"
        problems = validate_input(spec, params) if problem is None else []
        if problems:
            problem = "SMOKE_TEST_INPUT_JSON: " + "; ".join(problems)
    if problem is not None or tenant is None or spec is None or not tenant.kie_api_key:
        bound.error("smoke test FAILED", reason=problem)
        return False
    key = tenant.kie_api_key
    try:
        async with asyncio.timeout(SMOKE_TIMEOUT_S):
            task_id = await kie.create_task(key, spec.id, to_kie_input(spec, params))
            created_s = time.monotonic() - started
            bound.info("smoke test task created", task_id=task_id, seconds=round(created_s, 3))
            while True:
                info = await kie.record_info(key, task_id)
                if info.is_final:
                    break
                await asyncio.sleep(poll_every)
    except (KieError, TimeoutError) as exc:
        bound.error("smoke test FAILED", reason=type(exc).__name__, seconds=round(time.monotonic() - started, 3))
        return False
    total = round(time.monotonic() - started, 3)
    if info.state == "success":
        bound.info(
            "smoke test PASSED",
            task_id=task_id,
            create_s=round(created_s, 3),
            total_s=total,
            results=len(info.result_urls),
        )
        return True
    bound.error("smoke test FAILED", task_id=task_id, fail_code=info.fail_code, total_s=total)
    return False
