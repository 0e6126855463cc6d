"""Rules for workflow and task ids: they become storage key segments."""

from __future__ import annotations

import time
import uuid

from durableflow.errors import InvalidWorkflowIdError

__all__ = ["MAX_ID_LENGTH", "new_workflow_id", "validate_task_id", "validate_workflow_id"]

MAX_ID_LENGTH = 256


def _problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a str, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"must be at most {MAX_ID_LENGTH} characters (got {len(value)})"
    if "/" in value or "\\" in value:
        return "must not contain path separators"
    if ".." in value:
        return "must not contain '..'"
    if value.startswith("."):
        return "must not start with '.'"
    if not value.isprintable():
        return "must contain only printable characters"
    return None


def validate_workflow_id(workflow_id: object) -> str:
    """Return ``workflow_id`` if it is valid, else raise InvalidWorkflowIdError."""
    problem = _problem(workflow_id)
    if problem:
        raise InvalidWorkflowIdError(
            f"invalid workflow id {workflow_id!r}: {problem}",
            workflow_id=workflow_id if isinstance(workflow_id, str) else None,
        )
    return workflow_id  # type: ignore[return-value]


def validate_task_id(task_id: object) -> str:
    """Return ``task_id`` if it is valid, else raise ValueError."""
    problem = _problem(task_id)
    if problem:
        raise ValueError(f"invalid task id {task_id!r}: {problem}")
    return task_id  # type: ignore[return-value]


def new_workflow_id() -> str:
    """A fresh id: a random hex string followed by the start time, like Ray's."""
    return f"{uuid.uuid4().hex}.{time.time():.6f}"
