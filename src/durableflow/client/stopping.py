"""Stopping and removing workflows: the Client's cancel and delete, with their protocols.

:class:`Stopping` holds what they need (the store, the leases, the Client's run queue) and is
wired by :class:`~durableflow.client.Client`, which forwards its ``cancel`` and ``delete`` here.
"""

from __future__ import annotations

import logging
import time

from durableflow.errors import WorkflowCancellationError, WorkflowStillActiveError
from durableflow.model.ids import validate_workflow_id
from durableflow.model.records import RunRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.runtime.lease import LeaseKeeper
from durableflow.runtime.run_queue import RunQueue
from durableflow.runtime.starting import require_record
from durableflow.runtime.status import effective_status
from durableflow.storage.store import WorkflowStore

__all__ = ["Stopping"]

log = logging.getLogger("durableflow")


class Stopping:
    """Cancel and delete, over a Client's store, leases and run queue.

    Args:
        store: the workflow store.
        leases: the Client's lease keeper (cancel and delete claim the workflow's lease).
        runs: the Client's run queue (a workflow queued or running here is stopped here).
    """

    def __init__(self, store: WorkflowStore, leases: LeaseKeeper, runs: RunQueue) -> None:
        self.store = store
        self.leases = leases
        self._runs = runs

    def _record(self, workflow_id: str) -> RunRecord:
        return require_record(self.store, validate_workflow_id(workflow_id))

    def _status(self, workflow_id: str) -> WorkflowStatus:
        return effective_status(self.store, self._record(workflow_id))

    def cancel(self, workflow_id: str, timeout: float = 30.0, *, wait: bool = True) -> None:
        """Cancel a workflow: no new task starts; its status becomes CANCELED.

        A finished (SUCCESSFUL) or already CANCELED workflow is left as it is. A workflow run by
        another process is asked through storage. ``wait`` (the default): return once nothing of
        the workflow runs any more (its running attempts stopped: killed on the process pool and
        Ray, cooperatively on threads), waiting up to ``timeout`` seconds; ``wait=False``: return
        once the cancel is requested.
        """
        record = self._record(workflow_id)
        queued = self._runs.take_queued(workflow_id)
        if queued is not None:
            self.leases.release(workflow_id)  # the queued run's claim, taken at admission
            self._cancel_stopped(workflow_id)
            queued[1].set_exception(
                WorkflowCancellationError(
                    f"workflow {workflow_id!r} was canceled", workflow_id=workflow_id
                )
            )
            return
        active = self._runs.active(workflow_id)
        if active is not None:
            active[0].request_cancel()
            if not wait:
                return
            try:
                active[1].exception(timeout)
            except TimeoutError:
                log.warning(
                    "workflow %s did not stop within %s s of its cancel", workflow_id, timeout
                )
            return
        status = effective_status(self.store, record)
        if status.is_terminal:
            return
        if status in ACTIVE and self.store.read_lease(workflow_id)[1] is not None:  # owned
            self.store.request_cancel(workflow_id)
            if not wait:
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._status(workflow_id) not in ACTIVE:
                    break
                time.sleep(0.05)
            if self._status(workflow_id) is WorkflowStatus.RESUMABLE:
                self._cancel_stopped(workflow_id)  # its runner died before it saw the request
            return
        self._cancel_stopped(workflow_id)

    def _cancel_stopped(self, workflow_id: str) -> None:
        """Cancel a workflow nobody runs.

        1. claim its lease, so no resume races us (WorkflowStillActiveError if one runs it);
        2. re-read the run record under the lease (it may have finished meanwhile: then it is
           left as it is);
        3. store the cancel request (a runner that starts later sees it);
        4. write CANCELED as a compare-and-swap on the record read in step 2;
        5. release the lease.
        """
        self.leases.claim(workflow_id, lambda: None)  # 1
        try:
            record, raw = self.store.read_run_raw(workflow_id)  # 2
            if record is None or record.status.is_terminal:
                return
            self.store.request_cancel(workflow_id)  # 3
            now = time.time()
            self.store.set_status(  # 4
                record.replace(status=WorkflowStatus.CANCELED, updated_at=now, end_time=now),
                record.status,
                expected=raw,
            )
        finally:
            self.leases.release(workflow_id)  # 5

    def _delete_leftovers(self, workflow_id: str) -> None:
        """Delete an id with no run record.

        Finishes an interrupted delete, or clears what a first write killed before its run
        record left behind; else the id is unknown (WorkflowNotFoundError).
        """
        self.leases.claim(workflow_id, lambda: None)
        try:
            if self.store.read_run(workflow_id) is None:
                cleared = self.store.clear_leftovers(workflow_id)
            else:
                cleared = False  # created meanwhile: decide again below
        finally:
            self.leases.release(workflow_id)
        if not cleared and self.store.read_run(workflow_id) is None:
            self._record(workflow_id)  # raises WorkflowNotFoundError
        elif not cleared:
            self.delete(workflow_id)

    def delete(self, workflow_id: str) -> None:
        """Remove everything stored for a workflow; the id may then be reused.

        Protocol (claim first, then read, then delete: a runner cannot finish the workflow
        between our read and our delete and leave an index entry behind):

        1. read the run record: no record and no delete in progress -> WorkflowNotFoundError;
           an active status -> WorkflowStillActiveError (cheap answers before any write);
        2. claim the lease (WorkflowStillActiveError if a live runner holds it);
        3. re-read the record under the lease; PENDING (waiting for a worker) is refused;
        4. the store's delete protocol (the record marked ``deleting`` by compare-and-swap on
           the bytes read in step 3 — the commit point, fenced —, tombstone, index entries, run
           record, contents, tombstone: :meth:`WorkflowStore.delete_workflow`), with this
           process's ownership checked before each step;
        5. release the lease, the last key of the workflow.

        A delete killed after step 4 began is finished by the next delete, run or resume of
        the id (the tombstone says so), and by ``durableflow prune``.

        Raises:
            WorkflowNotFoundError: unknown id.
            WorkflowStillActiveError: it is RUNNING or PENDING.
        """
        record = self.store.read_run(validate_workflow_id(workflow_id))  # 1
        if record is None:
            self._delete_leftovers(workflow_id)
            return
        if record is not None:
            status = effective_status(self.store, record)
            if status in ACTIVE:
                raise WorkflowStillActiveError(
                    f"workflow {workflow_id!r} is {status.value}; cancel it before deleting",
                    workflow_id=workflow_id,
                )
        self.leases.claim(workflow_id, lambda: None)  # 2
        try:
            fresh, raw = self.store.read_run_raw(workflow_id)  # 3
            moved = fresh is not None and (
                record is None
                or (fresh.status, fresh.updated_at) != (record.status, record.updated_at)
            )
            if moved and fresh is not None and fresh.status in ACTIVE:
                raise WorkflowStillActiveError(
                    f"workflow {workflow_id!r} is {fresh.status.value}; cancel it before deleting",
                    workflow_id=workflow_id,
                )
            self.store.delete_workflow(  # 4
                workflow_id, raw, fence=lambda: self.leases.check(workflow_id)
            )
        finally:
            self.leases.release(workflow_id)  # 5
