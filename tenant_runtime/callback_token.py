"""The token in a KIE callback URL: it names the job and proves the URL was made by its tenant."""

from __future__ import annotations

import hashlib
import hmac


def _mac(secret: str, tenant_id: int, job_id: int) -> str:
    return hmac.new(secret.encode(), f"kie-callback:{tenant_id}:{job_id}".encode(), hashlib.sha256).hexdigest()[:32]


def make_token(secret: str, tenant_id: int, job_id: int) -> str:
    return f"{job_id}.{_mac(secret, tenant_id, job_id)}"


def read_token(secret: str, tenant_id: int, token: str) -> int | None:
    """The job id, or None when the token is malformed or was not made with this tenant's secret."""
    job_part, _, mac = token.partition(".")
    if not job_part.isdigit() or len(job_part) > 18 or len(mac) != 32:
        return None
    job_id = int(job_part)
    return job_id if hmac.compare_digest(mac, _mac(secret, tenant_id, job_id)) else None
