"""The token in a KIE callback URL: it names the job and proves the URL was made by its tenant."""

from __future__ import annotations

import hashlib
import hmac

from shared import strict

MAC_CHARS = 32
JOB_ID_DIGITS = 18  # below 2**63, the bigint column


def _mac(secret: str, tenant_id: int, job_id: int) -> str:
    return hmac.new(secret.encode(), f"kie-callback:{tenant_id}:{job_id}".encode(), hashlib.sha256).hexdigest()[
        :MAC_CHARS
    ]


def make_token(secret: str, tenant_id: int, job_id: int) -> str:
    return f"{job_id}.{_mac(secret, tenant_id, job_id)}"


def read_token(secret: str, tenant_id: int, token: str) -> int | None:
    """The job id, or None when the token is malformed or was not made with this tenant's secret.

    Both parts are checked for shape (ASCII, bounded) before anything is converted or compared."""
    job_part, _, mac_part = token.partition(".")
    job_id = strict.uint(job_part, max_digits=JOB_ID_DIGITS)
    mac = strict.token(mac_part, alphabet=strict.HEX, min_len=MAC_CHARS, max_len=MAC_CHARS)
    if job_id is None or mac is None:
        return None
    return job_id if hmac.compare_digest(mac, _mac(secret, tenant_id, job_id)) else None
