"""The task table of a stored workflow, for operators (``durableflow show``).

Built from storage alone: the spec batches give the tasks and their continuations, the
checkpoint headers the attempts and times, the error records the last failure. What a runner
holds only in memory (which waiting task is being executed right now) is not known: such a
task reads PENDING.
"""

from __future__ import annotations

from typing import Any

from durableflow.errors import SerializationError
from durableflow.model.dag import FlatDAG
from durableflow.storage.layout import ROOT_BATCH
from durableflow.storage.store import WorkflowStore

__all__ = ["task_rows"]


def task_rows(
    store: WorkflowStore, workflow_id: str, *, active: bool, successful: bool
) -> list[dict[str, Any]]:
    """One dict per task, upstream first, each continuation's tasks right under their parent.

    Each row: ``task_id``, ``name``, ``status`` (SUCCESSFUL, FAILED, RETRYING, CONTINUED,
    PENDING, or NOT_CHECKPOINTED for a ``checkpoint=False`` task of a finished workflow),
    ``attempts``, ``start_time``, ``end_time``, ``duration``, ``error`` (summary of the last
    failed attempt), ``parent`` (the task whose continuation it belongs to) and ``depth``.

    Args:
        store: the workflow store.
        workflow_id: the workflow.
        active: the workflow is RUNNING or PENDING now (a failed attempt may be retried).
        successful: the workflow finished SUCCESSFUL.
    """
    try:
        batches = store.read_specs(workflow_id)
    except SerializationError:
        batches = {}
    rows: list[dict[str, Any]] = []
    if ROOT_BATCH not in batches:
        # The specs cannot be loaded here (their functions do not import): list what is stored.
        ids = sorted(store.list_done(workflow_id) | set(store.list_task_errors(workflow_id)))
        for task_id in ids:
            rows.append(
                _row(store, workflow_id, task_id, "?", None, 0, active, successful, False, 0)
            )
        return rows

    def walk(flat: FlatDAG, parent: str | None, depth: int) -> None:
        for spec in flat.specs:
            continued = spec.task_id in batches
            rows.append(
                _row(
                    store,
                    workflow_id,
                    spec.task_id,
                    spec.name,
                    parent,
                    depth,
                    active,
                    successful,
                    continued,
                    spec.options.max_retries,
                    spec.options.checkpoint,
                )
            )
            if continued and depth < 100:
                walk(batches[spec.task_id], spec.task_id, depth + 1)

    walk(batches[ROOT_BATCH], None, 0)
    return rows


def _row(
    store: WorkflowStore,
    workflow_id: str,
    task_id: str,
    name: str,
    parent: str | None,
    depth: int,
    active: bool,
    successful: bool,
    continued: bool,
    max_retries: int,
    checkpoint: bool = True,
) -> dict[str, Any]:
    header = store.read_output_header(workflow_id, task_id)
    error = store.read_task_error(workflow_id, task_id)
    if header is not None:
        status = "SUCCESSFUL"
    elif continued:
        status = "CONTINUED"
    elif error is not None:
        retrying = active and (max_retries < 0 or error.attempts <= max_retries)
        status = "RETRYING" if retrying else "FAILED"
    elif successful and not checkpoint:
        status = "NOT_CHECKPOINTED"
    else:
        status = "PENDING"
    start = (header or {}).get("start")
    end = (header or {}).get("end")
    attempts = (header or {}).get("attempt") or (error.attempts if error else 0)
    return {
        "task_id": task_id,
        "name": name,
        "status": status,
        "attempts": attempts,
        "start_time": start,
        "end_time": end,
        "duration": (end - start) if start is not None and end is not None else None,
        "error": error.error.summary() if error else None,
        "parent": parent,
        "depth": depth,
    }
