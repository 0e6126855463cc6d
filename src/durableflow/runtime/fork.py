"""Fork: a new workflow that reuses a stored one's checkpoints up to a chosen task.

The fork gets COPIES of the source's checkpoints (re-sealed for their new keys when a signing
key is set: a signature binds the key, see :func:`~durableflow.runtime.restart.copy_value`), so
deleting or restarting the source never breaks it. What is not copied is what a restart from
``from_task`` would set aside (:func:`~durableflow.runtime.restart.affected`): that task and
everything downstream of it. With ``dag`` the fork runs that DAG instead of the source's
submitted one (the fixed code): checkpoints are copied for the tasks of ``dag`` whose ids the
source has, so the kept tasks must keep their ids. The fork is RESUMABLE and nothing runs:
``resume(new)`` (or a worker) runs it. Its run record says where it came from:
``extra["forked_from"] = {"workflow_id": source, "from_task": from_task}``.

Protocol of :func:`fork` (each numbered step is a kill-test point of
``tests/integration/test_fork.py``):

1. read the source's run record (none -> WorkflowNotFoundError) and the new id's (one there ->
   WorkflowExistsError);
2. claim the source's lease (WorkflowStillActiveError while it runs: cancel it first, or wait),
   finish an interrupted restart of it, and re-read its run record;
3. claim the new id's lease; check again that it has no run record; clear what an earlier,
   interrupted fork (or delete) left under it;
4. store the fork's specs: ``dag`` (or the source's root batch) and the source's continuation
   batches that are kept; sync;
5. copy the kept checkpoints; sync;
6. write the fork's run record, RESUMABLE, create-only (path C of the status index): the fork
   exists from here on, whole;
7. release both leases.

A kill before step 6 leaves keys under the new id with no run record: readers do not see a
workflow there, and the next fork, run or delete of the id clears them
(:meth:`~durableflow.storage.status_index.StatusIndex.clear_leftovers`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from durableflow.errors import (
    WorkflowExistsError,
    WorkflowNotFoundError,
    WorkflowStillActiveError,
)
from durableflow.model.dag import FlatDAG
from durableflow.model.ids import validate_workflow_id
from durableflow.model.records import RunRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.runtime.lease import LeaseKeeper
from durableflow.runtime.restart import affected, copy_value, finish_restart, held_status
from durableflow.runtime.starting import dag_digest
from durableflow.storage import layout
from durableflow.storage.store import WorkflowStore

__all__ = ["fork", "forked_from"]


def _source(store: WorkflowStore, workflow_id: str, *, held: bool = False) -> RunRecord:
    record = store.read_run(workflow_id)
    if record is None or store.is_deleting(workflow_id):
        raise WorkflowNotFoundError(
            f"No such workflow_id {workflow_id!r}: no workflow {workflow_id!r} in "
            f"{store.storage.url}",
            workflow_id=workflow_id,
        )
    status = held_status(store, record, held)
    if status in ACTIVE:
        raise WorkflowStillActiveError(
            f"workflow {workflow_id!r} is {status.value}: fork it once it stopped",
            workflow_id=workflow_id,
        )
    return record


def _no_workflow(store: WorkflowStore, workflow_id: str) -> None:
    if store.read_run(workflow_id) is not None:
        raise WorkflowExistsError(
            f"workflow {workflow_id!r} exists: fork into a new id (or delete it first)",
            workflow_id=workflow_id,
        )


def fork(
    store: WorkflowStore,
    leases: LeaseKeeper,
    workflow_id: str,
    new_workflow_id: str,
    *,
    from_task: str | None = None,
    dag: FlatDAG | None = None,
    clock: Callable[[], float] = time.time,
) -> str:
    """Create ``new_workflow_id``, RESUMABLE, from ``workflow_id``'s checkpoints; run nothing.

    Args:
        store: the workflow store.
        leases: the caller's lease keeper.
        workflow_id: the source.
        new_workflow_id: the fork's id (must be free).
        from_task: the first task to run again (with everything downstream of it); None: every
            checkpoint is copied.
        dag: the DAG the fork runs (its tasks' ids match the source's for the kept tasks);
            None: the source's.
        clock: the fork's creation time.

    Returns:
        ``new_workflow_id``.

    Raises:
        WorkflowNotFoundError: no source, or no task ``from_task`` in it.
        WorkflowExistsError: ``new_workflow_id`` is taken.
        WorkflowStillActiveError: the source is RUNNING or PENDING.
    """
    src, new = validate_workflow_id(workflow_id), validate_workflow_id(new_workflow_id)
    if src == new:
        raise WorkflowExistsError(f"cannot fork {src!r} into itself", workflow_id=src)
    _source(store, src)  # 1
    _no_workflow(store, new)
    leases.claim(src, lambda: None)  # 2
    try:
        finish_restart(store, src)
        record = _source(store, src, held=True)
        leases.claim(new, lambda: None)  # 3
        try:
            _no_workflow(store, new)
            store.clear_leftovers(new)
            _copy(store, record, new, from_task, dag)  # 4, 5
            now = clock()
            root = dag.root if dag is not None else record.root_task_id
            extra = {k: v for k, v in record.extra.items() if k not in ("restarts", "dag_digest")}
            extra["forked_from"] = {"workflow_id": src, "from_task": from_task}
            if dag is not None:
                extra["dag_digest"] = dag_digest(dag)
            elif "dag_digest" in record.extra:
                extra["dag_digest"] = record.extra["dag_digest"]
            forked = RunRecord(
                new,
                WorkflowStatus.RESUMABLE,
                root,
                now,
                now,
                user_metadata=dict(record.user_metadata),
                runtime_env=dict(record.runtime_env),
                extra=extra,
            )
            store.set_status(forked, None, expected=None)  # 6
        finally:
            leases.release(new)  # 7
    finally:
        leases.release(src)
    return new


def _copy(
    store: WorkflowStore,
    record: RunRecord,
    new: str,
    from_task: str | None,
    dag: FlatDAG | None,
) -> None:
    """Steps 4 and 5: the kept specs, then the kept checkpoints."""
    src = record.workflow_id
    batches = store.read_specs(src)
    root = {s.task_id for s in (dag or batches[layout.ROOT_BATCH]).specs}
    rerun: set[str] = set()  # tasks that run again: neither output nor continuation copied
    forwarded: set[str] = set()  # continued tasks whose continuation reruns: output not copied
    if from_task is not None:
        in_source = any(from_task == s.task_id for f in batches.values() for s in f.specs)
        if in_source or from_task not in root:  # an unknown task raises here
            rerun, forwarded = affected(batches, [from_task], src)
        if dag is not None and from_task in root:
            new_rerun, new_forwarded = affected({layout.ROOT_BATCH: dag}, [from_task], new)
            rerun |= new_rerun
            forwarded |= new_forwarded
    # the continuation batches the fork still needs: of kept tasks it has, transitively
    ids, kept_batches = set(root), []
    changed = True
    while changed:
        changed = False
        for batch, flat in batches.items():
            if batch in ids and batch not in rerun and batch not in kept_batches:
                kept_batches.append(batch)
                ids |= {s.task_id for s in flat.specs}
                changed = True
    storage = store.storage
    with storage.batch():  # 4
        if dag is not None:
            store.write_specs(new, layout.ROOT_BATCH, dag)
            sources = kept_batches
        else:
            sources = [layout.ROOT_BATCH, *kept_batches]
        for batch in sources:
            _copy_key(store, layout.spec_key(src, batch), layout.spec_key(new, batch))
    with storage.batch():  # 5
        for task_id in sorted(store.list_done(src) & (ids - rerun - forwarded)):
            _copy_key(store, layout.output_key(src, task_id), layout.output_key(new, task_id))


def _copy_key(store: WorkflowStore, src: str, dst: str) -> None:
    raw = store.storage.get(src)
    if raw is not None:
        store.storage.put(dst, copy_value(store.serializer, raw, src, dst))


def forked_from(store: WorkflowStore, workflow_id: str) -> dict[str, str | None] | None:
    """``{"workflow_id": …, "from_task": …}`` of a fork, None for a workflow that is not one."""
    record = store.read_run(workflow_id)
    if record is None:
        return None
    value = record.extra.get("forked_from")
    return dict(value) if isinstance(value, dict) else None
