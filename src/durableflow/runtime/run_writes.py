"""What one run writes besides checkpoints: statuses, task errors, caught outputs, forwards.

Part of :class:`~durableflow.runtime.engine.WorkflowRun` (a mixin), split out of the engine so
that the loop reads on its own. Every write here is fenced: the runner checks its lease deadline
first (:meth:`~durableflow.runtime.lease.LeaseKeeper.check`), and status writes are also
compare-and-swaps on the record it last wrote (:class:`~durableflow.runtime.fenced.FencedRecord`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from durableflow.core.machine import CompleteParent, FailWorkflow, RecordTaskError
from durableflow.errors import (
    SerializationError,
    StorageError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowStillActiveError,
)
from durableflow.model.records import ErrorInfo, RunRecord, TaskErrorRecord
from durableflow.model.status import WorkflowStatus

if TYPE_CHECKING:
    from durableflow.runtime.fenced import FencedRecord
    from durableflow.storage.store import WorkflowStore

__all__ = ["RunWrites"]

log = logging.getLogger("durableflow.engine")
task_log = logging.getLogger("durableflow.task")


class RunWrites:
    """The fenced writes of one run (mixed into ``WorkflowRun``)."""

    store: WorkflowStore
    workflow_id: str
    fenced: FencedRecord
    _values: dict[str, Any]
    _refs: dict[str, Any]
    _error_infos: dict[str, ErrorInfo]
    _unsynced: bool
    """Checkpoints read or written since the last sync (an ordered storage only)."""

    if TYPE_CHECKING:  # provided by WorkflowRun and RunStops

        def _fence(self) -> None: ...

        def _drop_running(self, error: WorkflowError | None = None) -> None: ...

    @property
    def record(self) -> RunRecord:
        """The run record as this runner last read or wrote it."""
        return self.fenced.record

    def leave_resumable(self) -> None:
        """A queued run that will not start here (shutdown): store it RESUMABLE, fenced."""
        self._set_status(WorkflowStatus.RESUMABLE)

    def _sync_checkpoints(self) -> None:
        """Before a task starts: make the checkpoints before it durable (ordered storage).

        Attempts write checkpoints without a sync on an ordered storage (SQLite); one sync here
        covers every checkpoint finished so far (this process's and workers'), so no task runs
        on an input that a power cut could take back. Status writes sync by themselves.
        """
        if self._unsynced:
            self.store.storage.sync()
            self._unsynced = False

    def _set_status(self, status: WorkflowStatus, **changes: Any) -> None:
        self.fenced.set(status, **changes)
        if status is WorkflowStatus.SUCCESSFUL:
            log.info("workflow %s SUCCESSFUL", self.workflow_id)

    def _record_error(self, command: RecordTaskError) -> None:
        # The worker's description keeps the traceback, which does not cross processes.
        info = self._error_infos.pop(command.task_id, None) or ErrorInfo.from_exception(
            command.error, command.task_id
        )
        task_log.info(
            "workflow %s task %s attempt %d failed: %s",
            self.workflow_id,
            command.task_id,
            command.attempts,
            info.summary(),
        )
        self._fence()
        self.store.write_task_error(
            self.workflow_id,
            TaskErrorRecord(command.task_id, command.attempts, info, time.time(), command.final),
        )

    def _write_output(self, task_id: str, value: Any) -> None:
        self._fence()
        try:
            self.store.write_output(self.workflow_id, task_id, value, {"end": time.time()})
        except SerializationError:
            # An exception that cannot be pickled is stored as its description.
            error = value[1]
            value = (
                value[0],
                WorkflowError(f"{type(error).__name__}: {error}", workflow_id=self.workflow_id),
            )
            self.store.write_output(self.workflow_id, task_id, value, {"end": time.time()})
        self._values[task_id] = value

    def _complete_parent(self, command: CompleteParent) -> None:
        if command.catch:
            self._write_output(command.task_id, (self._value_of(command.child), None))
            return
        self._fence()
        self.store.write_forward(
            self.workflow_id, command.task_id, command.child, {"end": time.time()}
        )
        if command.child in self._values:
            self._values[command.task_id] = self._values[command.child]
        if command.child in self._refs:
            self._refs[command.task_id] = self._refs[command.child]

    def _value_of(self, task_id: str) -> Any:
        if task_id in self._values:
            return self._values[task_id]
        return self.store.read_output(self.workflow_id, task_id)

    def _fail(self, command: FailWorkflow) -> None:
        info = ErrorInfo.from_exception(command.error, command.task_id)
        status = WorkflowStatus.RESUMABLE if command.system else WorkflowStatus.FAILED
        log.warning(
            "workflow %s %s: task %s: %s",
            self.workflow_id,
            status.value,
            command.task_id,
            info.summary(),
        )
        self._set_status(status, end_time=time.time(), error=info)
        self._drop_running()
        err = WorkflowExecutionError(
            f"workflow {self.workflow_id!r} {status.value}: task {command.task_id!r} raised "
            f"{info.summary()}",
            workflow_id=self.workflow_id,
            task_id=command.task_id,
        )
        raise err from command.error

    def _abandon(self, err: StorageError) -> None:
        """After a storage failure: leave the workflow RESUMABLE if the storage still answers."""
        self._drop_running()
        try:
            self._set_status(WorkflowStatus.RESUMABLE, error=ErrorInfo.from_exception(err))
        except (StorageError, WorkflowStillActiveError):
            log.warning(
                "workflow %s: storage failed (%s); its lease expires and it reads RESUMABLE",
                self.workflow_id,
                err,
            )
