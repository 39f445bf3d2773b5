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

    @classmethod
    def from_status(
        cls,
        task_id: str,
        state: TaskState,
        outputs: tuple[str, ...],
        *,
        missing: str,
        fail_code: str | None,
        fail_msg: str | None,
    ) -> TaskReport:
        """A status answer, read alike for every family: a success without a result is a failure
        (`missing` names what did not come), and results count only on success."""
        if state == "success" and not outputs:
            return cls(task_id, "fail", fail_code="no_result", fail_msg=f"success without {missing}")
        if state == "fail":
            return cls(task_id, "fail", fail_code=fail_code, fail_msg=fail_msg)
        return cls(task_id, state, outputs=outputs if state == "success" else ())

    @classmethod
    def from_callback(cls, task_id: str, code: int, msg: str | None, outputs: tuple[str, ...]) -> TaskReport:
        """A callback, read alike for every family: code 200 with results is the success, anything else
        the failure, with KIE's code and words."""
        if code == 200 and outputs:
            return cls(task_id, "success", outputs=outputs)
        return cls(task_id, "fail", fail_code=str(code), fail_msg=msg)
