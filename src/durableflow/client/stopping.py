"""Stopping and removing workflows on a Client: cancel and delete."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from durableflow.errors import WorkflowCancellationError, WorkflowStillActiveError
from durableflow.model.records import RunRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.runtime.engine import WorkflowRun
from durableflow.runtime.lease import LeaseKeeper
from durableflow.storage.store import WorkflowStore

__all__ = ["StoppingMixin"]

log = logging.getLogger("durableflow")


class StoppingMixin:
    """The cancel and delete calls of :class:`~durableflow.client.Client`."""

    store: WorkflowStore
    leases: LeaseKeeper
    _lock: threading.Lock
    _active: dict[str, tuple[WorkflowRun, Future[Any]]]
    _queue: deque[tuple[WorkflowRun, Future[Any]]]
    _record: Callable[[str], RunRecord]
    _effective_status: Callable[[RunRecord], WorkflowStatus]
    _unowned: Callable[[str], bool]
    get_status: Callable[[str], WorkflowStatus]

    def cancel(self, workflow_id: str, timeout: float = 30.0) -> None:
        """Cancel a workflow: no new task starts; its status becomes CANCELED.

        A finished (SUCCESSFUL) or already CANCELED workflow is left as it is. A workflow run by
        another process is asked through storage; this waits up to ``timeout`` seconds for it.
        """
        record = self._record(workflow_id)
        with self._lock:
            active = self._active.get(workflow_id)
            if active is not None and active in self._queue:
                self._queue.remove(active)
                queued = active
            else:
                queued = None
        if queued is not None:
            self._cancel_stopped(workflow_id)
            queued[1].set_exception(
                WorkflowCancellationError(
                    f"workflow {workflow_id!r} was canceled", workflow_id=workflow_id
                )
            )
            with self._lock:
                self._active.pop(workflow_id, None)
            return
        if active is not None:
            active[0].request_cancel()
            try:
                active[1].exception(timeout)
            except TimeoutError:
                log.warning(
                    "workflow %s did not stop within %s s of its cancel", workflow_id, timeout
                )
            return
        status = self._effective_status(record)
        if status.is_terminal:
            return
        if status in ACTIVE and not self._unowned(workflow_id):
            self.store.request_cancel(workflow_id)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.get_status(workflow_id) not in ACTIVE:
                    break
                time.sleep(0.05)
            if self.get_status(workflow_id) is WorkflowStatus.RESUMABLE:
                self._cancel_stopped(workflow_id)  # its runner died before it saw the request
            return
        self._cancel_stopped(workflow_id)

    def _cancel_stopped(self, workflow_id: str) -> None:
        """Cancel a workflow nobody runs: claim it so no resume races us, then write CANCELED."""
        self.leases.claim(workflow_id, lambda: None)
        try:
            record = self._record(workflow_id)
            self.store.request_cancel(workflow_id)
            now = time.time()
            self.store.set_status(
                record.replace(status=WorkflowStatus.CANCELED, updated_at=now, end_time=now),
                record.status,
            )
        finally:
            self.leases.release(workflow_id)

    def delete(self, workflow_id: str) -> None:
        """Remove everything stored for a workflow; the id may then be reused.

        Raises:
            WorkflowStillActiveError: it is RUNNING or PENDING.
        """
        record = self._record(workflow_id)
        status = self._effective_status(record)
        if status in ACTIVE:
            raise WorkflowStillActiveError(
                f"workflow {workflow_id!r} is {status.value}; cancel it before deleting",
                workflow_id=workflow_id,
            )
        self.leases.claim(workflow_id, lambda: None)
        try:
            self.store.delete_workflow(workflow_id, record.status)
        finally:
            self.leases.release(workflow_id)
