"""What the fake KIE needs to know about one dedicated endpoint family to speak it.

The fake owns the tasks, time, files, faults and callback delivery (`sandbox.kie`); a family says
which routes it has, which requests its docs accept, what a task costs and returns, and how its
status answers and callbacks are worded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

__all__ = ["CONTENT_MESSAGE", "Action", "FakeFamily", "Lookup", "Refusal", "TaskView", "problems_of"]

CONTENT_MESSAGE = "Your prompt was flagged by Website as violating content policies"


@dataclass(frozen=True)
class Action:
    """One create route: its operation name (for faults and counts), path under /api/v1/, and the
    action the family performs (generate, upscale, …)."""

    operation: str
    path: str
    action: str
    method: str = "POST"


@dataclass(frozen=True)
class TaskView:
    """A task as a family words it: its id, action, request body, state ("waiting", "queuing",
    "generating", "success", "fail"), result URLs once done, the failure, times (epoch ms)."""

    task_id: str
    action: str
    body: Mapping[str, Any]
    state: str
    urls: tuple[str, ...]
    fail_code: str
    fail_msg: str
    content_failure: bool
    created_ms: int
    completed_ms: int | None
    extra: Mapping[str, Any] = field(default_factory=dict)


class Refusal(Exception):
    """An answer with a body code other than 200 (the fake replies `{code, msg, data: null}`)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Lookup = Callable[[str], "TaskView | None"]
"""A task of the calling key by id, as the family sees it now (None: unknown or another key's)."""


class FakeFamily(Protocol):
    name: str
    actions: tuple[Action, ...]
    status_operation: str
    status_path: str

    def validate(self, action: str, body: Mapping[str, Any]) -> list[str]:
        """What the real endpoint would refuse (422), per its docs."""
        ...

    def cost(self, action: str, body: Mapping[str, Any]) -> Decimal:
        """Credits the task costs (charged at creation, returned if it fails)."""
        ...

    def kind(self, action: str, body: Mapping[str, Any]) -> str:
        """ "image", "video" or "audio": what the result files are."""
        ...

    def outputs(self, action: str, body: Mapping[str, Any]) -> int:
        """How many result files one task makes."""
        ...

    def status(self, task: TaskView) -> dict[str, Any]:
        """The status endpoint's `data` for the task."""
        ...

    def callbacks(self, task: TaskView) -> list[dict[str, Any]]:
        """The bodies POSTed to callBackUrl when the task ends, in order (progress ones first)."""
        ...

    def query(self, action: str, params: Mapping[str, str], lookup: Lookup, now_ms: int) -> dict[str, Any]:
        """A GET action that answers about existing tasks (Veo's 1080p); raises Refusal for non-200."""
        ...


def problems_of(
    body: Mapping[str, Any], *, required: tuple[str, ...], enums: Mapping[str, tuple[object, ...]]
) -> list[str]:
    """Missing required fields and values outside their documented sets."""
    found = [f"{name} is required" for name in required if body.get(name) in (None, "")]
    for name, allowed in enums.items():
        if name in body and body[name] not in allowed:
            found.append(f"{name} must be one of {', '.join(map(str, allowed))}")
    return found
