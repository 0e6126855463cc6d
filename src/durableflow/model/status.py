"""The statuses of a workflow and the sets that group them."""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["ACTIVE", "RESUMABLE_STATUSES", "TERMINAL", "WorkflowStatus", "parse_status_filter"]


class WorkflowStatus(str, enum.Enum):
    """Where a workflow stands; a ``str`` so it compares equal to its name."""

    RUNNING = "RUNNING"
    """A runner owns it and is executing its tasks."""
    PENDING = "PENDING"
    """Waiting for a slot under ``max_running_workflows``, or for a worker to pick it up."""
    SUCCESSFUL = "SUCCESSFUL"
    """Finished; its output is stored."""
    FAILED = "FAILED"
    """A task failed after its retries; ``resume`` runs the failed task again."""
    RESUMABLE = "RESUMABLE"
    """Stopped by a system error (crash, lost runner, storage fault); ``resume`` continues it."""
    CANCELED = "CANCELED"
    """Stopped on request; final."""

    def __str__(self) -> str:
        return self.value

    @property
    def is_active(self) -> bool:
        """True while a runner owns the workflow (RUNNING or PENDING)."""
        return self in ACTIVE

    @property
    def is_terminal(self) -> bool:
        """True when nothing more will happen (SUCCESSFUL or CANCELED)."""
        return self in TERMINAL


ACTIVE = frozenset({WorkflowStatus.RUNNING, WorkflowStatus.PENDING})
TERMINAL = frozenset({WorkflowStatus.SUCCESSFUL, WorkflowStatus.CANCELED})
RESUMABLE_STATUSES = frozenset({WorkflowStatus.FAILED, WorkflowStatus.RESUMABLE})


def parse_status_filter(
    status_filter: str | WorkflowStatus | Iterable[str | WorkflowStatus] | None,
) -> frozenset[WorkflowStatus] | None:
    """Turn ``list_all``'s filter (None, a status, a name, or a set of either) into a set.

    Raises:
        ValueError: an unknown status name.
    """
    if status_filter is None:
        return None
    items = [status_filter] if isinstance(status_filter, str) else list(status_filter)
    result = set()
    for item in items:
        try:
            result.add(WorkflowStatus(str(item).upper()))
        except ValueError:
            names = ", ".join(s.value for s in WorkflowStatus)
            raise ValueError(f"unknown workflow status {item!r}; expected one of {names}") from None
    return frozenset(result)
