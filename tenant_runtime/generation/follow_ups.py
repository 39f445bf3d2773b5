"""What a follow-up of a finished job is: the job it acts on, which of its results, and the input
(the parent's task id, the result's number) its model gets. A follow-up is a job of its own, with
its own price, confirm screen and hold; the parent job is never touched."""

from __future__ import annotations

from shared.registry import ModelSpec
from tenant_runtime.generation.job import Job, JobStatus

__all__ = ["follow_up_params", "offered"]

_FINISHED = (JobStatus.SUCCEEDED, JobStatus.DELIVERED)


def offered(follow_up: ModelSpec, job: Job) -> bool:
    """`follow_up` acts on jobs of `job`'s model, and `job` has a task and results to act on."""
    return (
        follow_up.follow_up is not None
        and job.model in follow_up.follow_up.of
        and job.status in _FINISHED
        and job.task_id is not None
        and bool(job.result_urls)
    )


def follow_up_params(follow_up: ModelSpec, job: Job, index: int) -> dict[str, object] | None:
    """The input of `follow_up` on result number `index` (1-based) of `job`; None when not offered."""
    if not offered(follow_up, job) or follow_up.follow_up is None:
        return None
    params: dict[str, object] = {"parent_task": job.task_id}
    if follow_up.follow_up.per_output:
        if not 1 <= index <= len(job.result_urls):
            return None
        params["index"] = str(index)
    return params
