"""Detached submission: store a workflow as PENDING for a worker, and return at once.

Protocol of :func:`submit_detached` (a crash after any step leaves a state the next
submission, or a worker, handles):

1. claim the workflow's lease (create-only; a dead owner's lease is taken over by
   compare-and-swap). A live owner means another process submits or runs this id now:
   WorkflowStillActiveError.
2. re-read the run record under the lease: if the workflow exists, release the lease and leave
   it as it is (this is what makes a schedule's tick run at most once).
3. clear leftovers under the id (an interrupted delete's): a new workflow adopts nothing.
4. write the task specs (create-only). A crash here leaves specs without a run record:
   invisible to every reader, and cleared by the next submission of the id (step 3).
5. write the run record as PENDING through the status index protocol, create-only (a rival
   that got here first, past its lease, makes this raise instead of overwriting): the commit
   point.
6. release the lease: a worker may now claim the workflow (PENDING with no lease).
"""

from __future__ import annotations

from durableflow.model.records import RunRecord
from durableflow.model.status import WorkflowStatus
from durableflow.runtime.lease import LeaseKeeper
from durableflow.storage.store import WorkflowStore

__all__ = ["submit_detached"]


def submit_detached(
    store: WorkflowStore, leases: LeaseKeeper, record: RunRecord, specs: bytes
) -> bool:
    """Store a new workflow as PENDING, unless its id is taken; True if this call stored it.

    Args:
        store: the workflow store.
        leases: the lease keeper to claim the id with.
        record: the run record to write (its status is forced to PENDING).
        specs: the root DAG's specs, from :meth:`WorkflowStore.encode_specs`.

    Raises:
        WorkflowStillActiveError: another process holds the id's lease right now.
    """
    workflow_id = record.workflow_id
    leases.claim(workflow_id, lambda: None)  # 1
    try:
        if store.read_run(workflow_id) is not None:  # 2
            return False
        store.clear_leftovers(workflow_id)  # 3
        store.set_status(  # 4, 5: specs and record, both create-only
            record.replace(status=WorkflowStatus.PENDING), None, specs=specs, expected=None
        )
        return True
    finally:
        leases.release(workflow_id)  # 6
