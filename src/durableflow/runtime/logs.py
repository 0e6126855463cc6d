"""Reading task logs: what each attempt of each task printed and logged.

Captured by :mod:`durableflow.runtime.logcapture` where the attempt ran, stored by the protocol
of :mod:`durableflow.storage.logs`. :func:`get_logs` is what ``workflow.get_logs``,
``Client.get_logs``, ``durableflow logs`` and the dashboard's task page read.
"""

from __future__ import annotations

import dataclasses

from durableflow.errors import StorageError, WorkflowNotFoundError
from durableflow.model.ids import validate_task_id, validate_workflow_id
from durableflow.storage.logs import list_logs, read_log
from durableflow.storage.store import WorkflowStore

__all__ = ["AttemptLog", "cut_marker", "get_logs"]


def cut_marker(dropped: int) -> str:
    """The line that opens a log whose head was dropped to keep it under its cap."""
    return f"[durableflow: {dropped} earlier characters of this attempt's log were cut]\n"


@dataclasses.dataclass(frozen=True)
class AttemptLog:
    """The captured output of one attempt of a task."""

    task_id: str
    attempt: int
    """The attempt's number, 1 for the first."""
    text: str
    """What it printed and logged, in order; opened by :func:`cut_marker`'s line if its head
    was cut (``dropped`` > 0)."""
    start: float
    """When the attempt started (Unix time)."""
    end: float | None
    """When it ended; None while it runs (or if its process died while it ran)."""
    written: int
    """Characters the attempt wrote in all, the cut ones included: a reader that follows the
    log prints the last ``written - seen`` characters of ``text``."""
    dropped: int
    """Characters cut from the head of the log (it keeps the tail, 1 MiB by default)."""
    host: str
    pid: int

    @property
    def running(self) -> bool:
        """Whether the log is still growing (its attempt has not ended, or was lost)."""
        return self.end is None


def get_logs(
    store: WorkflowStore,
    workflow_id: str,
    task_id: str | None = None,
    *,
    restart: int | None = None,
) -> dict[str, list[AttemptLog]]:
    """The logs of a workflow's tasks: task id -> its attempts' logs, oldest attempt first.

    Only attempts that wrote something have a log; a task asked for by ``task_id`` that wrote
    nothing maps to an empty list. One listing, then one read per attempt log.

    Args:
        store: the workflow store.
        workflow_id: the workflow.
        task_id: only this task (default: every task that has a log).
        restart: the logs in-place restart number ``restart`` set aside (the attempts before
            it of the tasks it ran again), instead of the current ones.

    Raises:
        InvalidWorkflowIdError: ``workflow_id`` or ``task_id`` is not a valid id.
        WorkflowNotFoundError: no such workflow, or no such task in it.
        StorageError: the storage failed.
    """
    validate_workflow_id(workflow_id)
    if task_id is not None:
        validate_task_id(task_id)
    if store.read_run(workflow_id) is None:
        raise WorkflowNotFoundError(
            f"No such workflow_id {workflow_id!r}: no workflow {workflow_id!r} in "
            f"{store.storage.url}",
            workflow_id=workflow_id,
        )
    storage = store.storage
    logs: dict[str, list[AttemptLog]] = {}
    try:
        for tid, attempt in list_logs(storage, workflow_id, task_id, restart=restart):
            found = read_log(storage, workflow_id, tid, attempt, restart=restart)
            if found is None:
                continue  # deleted since the listing, or garbled
            header, text = found
            if header.dropped:
                text = cut_marker(header.dropped) + text
            logs.setdefault(tid, []).append(
                AttemptLog(
                    tid,
                    attempt,
                    text,
                    header.start,
                    header.end,
                    header.written,
                    header.dropped,
                    header.host,
                    header.pid,
                )
            )
    except StorageError as err:
        raise type(err)(
            f"workflow {workflow_id!r}: reading task logs: {err}", workflow_id=workflow_id
        ) from err
    if task_id is not None and task_id not in logs and restart is None:
        if not _has_task(store, workflow_id, task_id):
            raise WorkflowNotFoundError(
                f"No such task_id {task_id!r} in workflow {workflow_id!r}",  # Ray's words
                workflow_id=workflow_id,
                task_id=task_id,
            )
        logs[task_id] = []
    return logs


def _has_task(store: WorkflowStore, workflow_id: str, task_id: str) -> bool:
    """Whether any DAG of the workflow (its root or a continuation) holds ``task_id``."""
    batches = store.read_specs(workflow_id).values()
    return any(spec.task_id == task_id for batch in batches for spec in batch.specs)
