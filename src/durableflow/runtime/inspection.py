"""What readers are told about a workflow's tasks: ``durableflow show`` and ``get_metadata``.

Built from storage alone, so every process that reaches the storage gives the same answer: the
spec batches give the tasks and their continuations, the checkpoint headers the successful
attempts, the attempt records (written by the workers) the running, failed, continued and lost
ones, the error records the engine's view of each failure. The rules that turn them into a
status are :func:`durableflow.model.attempts.observe_task`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from durableflow.errors import SerializationError, WorkflowNotFoundError
from durableflow.model.attempts import TaskView, observe_task
from durableflow.model.dag import FlatDAG
from durableflow.model.info import TaskInfo
from durableflow.model.records import RunRecord
from durableflow.model.status import WorkflowStatus
from durableflow.model.task import TaskOptions
from durableflow.storage.attempts import list_attempts, read_attempt
from durableflow.storage.layout import ROOT_BATCH
from durableflow.storage.store import WorkflowStore

__all__ = [
    "Observer",
    "PlacedTask",
    "placed_tasks",
    "read_batches",
    "task_info",
    "task_infos",
    "task_rows",
]


class Observer:
    """Reads what is stored about the tasks of one workflow and observes each.

    Args:
        store: the workflow store.
        record: the workflow's run record.
        status: its effective status (RESUMABLE when its runner is gone).
        listed: list the checkpoints, attempt and error records once, and read only the keys
            that exist (for many tasks); else read each task's keys directly (for one task).
    """

    def __init__(
        self,
        store: WorkflowStore,
        record: RunRecord,
        status: WorkflowStatus,
        *,
        listed: bool = False,
    ) -> None:
        self.store = store
        self.workflow_id = record.workflow_id
        self.status = status
        self.epoch: int | None = record.epoch
        self._done: set[str] | None = None
        self._errors: set[str] | None = None
        self._attempts: set[str] | None = None
        if listed:
            self._done = store.list_done(self.workflow_id)
            self._errors = set(store.list_task_errors(self.workflow_id))
            self._attempts = set(list_attempts(store, self.workflow_id))

    def known_ids(self) -> list[str]:
        """Every task id that left something in storage (when specs cannot be loaded)."""
        return sorted((self._done or set()) | (self._errors or set()) | (self._attempts or set()))

    def has_checkpoint(self, task_id: str) -> bool:
        """The task's checkpoint is listed (True when the checkpoints were not listed)."""
        return _has(self._done, task_id)

    def observe(self, task_id: str, options: TaskOptions | None, continued: bool) -> TaskView:
        """The view of one task."""
        wid, store = self.workflow_id, self.store
        header = store.read_output_header(wid, task_id) if _has(self._done, task_id) else None
        error = store.read_task_error(wid, task_id) if _has(self._errors, task_id) else None
        attempt = read_attempt(store, wid, task_id) if _has(self._attempts, task_id) else None
        return observe_task(
            workflow=self.status,
            epoch=self.epoch,
            options=options,
            header=header,
            continued=continued,
            attempt=attempt,
            error=error,
        )


def _has(listed: set[str] | None, task_id: str) -> bool:
    return listed is None or task_id in listed


def task_info(
    workflow_id: str,
    task_id: str,
    name: str,
    view: TaskView,
    options: TaskOptions | None,
    parent: str | None = None,
    depth: int = 0,
) -> TaskInfo:
    """The read model of one task from its view."""
    return TaskInfo(
        workflow_id=workflow_id,
        task_id=task_id,
        name=name,
        status=view.status,
        attempts=view.attempts,
        start_time=view.start_time,
        end_time=view.end_time,
        error=view.error,
        lost=view.lost,
        last_attempt=view.last_attempt,
        parent=parent,
        depth=depth,
        options=options,
        history=view.history,
    )


class PlacedTask(NamedTuple):
    """A task where a task table lists it: what its spec says, its parent and its depth."""

    task_id: str
    name: str
    """Its name (``?`` when the specs cannot be loaded here)."""
    options: TaskOptions | None
    upstream: tuple[str, ...] | None
    """The ids of the tasks it needs (None when the specs cannot be loaded here)."""
    parent: str | None
    depth: int


def read_batches(store: WorkflowStore, workflow_id: str) -> dict[str, FlatDAG]:
    """The workflow's spec batches by batch name; none when they cannot be loaded here."""
    try:
        return store.read_specs(workflow_id)
    except SerializationError:
        return {}


def placed_tasks(
    batches: dict[str, FlatDAG], known_ids: Callable[[], list[str]]
) -> Iterator[PlacedTask]:
    """Every task, upstream first, each continuation's tasks right under their parent.

    Without the submitted DAG's batch (the specs cannot be loaded here), every task that
    ``known_ids`` names (those that left something in storage), named ``?``.
    """
    if ROOT_BATCH not in batches:
        for task_id in known_ids():
            yield PlacedTask(task_id, "?", None, None, None, 0)
        return
    yield from _walk(batches, batches[ROOT_BATCH], None, 0)


def _walk(
    batches: dict[str, FlatDAG], flat: FlatDAG, parent: str | None, depth: int
) -> Iterator[PlacedTask]:
    for spec in flat.specs:
        yield PlacedTask(spec.task_id, spec.name, spec.options, spec.upstream, parent, depth)
        if spec.task_id in batches and depth < 100:
            yield from _walk(batches, batches[spec.task_id], spec.task_id, depth + 1)


def task_infos(store: WorkflowStore, record: RunRecord, status: WorkflowStatus) -> list[TaskInfo]:
    """Every task of a workflow, upstream first, each continuation's tasks right under their parent.

    Lists the checkpoints, attempt and error records once and reads only the keys that exist.
    When the specs cannot be loaded here (their functions do not import), every task that left
    something in storage is listed, named ``?``.

    Args:
        store: the workflow store.
        record: the workflow's run record.
        status: its effective status.
    """
    workflow_id = record.workflow_id
    observer = Observer(store, record, status, listed=True)
    batches = read_batches(store, workflow_id)
    infos: list[TaskInfo] = []
    for task in placed_tasks(batches, observer.known_ids):
        view = observer.observe(task.task_id, task.options, task.task_id in batches)
        infos.append(
            task_info(
                workflow_id, task.task_id, task.name, view, task.options, task.parent, task.depth
            )
        )
    return infos


def task_rows(
    store: WorkflowStore,
    workflow_id: str,
    *,
    record: RunRecord | None = None,
    status: WorkflowStatus | None = None,
    active: bool | None = None,
    successful: bool | None = None,
) -> list[dict[str, Any]]:
    """One dict per task (:meth:`TaskInfo.to_row`), in the order of :func:`task_infos`.

    Each row: ``task_id``, ``name``, ``status`` (a :class:`ObservedTaskStatus` value:
    PENDING, RUNNING, RETRYING, CONTINUED, SUCCESSFUL, FAILED, CANCELED, SKIPPED,
    NOT_CHECKPOINTED), ``attempts`` (lost ones included), ``start_time``, ``end_time`` and
    ``duration`` (of the latest attempt: the successful one, or for a task that returned a
    continuation, its own run), ``error`` (summary of the latest failure, or of a lost
    attempt), ``lost``, ``last_attempt`` (the attempt record: number, state, host, pid, times),
    ``parent`` (the task whose continuation it belongs to) and ``depth``.

    Args:
        store: the workflow store.
        workflow_id: the workflow.
        record: its run record, if the caller read it (else read here).
        status: its effective status, if the caller knows it (else derived here).
        active: ignored (the status is read from storage); kept for earlier callers.
        successful: ignored, likewise.

    Raises:
        WorkflowNotFoundError: no such workflow.
    """
    del active, successful
    if record is None:
        record = store.read_run(workflow_id)
        if record is None:
            raise WorkflowNotFoundError(
                f"No such workflow_id {workflow_id!r}", workflow_id=workflow_id
            )
    if status is None:
        from durableflow.runtime.status import effective_status  # status.py imports this module

        status = effective_status(store, record)
    return [info.to_row() for info in task_infos(store, record, status)]
