"""Read-only answers about stored workflows: effective status, listings, metadata.

Every answer comes from storage alone, so any process that reaches the storage gives the same
one. A RUNNING or PENDING record is checked against its lease: a workflow whose runner is gone
reads RESUMABLE (at once on the runner's host, after the lease expires elsewhere).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import threading
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from durableflow.errors import (
    SerializationError,
    WorkflowCancellationError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowIncompleteError,
    WorkflowNotFoundError,
)
from durableflow.model.dag import FlatDAG, TaskSpec
from durableflow.model.info import TaskInfo, WorkflowInfo, visible_end_time
from durableflow.model.records import RunRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.runtime.environment import expand_environment
from durableflow.runtime.inspection import Observer, task_info
from durableflow.runtime.lease import is_alive
from durableflow.storage.store import WorkflowStore

__all__ = [
    "collector_paused",
    "effective_status",
    "find_task_spec",
    "get_task_info",
    "index_pass",
    "list_statuses",
    "scan_index",
    "stopped_error",
    "task_metadata",
    "workflow_info",
    "workflow_metadata",
]


def effective_status(store: WorkflowStore, record: RunRecord) -> WorkflowStatus:
    """The status of a workflow, its run record checked against its lease."""
    if record.status not in ACTIVE:
        return record.status
    lease, raw = store.read_lease(record.workflow_id)
    if raw is None:
        # PENDING with no owner waits for a worker; RUNNING with no owner lost its runner.
        if record.status is WorkflowStatus.PENDING:
            return WorkflowStatus.PENDING
        return WorkflowStatus.RESUMABLE
    if lease is None or not is_alive(lease):
        return WorkflowStatus.RESUMABLE
    return record.status


def index_pass(
    store: WorkflowStore,
    wanted: frozenset[WorkflowStatus] | None,
    prefix: str | None,
) -> tuple[dict[WorkflowStatus, list[str]], dict[str, tuple[WorkflowStatus, RunRecord]]]:
    """The one pass over the status index: ids at rest by status, and the ids checked.

    Returns ``(at_rest, checked)``: for each inactive status asked for, the sorted ids of its
    entries (trusted), without the checked ones; and ``{id: (effective status, run record)}``
    for the ids with an active entry or a dirty marker whose run record exists (any status,
    filtered by the caller).
    """
    check = set(store.list_dirty())
    at_rest: dict[WorkflowStatus, list[str]] = {}
    for status in WorkflowStatus:
        if status in ACTIVE:
            check.update(store.list_index(status))
        elif wanted is None or status in wanted:
            at_rest[status] = store.list_index(status)
    if prefix:
        check = {w for w in check if w.startswith(prefix)}
        at_rest = {s: [w for w in ids if w.startswith(prefix)] for s, ids in at_rest.items()}
    if len(at_rest) > 1:
        # Two inactive entries of one workflow (a stale one left by an older version): its
        # run record decides. Each list holds unique names, so there is one iff the smaller
        # lists share an id, among themselves or with the largest: a set of the smaller ones
        # only (the largest, often nearly all of 100,000, is only looked up).
        lists = sorted(at_rest.values(), key=len)
        others = set().union(*lists[:-1])
        if len(others) != sum(map(len, lists[:-1])) or not others.isdisjoint(lists[-1]):
            counts = collections.Counter(itertools.chain.from_iterable(at_rest.values()))
            check.update(w for w, n in counts.items() if n > 1)
    checked: dict[str, tuple[WorkflowStatus, RunRecord]] = {}
    for workflow_id in check:
        record = store.read_run(workflow_id)
        if record is not None:  # None: a new workflow's first entry, or a deleted one
            checked[workflow_id] = (effective_status(store, record), record)
    if check:  # the run record decides for these, whatever inactive entry they also have
        at_rest = {s: [w for w in ids if w not in check] for s, ids in at_rest.items()}
    return at_rest, checked


def scan_index(
    store: WorkflowStore,
    wanted: frozenset[WorkflowStatus] | None,
    prefix: str | None = None,
) -> dict[str, tuple[WorkflowStatus, RunRecord | None]]:
    """One pass over the status index: ``{workflow_id: (status, run record if read)}``.

    Follows the readers' rule of the status index (:mod:`durableflow.storage.store`): the
    entries of the inactive statuses asked for are trusted (no read); a workflow with an active
    entry (RUNNING, PENDING) or a dirty marker, always listed, is read from its run record (and
    its lease, when the record says it is active). Costs one listing per status and one of the
    dirty markers, plus those reads.

    Args:
        store: the workflow store.
        wanted: the statuses to keep (None: all).
        prefix: keep only the ids that start with it (filtered before anything is read).
    """
    at_rest, checked = index_pass(store, wanted, prefix)
    found: dict[str, tuple[WorkflowStatus, RunRecord | None]] = {}
    for status, ids in at_rest.items():
        entry = (status, None)
        found.update(dict.fromkeys(ids, entry))
    for workflow_id, (status, record) in checked.items():
        if wanted is None or status in wanted:
            found[workflow_id] = (status, record)
    return found


def list_statuses(
    store: WorkflowStore, wanted: frozenset[WorkflowStatus] | None
) -> list[tuple[str, WorkflowStatus]]:
    """``[(workflow_id, status)]`` sorted by id, for the statuses ``wanted`` (None: all).

    One pass over the index (:func:`scan_index`'s): no run record is read for a workflow at
    rest. Built without an intermediate mapping: each status's ids come sorted from the
    storage, so sorting their concatenation merges a few sorted runs.
    """
    at_rest, checked = index_pass(store, wanted, prefix=None)
    rows: list[tuple[str, WorkflowStatus]] = []
    with collector_paused():
        for status, ids in at_rest.items():
            rows.extend(zip(ids, itertools.repeat(status)))
        rows.extend(
            (workflow_id, status)
            for workflow_id, (status, _) in checked.items()
            if wanted is None or status in wanted
        )
        rows.sort(key=itemgetter(0))  # ids are unique: the status never decides
    return rows


_PAUSE_LOCK = threading.Lock()
_pauses = 0
_paused_it = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a big listing's rows are built.

    100,000 new tuples that all survive set off full collections that walk the whole heap,
    the rows built so far included: a third of ``list_all`` at 100,000 workflows, and what
    made its cost per workflow grow with the store. The rows hold no cycles. Threads share the
    pause (a count); the collector is turned back on only if it was on when the first began.
    """
    global _pauses, _paused_it
    with _PAUSE_LOCK:
        if _pauses == 0:
            _paused_it = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _pauses -= 1
            if _pauses == 0 and _paused_it:
                gc.enable()


def find_task_spec(store: WorkflowStore, workflow_id: str, task_id: str) -> TaskSpec:
    """The stored spec of one task.

    Raises:
        WorkflowNotFoundError: the workflow has no such task.
    """
    return _find_spec(store.read_specs(workflow_id), workflow_id, task_id)


def _find_spec(batches: dict[str, FlatDAG], workflow_id: str, task_id: str) -> TaskSpec:
    for batch in batches.values():
        for spec in batch.specs:
            if spec.task_id == task_id:
                return spec
    raise WorkflowNotFoundError(
        f"No such task_id {task_id!r} in workflow {workflow_id!r}",  # Ray's words
        workflow_id=workflow_id,
        task_id=task_id,
    )


def workflow_info(
    store: WorkflowStore,
    record: RunRecord,
    *,
    specs: bool = False,
    environment: bool = False,
    status: WorkflowStatus | None = None,
) -> WorkflowInfo:
    """The read model of a workflow from its run record.

    Args:
        store: the workflow store.
        record: its run record.
        specs: also read the spec batches (``name``, ``tasks_total``) and list the checkpoints
            (``tasks_done``); specs that cannot be loaded here leave ``name`` and
            ``tasks_total`` None.
        environment: also read the recorded environment's packages (``runtime_env``).
        status: its effective status, if the caller knows it (else derived: one lease read
            for an active record).
    """
    if status is None:
        status = effective_status(store, record)
    name: str | None = None
    done: int | None = None
    total: int | None = None
    if specs:
        done = len(store.list_done(record.workflow_id))
        try:
            batches = store.read_specs(record.workflow_id)
        except SerializationError:
            batches = {}
        if batches:
            total = sum(len(batch.specs) for batch in batches.values())
            for batch in batches.values():
                for spec in batch.specs:
                    if spec.task_id == record.root_task_id:
                        name = spec.name
    return WorkflowInfo(
        workflow_id=record.workflow_id,
        status=status,
        name=name,
        root_task_id=record.root_task_id,
        created_at=record.created_at,
        start_time=record.start_time,
        end_time=visible_end_time(status, record.end_time),
        updated_at=record.updated_at,
        user_metadata=dict(record.user_metadata),
        error=record.error,
        epoch=record.epoch,
        tasks_done=done,
        tasks_total=total,
        runtime_env=expand_environment(store, record.runtime_env) if environment else None,
        forked_from=record.extra.get("forked_from") or None,
        restarts=tuple(record.extra.get("restarts") or ()),
    )


def workflow_metadata(store: WorkflowStore, record: RunRecord) -> dict[str, Any]:
    """``get_metadata`` of a workflow: status, user metadata, stats, error, environment.

    ``stats`` holds only the times that exist, as Ray's did: no ``start_time`` before the first
    run, and ``end_time`` only once the workflow completed (SUCCESSFUL, FAILED, RESUMABLE after
    a failure); a RUNNING, PENDING or CANCELED workflow has none (``updated_at`` says when a
    canceled one stopped).
    """
    return workflow_info(store, record, environment=True).to_metadata()


def get_task_info(
    store: WorkflowStore, workflow_id: str, task_id: str, record: RunRecord | None = None
) -> TaskInfo:
    """The read model of one task (its keys read directly, nothing listed).

    Raises:
        WorkflowNotFoundError: no such workflow, or no such task in it.
    """
    if record is None:
        record = store.read_run(workflow_id)
        if record is None:
            raise WorkflowNotFoundError(
                f"No such workflow_id {workflow_id!r}", workflow_id=workflow_id
            )
    batches = store.read_specs(workflow_id)
    spec = _find_spec(batches, workflow_id, task_id)
    observer = Observer(store, record, effective_status(store, record))
    view = observer.observe(task_id, spec.options, task_id in batches)
    return task_info(workflow_id, task_id, spec.name, view, spec.options)


def task_metadata(
    store: WorkflowStore, workflow_id: str, task_id: str, record: RunRecord | None = None
) -> dict[str, Any]:
    """``get_metadata`` of a task: status, options, user metadata, stats, attempts, error.

    ``status`` and ``attempts`` follow :func:`durableflow.model.attempts.observe_task`
    (RUNNING, RETRYING and lost attempts included). ``stats`` has the ``start_time`` and
    ``end_time`` of the latest attempt when they exist (none before the task starts, no
    ``end_time`` while it runs); for a task that returned a continuation, of its own run.
    ``last_attempt`` is its attempt record (number, state, host, pid, times) and ``lost`` says
    that attempt was lost with its runner.

    Raises:
        WorkflowNotFoundError: no such workflow, or no such task in it.
    """
    return get_task_info(store, workflow_id, task_id, record).to_metadata()


def stopped_error(record: RunRecord, status: WorkflowStatus, task_id: str | None) -> WorkflowError:
    """The error ``get_output`` raises for a workflow that stopped without an output."""
    wid = record.workflow_id
    what = f"task {task_id!r} of workflow {wid!r}" if task_id else f"workflow {wid!r}"
    if status is WorkflowStatus.CANCELED:
        return WorkflowCancellationError(
            f"{what} has no output: the workflow was canceled", workflow_id=wid, task_id=task_id
        )
    if status is WorkflowStatus.FAILED:
        cause = record.error.summary() if record.error else "unknown error"
        failed = record.error.task_id if record.error else None
        return WorkflowExecutionError(
            f"{what} has no output: task {failed!r} failed: {cause}",
            workflow_id=wid,
            task_id=task_id or failed,
        )
    if task_id is not None and status is WorkflowStatus.SUCCESSFUL:
        return WorkflowNotFoundError(
            f"{what} has no output (not checkpointed)", workflow_id=wid, task_id=task_id
        )
    return WorkflowIncompleteError(
        f"{what} has no output: the workflow is {status.value}; resume it",
        workflow_id=wid,
        task_id=task_id,
    )
