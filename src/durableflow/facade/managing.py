"""The facade's calls on stored workflows: inspect, stop and steer them.

Inspect (status, metadata, listing), stop (cancel, delete) and steer (restart, fork, bulk
actions by filter, retention).
Each is one call of the default Client (:func:`durableflow.facade.default.client`); the Client
documents the protocols. Bulk calls take the filter as keyword arguments: ``status``,
``prefix``, ``name`` (the root task's), ``older_than``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from durableflow.facade.default import client
from durableflow.model.status import WorkflowStatus

__all__ = [
    "cancel",
    "cancel_all",
    "delete",
    "delete_all",
    "fork",
    "get_logs",
    "get_metadata",
    "get_retention",
    "get_status",
    "list_all",
    "restart",
    "set_retention",
]


def get_status(workflow_id: str) -> WorkflowStatus:
    """The status of a workflow."""
    return client().get_status(workflow_id)


def get_metadata(workflow_id: str, task_id: str | None = None) -> dict[str, Any]:
    """Metadata of a workflow, or of one of its tasks."""
    return client().get_metadata(workflow_id, task_id)


def get_logs(workflow_id: str, task_id: str | None = None) -> dict[str, list[Any]]:
    """What each task attempt printed and logged: ``{task_id: [AttemptLog, ...]}``, oldest first.

    Raises:
        WorkflowNotFoundError: no such workflow, or no such task in it.
    """
    return client().get_logs(workflow_id, task_id)


def list_all(
    status_filter: str | WorkflowStatus | Iterable[str | WorkflowStatus] | None = None,
    **filters: Any,
) -> list[tuple[str, WorkflowStatus]]:
    """``[(workflow_id, status)]`` of the stored workflows, optionally filtered.

    ``filters``: ``prefix``, ``name``, ``older_than``, as the bulk calls take them.
    """
    return client().list_all(status_filter, **filters)


def cancel(workflow_id: str, *, wait: bool = True, timeout: float = 30.0) -> None:
    """Cancel a workflow; its checkpoints are kept, and it cannot be resumed.

    ``wait``: return once nothing of it runs any more (up to ``timeout`` seconds); else once
    the cancel is requested (``Client.cancel``).
    """
    client().cancel(workflow_id, timeout, wait=wait)


def delete(workflow_id: str) -> None:
    """Remove everything stored for a workflow that is not running."""
    client().delete(workflow_id)


def restart(workflow_id: str, from_tasks: str | list[str], **kw: Any) -> Any:
    """Set aside tasks' checkpoints and everything downstream (``Client.restart``)."""
    return client().restart(workflow_id, from_tasks, **kw)


def fork(workflow_id: str, new_workflow_id: str, **kw: Any) -> str:
    """A new RESUMABLE workflow from another's checkpoints (``Client.fork``)."""
    return client().fork(workflow_id, new_workflow_id, **kw)


def cancel_all(**filters: Any) -> list[str]:
    """Cancel every workflow the filter matches; the ids acted on (``Client.cancel_all``)."""
    return client().cancel_all(**filters).acted


def delete_all(**filters: Any) -> list[str]:
    """Delete every workflow the filter matches; the ids acted on (``Client.delete_all``)."""
    return client().delete_all(**filters).acted


def set_retention(ages: dict[str, Any] | None = None, keep_last: Any = None) -> Any:
    """Store the retention policy (``Client.set_retention``)."""
    return client().set_retention(ages, keep_last)


def get_retention() -> Any:
    """The stored retention policy."""
    return client().get_retention()
