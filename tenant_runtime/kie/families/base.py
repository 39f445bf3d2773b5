"""What every KIE endpoint family provides to the one generation lifecycle.

A family turns a job's validated input into its endpoint's request, reads its status answers and its
callbacks into a `TaskReport`, and words a failure as one of the product's reasons. The job service,
the poller and the callback endpoint only ever talk to this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shared.registry import Family as FamilyName
from tenant_runtime.kie.client import KieClient
from tenant_runtime.kie.families.report import TaskReport

__all__ = ["CONTENT_WORDS", "Family", "TaskRef", "TaskRequest", "reason_from_text"]

CONTENT_WORDS = ("policy", "nsfw", "sensitive", "moderation", "safety", "prohibited", "flagged", "unsafe")


@dataclass(frozen=True)
class TaskRequest:
    """What to create: the registry model, its validated input, where KIE should call back."""

    model: str
    values: Mapping[str, Any]
    callback_url: str | None = None


@dataclass(frozen=True)
class TaskRef:
    """A task to ask about, with the job's model and input (a follow-up names its parent there)."""

    task_id: str
    model: str
    values: Mapping[str, Any] = field(default_factory=dict)


def reason_from_text(report: TaskReport) -> str:
    """ "content" when KIE's words say a filter refused it, else "provider"."""
    text = f"{report.fail_code or ''} {report.fail_msg or ''}".lower()
    return "content" if any(word in text for word in CONTENT_WORDS) else "provider"


class Family(ABC):
    """One endpoint family. Subclasses say which registry models they serve (`operations`: model id ->
    create path), build requests and parse answers; the calls themselves go through `KieClient`, so
    rate limits, retries, the circuit breaker and timeouts are the same for every family."""

    name: ClassVar[FamilyName]
    operations: ClassVar[Mapping[str, str]]
    status_path: ClassVar[str]

    def serves(self, model: str) -> bool:
        return model in self.operations

    @abstractmethod
    def request(self, model: str, values: Mapping[str, Any], callback_url: str | None) -> dict[str, Any]:
        """The JSON body of the create call for `model`."""

    @abstractmethod
    def parse_status(self, data: object) -> TaskReport:
        """The status endpoint's `data`; raises KieServerError when it cannot be read."""

    @abstractmethod
    def parse_callback(self, body: Mapping[str, Any]) -> TaskReport:
        """A callback body; raises KieCallbackError when it is not one of this family's callbacks."""

    def reason(self, report: TaskReport) -> str:
        """The product's reason for a failed task (a `fail.<reason>` text)."""
        return reason_from_text(report)

    async def create(self, kie: KieClient, api_key: str, request: TaskRequest) -> str:
        body = self.request(request.model, request.values, request.callback_url)
        return await kie.submit(api_key, self.operations[request.model], body, model=request.model)

    async def status(self, kie: KieClient, api_key: str, ref: TaskRef) -> TaskReport:
        data = await kie.read(api_key, self.status_path, {"taskId": ref.task_id}, operation=f"{self.name}_status")
        return self.parse_status(data)
