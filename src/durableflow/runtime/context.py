"""Which workflow and task the running code belongs to."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

__all__ = ["current_task_id", "current_workflow_id", "in_task", "task_context"]

_WORKFLOW: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "durableflow_workflow", default=None
)
_TASK: contextvars.ContextVar[str | None] = contextvars.ContextVar("durableflow_task", default=None)


def current_workflow_id() -> str | None:
    """The id of the workflow whose task runs this code, or None outside tasks."""
    return _WORKFLOW.get()


def current_task_id() -> str | None:
    """The id of the task running this code, or None outside tasks."""
    return _TASK.get()


def in_task() -> bool:
    """Whether this code runs inside a workflow task."""
    return _TASK.get() is not None


@contextlib.contextmanager
def task_context(workflow_id: str, task_id: str) -> Iterator[None]:
    """Mark the code run inside the block as task ``task_id`` of ``workflow_id``."""
    wf_token = _WORKFLOW.set(workflow_id)
    task_token = _TASK.set(task_id)
    try:
        yield
    finally:
        _TASK.reset(task_token)
        _WORKFLOW.reset(wf_token)
