"""Waiting for a workflow's (or a task's) output: storage polled with a growing delay.

A run of the same Client is waited for through its future; anything else through storage, so
a workflow run by another process or machine is waited for the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from durableflow.errors import WorkflowError
from durableflow.model.records import RunRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.runtime.run_queue import RunQueue
from durableflow.runtime.status import effective_status, find_task_spec, stopped_error
from durableflow.storage.store import WorkflowStore

__all__ = ["output_waiter"]


def output_waiter(
    store: WorkflowStore,
    runs: RunQueue,
    record: RunRecord,
    task_id: str | None,
    timeout: float | None,
) -> Callable[[], Any]:
    """A call that returns the output once there is one, or raises why there is none.

    A task that does not exist yet (a continuation a running workflow has not created) is
    waited for while the workflow is active, as Ray did; once it stopped, an unknown task
    raises WorkflowNotFoundError.

    Raises (from the call):
        WorkflowNotFoundError: unknown task.
        WorkflowExecutionError / WorkflowCancellationError / WorkflowIncompleteError: it
            stopped without an output (FAILED, CANCELED, RESUMABLE).
        TimeoutError: ``timeout`` seconds passed.
    """
    workflow_id = record.workflow_id
    if task_id is not None and effective_status(store, record) not in ACTIVE:
        find_task_spec(store, workflow_id, task_id)
    deadline = None if timeout is None else time.monotonic() + timeout

    def wait() -> Any:
        delay = 0.01
        while True:
            current = store.read_run(workflow_id) or record
            if task_id is not None:
                try:
                    return store.read_output(workflow_id, task_id)
                except KeyError:
                    pass
            status = effective_status(store, current)
            if task_id is None and status is WorkflowStatus.SUCCESSFUL:
                return store.read_output(workflow_id, current.root_task_id)
            if status not in ACTIVE:
                if task_id is not None:
                    find_task_spec(store, workflow_id, task_id)  # unknown task: not found
                raise stopped_error(current, status, task_id)
            active = runs.active(workflow_id)
            if active is not None and task_id is None:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    return active[1].result(remaining)
                except TimeoutError:
                    raise
                except WorkflowError:
                    pass  # re-read the stored status for the error to raise
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {workflow_id!r} did not finish in {timeout} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    return wait
