"""Starting and resuming a workflow: the claim protocols, as numbered steps.

:class:`Launcher` owns what every start and resume needs (store, executor, leases, the
Client's :class:`RunQueue`) and hands a claimed, stored run to the queue. The Client calls it;
the engine (:class:`WorkflowRun`) takes over from there and releases the lease at the end.
Detached starts (a PENDING workflow for a worker) are :mod:`durableflow.runtime.submission`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import Future
from typing import Any

from durableflow.errors import (
    ResumeNotFoundError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowStillActiveError,
)
from durableflow.executors.base import Executor
from durableflow.model.dag import FlatDAG
from durableflow.model.records import RunRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.runtime.engine import WorkflowRun
from durableflow.runtime.environment import capture_environment, check_environment
from durableflow.runtime.lease import LeaseKeeper
from durableflow.runtime.restart import finish_restart
from durableflow.runtime.run_queue import RunFuture, RunQueue
from durableflow.runtime.status import effective_status
from durableflow.storage.store import WorkflowStore

__all__ = ["Launcher", "check_timeout", "dag_digest", "new_record", "require_record"]

log = logging.getLogger("durableflow")


def require_record(
    store: WorkflowStore,
    workflow_id: str,
    error: type[WorkflowNotFoundError] = WorkflowNotFoundError,
) -> RunRecord:
    """The run record of ``workflow_id``.

    Raises:
        WorkflowNotFoundError: no such workflow in this storage (``error``, a subclass, on
            resume), with Ray's words first.
    """
    record = store.read_run(workflow_id)
    if record is None:
        raise error(
            f"No such workflow_id {workflow_id!r}: no workflow {workflow_id!r} in "
            f"{store.storage.url}",
            workflow_id=workflow_id,
        )
    return record


def new_record(
    store: WorkflowStore,
    workflow_id: str,
    flat: FlatDAG,
    metadata: dict[str, Any],
    *,
    timeout_s: float | None = None,
) -> RunRecord:
    """The run record of a workflow about to be stored, with its runtime environment.

    ``timeout_s`` (the workflow's time limit, each run from its start) is kept in its
    ``extra``, so that a resume, here or by a worker, gives it a fresh deadline.

    Raises:
        ValueError: ``timeout_s`` is not a number of seconds > 0.
    """
    now = time.time()
    extra: dict[str, Any] = {"dag_digest": dag_digest(flat)}
    if timeout_s is not None:
        extra["timeout_s"] = check_timeout(timeout_s, f"workflow {workflow_id!r}")
    return RunRecord(
        workflow_id,
        WorkflowStatus.PENDING,
        flat.root,
        now,
        now,
        user_metadata=metadata,
        runtime_env=capture_environment(flat, store),
        extra=extra,
    )


def check_timeout(timeout_s: Any, what: str) -> float:
    """``timeout_s`` as a float, if it is a number of seconds > 0.

    Raises:
        ValueError: it is not (naming ``what`` it was given for).
    """
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, (int, float))
        or not 0 < timeout_s < float("inf")
    ):
        raise ValueError(f"{what}: timeout_s must be a number of seconds > 0, got {timeout_s!r}")
    return float(timeout_s)


def dag_digest(flat: FlatDAG) -> str:
    """A fingerprint of a DAG's shape: task ids, names, edges and literal arguments."""
    parts = []
    for spec in flat.specs:
        literal = [repr(a)[:200] for a in spec.args if not hasattr(a, "task_id")]
        literal += [f"{k}={v!r}"[:200] for k, v in sorted(spec.kwargs.items())]
        parts.append([spec.task_id, spec.name, list(spec.upstream), literal])
    encoded = json.dumps([flat.root, parts], separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


_WARNED_OTHER_DAG: set[str] = set()


def _warn_if_other_dag(record: RunRecord, flat: FlatDAG) -> None:
    """Reusing an id with another DAG returns the stored workflow (Ray's rule): say so once."""
    stored = record.extra.get("dag_digest")
    if not stored or stored == dag_digest(flat) or record.workflow_id in _WARNED_OTHER_DAG:
        return
    _WARNED_OTHER_DAG.add(record.workflow_id)
    log.warning(
        "workflow %r is already stored with a different DAG: run() resumes the stored workflow "
        "and returns its output; use a new workflow_id (or delete %r) to run the new DAG",
        record.workflow_id,
        record.workflow_id,
    )


class Launcher:
    """Claims workflows and hands their runs to a :class:`RunQueue`.

    Args:
        store: the workflow store.
        executor: where task attempts run.
        leases: the lease keeper of the Client.
        runs: the Client's run queue.
        signing_key: passed to workers that reopen the storage.
        cancel_poll: seconds between a runner's checks for cancel requests in storage.
        env_policy: "ignore", "warn" or "error" when a resume's environment differs.
    """

    def __init__(
        self,
        store: WorkflowStore,
        executor: Executor,
        leases: LeaseKeeper,
        runs: RunQueue,
        *,
        signing_key: bytes | None,
        cancel_poll: float,
        env_policy: str,
    ) -> None:
        self.store = store
        self.executor = executor
        self.leases = leases
        self.runs = runs
        self.signing_key = signing_key
        self.cancel_poll = cancel_poll
        self.env_policy = env_policy
        self.stop_grace = 30.0
        """Seconds a cancel (or a workflow timeout) waits for running attempts to stop."""

    def new_run(self, record: RunRecord, dag: FlatDAG | None) -> WorkflowRun:
        """A run of ``record`` on this Launcher's store, executor and leases."""
        return WorkflowRun(
            self.store,
            self.executor,
            self.leases,
            record,
            signing_key=self.signing_key,
            cancel_poll=self.cancel_poll,
            dag=dag,
            stop_grace=self.stop_grace,
        )

    def start(
        self,
        workflow_id: str,
        flat: FlatDAG,
        metadata: dict[str, Any],
        *,
        inline: bool,
        timeout_s: float | None = None,
    ) -> Future[Any]:
        """Start a new workflow, or resume the stored one of that id.

        ``timeout_s``: the workflow's time limit (stored with it; each run, a resume too, gets
        it afresh from its own start). Past it the workflow is FAILED with a
        ``WorkflowTimeoutError`` (:mod:`durableflow.runtime.cancellation`).

        Protocol (a crash after any step leaves a state the next run of the id handles):

        1. read the run record: an existing workflow is resumed (:meth:`resume`) instead;
        2. encode the specs (an unpicklable input fails here, with nothing written) and take a
           running slot of the Client or a place in its queue;
        3. claim the workflow's lease (WorkflowStillActiveError if a live runner holds it);
        4. re-read the run record under the lease: if another caller stored the workflow since
           step 1 (and maybe finished it), release the lease and resume it instead;
        5. clear leftovers under the id (an interrupted delete's, or an interrupted first
           write's): a new run never adopts an old checkpoint;
        6. store specs, index entry and run record (path A of the status index; specs and
           record create-only: the fence of a new workflow) as RUNNING, or PENDING when queued;
        7. run it (here or in a thread); the engine releases the lease at the end.
        """
        store = self.store
        record = store.read_run(workflow_id)  # 1
        if record is not None:
            _warn_if_other_dag(record, flat)
            return self.resume(workflow_id, inline=inline, record=record)
        if flat.outside:  # WorkflowRefs to tasks a new workflow cannot have
            raise ValueError(
                f"workflow {workflow_id!r} is new, but its DAG reads the stored output of "
                f"task(s) {', '.join(map(repr, flat.outside))} through WorkflowRef"
            )
        data = store.encode_specs(workflow_id, flat)  # 2
        record = new_record(store, workflow_id, flat, metadata, timeout_s=timeout_s)
        run = self.new_run(record, flat)
        run.fenced.adopt(None, None)
        queued = self.runs.admit(workflow_id)
        claimed = False
        try:
            self.leases.claim(workflow_id, run.lease_lost)  # 3
            claimed = True
            if store.read_run(workflow_id) is not None:  # 4
                self.leases.release(workflow_id)
                claimed = False
                self.runs.release(queued)
                return self.resume(workflow_id, inline=inline)
            if store.clear_leftovers(workflow_id):  # 5
                log.warning("cleared what an interrupted delete left under %s", workflow_id)
            # 6: specs and record stored before this returns (the record last): the id is known
            # to every caller.
            run.fenced.mark(
                WorkflowStatus.PENDING if queued else WorkflowStatus.RUNNING, specs=data
            )
        except BaseException:
            if claimed:
                self.leases.release(workflow_id)
            self.runs.release(queued)
            raise
        return self.runs.launch(run, queued, inline)  # 7

    def resume(
        self,
        workflow_id: str,
        *,
        inline: bool,
        record: RunRecord | None = None,
        wait: bool = True,
    ) -> Future[Any]:
        """Resume a stored workflow (or answer at once for a finished one).

        Protocol:

        1. read the run record and its effective status: SUCCESSFUL returns the output,
           CANCELED and active (a live runner) raise;
        2. check the recorded environment (the env policy);
        3. take a slot or a queue place, and claim the lease;
        4. finish an interrupted restart (its stored plan), then re-read the record under the
           lease: a delete in progress (tombstone) is finished and the id reported unknown; a
           record that changed since step 1 (another runner moved it on) means release and
           decide again from step 1;
        5. store RUNNING (or PENDING) as a compare-and-swap on the record read in step 4, with
           a new fencing token (the record's epoch + 1);
        6. run it.
        """
        store = self.store
        record = record or require_record(store, workflow_id, ResumeNotFoundError)  # 1
        status = effective_status(store, record)
        if status is WorkflowStatus.SUCCESSFUL:
            done: Future[Any] = RunFuture()
            done.set_result(store.read_output(workflow_id, record.root_task_id))
            return done
        if status is WorkflowStatus.CANCELED:
            raise WorkflowNotResumableError(
                f"workflow {workflow_id!r} was canceled and cannot be resumed",
                workflow_id=workflow_id,
            )
        if status in ACTIVE and not (
            status is WorkflowStatus.PENDING and store.read_lease(workflow_id)[1] is None
        ):
            raise WorkflowStillActiveError(
                f"workflow {workflow_id!r} is {status.value} now", workflow_id=workflow_id
            )
        check_environment(store, record, self.env_policy)  # 2
        run = self.new_run(record, None)
        queued = self.runs.admit(workflow_id)  # 3
        claimed = deleting = stale = False
        try:
            self.leases.claim(workflow_id, run.lease_lost, wait=wait)
            claimed = True
            if finish_restart(store, workflow_id):  # a restart killed midway: its plan first
                log.warning("finished an interrupted restart of %s", workflow_id)
            fresh, raw = store.read_run_raw(workflow_id)  # 4
            deleting = store.is_deleting(workflow_id, fresh)
            if deleting:
                store.delete_workflow(workflow_id)
            stale = fresh is None or (fresh.status, fresh.updated_at) != (
                record.status,
                record.updated_at,
            )
            if not stale and not deleting and fresh is not None:
                run.fenced.adopt(fresh, raw)
                run.fenced.mark(WorkflowStatus.PENDING if queued else WorkflowStatus.RUNNING)  # 5
        except BaseException:
            if claimed:
                self.leases.release(workflow_id)
            self.runs.release(queued)
            raise
        if deleting or stale:
            self.leases.release(workflow_id)
            self.runs.release(queued)
            if deleting:
                raise ResumeNotFoundError(
                    f"no workflow {workflow_id!r} in {store.storage.url} (it was being deleted)",
                    workflow_id=workflow_id,
                )
            # another runner moved it on between our read and our claim: decide again
            return self.resume(workflow_id, inline=inline, wait=wait)
        return self.runs.launch(run, queued, inline)  # 6
