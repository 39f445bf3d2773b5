"""What a family's status endpoint or callback said about a task, in one shape for the job lifecycle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FINAL", "TaskReport", "TaskState"]

TaskState = Literal["waiting", "queuing", "generating", "success", "fail"]
FINAL: frozenset[str] = frozenset({"success", "fail"})


@dataclass(frozen=True)
class TaskReport:
    """A task as KIE reported it. `outputs` are the result URLs in KIE's order (two tracks, four
    images); `text` a text result; `fail_code`/`fail_msg` as KIE worded the failure."""

    task_id: str
    state: TaskState
    outputs: tuple[str, ...] = ()
    text: str | None = None
    fail_code: str | None = None
    fail_msg: str | None = None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL
