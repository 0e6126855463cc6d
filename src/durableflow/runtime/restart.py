"""Restart in place: run a stored workflow again from chosen tasks, keeping the rest.

What runs again (:func:`affected`): the chosen tasks, every task that reads (transitively) the
output of one of them, and every task of the continuation of a task that runs again (that task
returns a new continuation). A continued task whose continuation's root runs again, but whose
own inputs did not change, is not run again: only its output (the forward record that says "my
output is my continuation's") is set aside, and its stored continuation is kept.

Nothing is deleted for good: the checkpoints, continuation specs, attempt and error records and
captured logs (:mod:`durableflow.storage.logs`) of the tasks that run again are moved under
``history/<n>/`` of the workflow (``n``: the restart's number, 1 for the first), so the attempts
before the restart stay readable (:func:`restart_history`; their logs with
``get_logs(..., restart=n)``). A task that runs again numbers its attempts from 1 again: its
logs are set aside so that its new attempts' logs never mix with (or overwrite) the old ones.

Protocol of :func:`restart` (each numbered step is a kill-test point of
``tests/integration/test_restart.py``):

1. read the run record: no workflow -> WorkflowNotFoundError; RUNNING or PENDING ->
   WorkflowStillActiveError; CANCELED without ``allow_canceled`` -> WorkflowNotResumableError;
2. claim the workflow's lease (WorkflowStillActiveError if a live runner holds it);
3. under the lease, finish an interrupted restart if its plan is there (steps 6-9 of that
   plan), then re-read the run record and check its status again (step 1's rules);
4. plan: read the specs, find the tasks to run again, list the keys to set aside;
5. put the plan ``restart`` (sync). From here on the restart happens: whoever claims the
   workflow next and finds the plan (a resume, a restart: :func:`finish_restart`) finishes it;
6. copy each key to ``history/<n>/<key>`` (checkpoints and specs re-sealed for their new key:
   a signature binds the key); sync;
7. write the status RESUMABLE, a compare-and-swap on the record read under the lease (path C of
   the status index; epoch + 1, error cleared, the restart appended to ``extra["restarts"]``);
8. delete the originals, and a cancel request (restarting a CANCELED workflow);
9. delete the plan;
10. release the lease.

A kill before step 5 changes nothing. Between 5 and 7 every original is in place and the status
is the old one: readers see the old workflow (a SUCCESSFUL one still returns its output), and the
next claimer finishes the restart. After 7 readers see RESUMABLE, and no run starts before the
plan is finished: a resume finishes it under the lease first (:func:`finish_restart`, called by
the Launcher), so no run ever reuses a checkpoint the restart set aside.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from durableflow.errors import (
    CheckpointCorruptError,
    StorageError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowStillActiveError,
)
from durableflow.model.attempts import AttemptRecord
from durableflow.model.dag import FlatDAG
from durableflow.model.records import RunRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.runtime.lease import LeaseKeeper
from durableflow.runtime.status import effective_status
from durableflow.storage import layout
from durableflow.storage.attempts import list_attempts
from durableflow.storage.logs import list_logs, log_key
from durableflow.storage.serializer import Serializer
from durableflow.storage.store import WorkflowStore

__all__ = [
    "Restarted",
    "affected",
    "copy_value",
    "finish_restart",
    "held_status",
    "restart",
    "restart_history",
]

_ENVELOPES = ("outputs/", "specs/")
"""Relative keys holding pickled envelopes (re-sealed when copied); the others are plain JSON."""


@dataclasses.dataclass(frozen=True)
class Restarted:
    """What a restart did."""

    workflow_id: str
    restart: int
    """The restart's number: what it set aside is under ``history/<restart>/``."""
    rerun: tuple[str, ...]
    """Tasks that run again (their checkpoints set aside)."""
    forwarded: tuple[str, ...]
    """Continued tasks whose continuation runs again: their output set aside, their continuation
    kept (their function does not run again)."""


def affected(
    batches: Mapping[str, FlatDAG], from_tasks: Iterable[str], workflow_id: str = ""
) -> tuple[set[str], set[str]]:
    """The tasks a restart from ``from_tasks`` runs again, and the continued tasks it reopens.

    Args:
        batches: the stored spec batches (``root`` and one per continued task).
        from_tasks: the tasks to run again.
        workflow_id: for error messages.

    Returns:
        ``(rerun, forwarded)``: tasks whose function runs again; continued tasks (not in
        ``rerun``) whose output is their continuation's, which runs again.

    Raises:
        WorkflowNotFoundError: a task id the workflow does not have (``task_id`` set).
    """
    specs = {s.task_id: s for flat in batches.values() for s in flat.specs}
    dependents: dict[str, list[str]] = collections.defaultdict(list)
    for spec in specs.values():
        for up in spec.upstream:
            dependents[up].append(spec.task_id)
    parents: dict[str, list[str]] = collections.defaultdict(list)
    for batch, flat in batches.items():
        if batch != layout.ROOT_BATCH:
            parents[flat.root].append(batch)
    stack: list[tuple[str, bool]] = []
    for task_id in from_tasks:
        if task_id not in specs:
            raise WorkflowNotFoundError(
                f"workflow {workflow_id!r} has no task {task_id!r}",
                workflow_id=workflow_id,
                task_id=task_id,
            )
        stack.append((task_id, True))
    rerun: set[str] = set()
    forwarded: set[str] = set()
    while stack:
        task_id, runs = stack.pop()
        if task_id in rerun or (not runs and task_id in forwarded):
            continue
        if runs:
            rerun.add(task_id)
            forwarded.discard(task_id)
            if task_id in batches and task_id != layout.ROOT_BATCH:
                stack.extend((s.task_id, True) for s in batches[task_id].specs)
        else:
            forwarded.add(task_id)
        stack.extend((dep, True) for dep in dependents[task_id])
        stack.extend((parent, False) for parent in parents[task_id])
    return rerun, forwarded


def copy_value(serializer: Serializer, raw: bytes, src: str, dst: str) -> bytes:
    """The bytes to store under ``dst`` for the envelope ``raw`` read from ``src``.

    With a signing key the signature binds the key, so the envelope is checked under ``src``
    and re-sealed for ``dst`` (the payload is not unpickled); without one the checksum does not
    bind the key and the result equals ``raw``.

    Raises:
        CheckpointCorruptError: ``raw`` is not a valid envelope for ``src``.
    """
    header, payload = serializer.unwrap(raw, what=f"value at {src}", key=src)
    return serializer.wrap(payload, header, key=dst)


def _relative(workflow_id: str, key: str) -> str:
    return key[len(layout.workflow_prefix(workflow_id)) :]


def held_status(store: WorkflowStore, record: RunRecord, held: bool) -> WorkflowStatus:
    """The effective status; ``held``: read under the caller's own claim of the lease.

    Under our own lease a RUNNING record is a runner that died (we could claim its lease):
    RESUMABLE. A PENDING one was queued for a worker meanwhile: it stays PENDING.
    """
    if not held:
        return effective_status(store, record)
    return WorkflowStatus.RESUMABLE if record.status is WorkflowStatus.RUNNING else record.status


def _require(
    store: WorkflowStore, workflow_id: str, allow_canceled: bool, *, held: bool = False
) -> RunRecord:
    """Step 1's checks on the stored record (also step 3's, under the lease: ``held``)."""
    record = store.read_run(workflow_id)
    if record is None:
        raise WorkflowNotFoundError(
            f"No such workflow_id {workflow_id!r}: no workflow {workflow_id!r} in "
            f"{store.storage.url}",
            workflow_id=workflow_id,
        )
    status = held_status(store, record, held)
    if status in ACTIVE:
        raise WorkflowStillActiveError(
            f"workflow {workflow_id!r} is {status.value}: cancel it (or wait for it) before "
            "restarting it",
            workflow_id=workflow_id,
        )
    if status is WorkflowStatus.CANCELED and not allow_canceled:
        raise WorkflowNotResumableError(
            f"workflow {workflow_id!r} was canceled: restart it with allow_canceled=True",
            workflow_id=workflow_id,
        )
    return record


def restart(
    store: WorkflowStore,
    leases: LeaseKeeper,
    workflow_id: str,
    from_tasks: Iterable[str],
    *,
    allow_canceled: bool = False,
    clock: Callable[[], float] = time.time,
) -> Restarted:
    """Set aside ``from_tasks`` and everything downstream; the workflow becomes RESUMABLE.

    Runs nothing: ``resume(workflow_id)`` (or a worker) runs it again from there. See the
    module docstring for the protocol and what runs again.

    Raises:
        WorkflowNotFoundError: no such workflow, or no such task in it.
        WorkflowStillActiveError: it is RUNNING or PENDING.
        WorkflowNotResumableError: it is CANCELED and ``allow_canceled`` is False.
        ValueError: ``from_tasks`` is empty.
    """
    wanted = list(dict.fromkeys(from_tasks))
    if not wanted:
        raise ValueError("restart needs at least one task id to restart from")
    _require(store, workflow_id, allow_canceled)  # 1
    leases.claim(workflow_id, lambda: None)  # 2
    try:
        finish_restart(store, workflow_id)  # 3
        record = _require(store, workflow_id, allow_canceled, held=True)
        batches = store.read_specs(workflow_id)  # 4
        rerun, forwarded = affected(batches, wanted, workflow_id)
        number = len(record.extra.get("restarts", [])) + 1
        plan = {
            "restart": number,
            "from": wanted,
            "at": clock(),
            "rerun": sorted(rerun),
            "forwarded": sorted(forwarded),
            "keys": _keys_to_set_aside(store, workflow_id, batches, rerun, forwarded),
        }
        storage = store.storage
        with storage.batch():
            storage.put(layout.restart_key(workflow_id), json.dumps(plan).encode())  # 5
        _finish(store, workflow_id, plan)  # 6-9
    finally:
        leases.release(workflow_id)  # 10
    return Restarted(workflow_id, number, tuple(sorted(rerun)), tuple(sorted(forwarded)))


def _keys_to_set_aside(
    store: WorkflowStore,
    workflow_id: str,
    batches: Mapping[str, FlatDAG],
    rerun: set[str],
    forwarded: set[str],
) -> list[str]:
    """Step 4: the workflow's keys (relative to its folder) that the restart moves away."""
    wid = workflow_id
    done = store.list_done(wid)
    keys = [layout.output_key(wid, t) for t in sorted(rerun | forwarded) if t in done]
    keys += [
        layout.spec_key(wid, t) for t in sorted(rerun) if t in batches and t != layout.ROOT_BATCH
    ]
    keys += [layout.attempt_key(wid, t) for t in list_attempts(store, wid) if t in rerun]
    keys += [layout.error_key(wid, t) for t in store.list_task_errors(wid) if t in rerun]
    keys += [log_key(wid, t, n) for t, n in list_logs(store.storage, wid) if t in rerun]
    return [_relative(wid, key) for key in keys]


def finish_restart(store: WorkflowStore, workflow_id: str) -> bool:
    """Finish an interrupted restart of ``workflow_id``; the caller holds its lease.

    A resume calls this under the lease before it reads what to run (the Launcher's step 4),
    so no run reuses a checkpoint an interrupted restart meant to set aside.

    Returns:
        True if a restart was interrupted (and is now finished).
    """
    raw = store.storage.get(layout.restart_key(workflow_id))
    if raw is None:
        return False
    try:
        plan = json.loads(raw)
        int(plan["restart"])
        list(plan["keys"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointCorruptError(
            f"workflow {workflow_id!r}: the plan of an interrupted restart is garbled: {err}",
            workflow_id=workflow_id,
            key=layout.restart_key(workflow_id),
        ) from err
    _finish(store, workflow_id, plan)
    return True


def _finish(store: WorkflowStore, workflow_id: str, plan: dict[str, Any]) -> None:
    """Steps 6-9 of a stored plan; every step may be repeated after a kill."""
    wid, number = workflow_id, int(plan["restart"])
    storage = store.storage
    prefix = layout.workflow_prefix(wid)
    try:
        with storage.batch():  # 6
            for relative in plan["keys"]:
                src, dst = prefix + relative, layout.history_key(wid, number, relative)
                raw = storage.get(src)
                if raw is None:
                    continue  # moved before a kill: its copy is in the history already
                if relative.startswith(_ENVELOPES):
                    raw = copy_value(store.serializer, raw, src, dst)
                storage.put(dst, raw)
    except StorageError as err:
        raise type(err)(f"workflow {wid!r}: restart: {err}", workflow_id=wid) from err
    record, raw_record = store.read_run_raw(wid)  # 7
    if record is None:
        raise WorkflowNotFoundError(
            f"workflow {wid!r} vanished during its restart", workflow_id=wid
        )
    restarts = list(record.extra.get("restarts", []))
    if not restarts or restarts[-1].get("restart") != number:
        entry = {
            "restart": number,
            "at": plan.get("at"),
            "from": plan.get("from", []),
            "rerun": plan.get("rerun", []),
            "forwarded": plan.get("forwarded", []),
            "status": record.status.value,
        }
        store.set_status(
            record.replace(
                status=WorkflowStatus.RESUMABLE,
                updated_at=time.time(),
                end_time=None,
                error=None,
                epoch=record.epoch + 1,
                extra={**record.extra, "restarts": [*restarts, entry]},
            ),
            record.status,
            expected=raw_record,
        )
    for relative in plan["keys"]:  # 8
        storage.delete(prefix + relative)
    storage.delete(layout.cancel_key(wid))
    storage.delete(layout.restart_key(wid))  # 9


def restart_history(store: WorkflowStore, workflow_id: str) -> list[dict[str, Any]]:
    """The restarts of a workflow, oldest first, with the attempts each set aside.

    Each entry: ``restart`` (its number), ``at``, ``from``, ``rerun``, ``forwarded``, ``status``
    (the status it restarted from) and ``tasks``: per task set aside, ``attempt`` (its attempt
    record as :meth:`AttemptRecord.to_json`, when there was one), ``checkpoint`` (the set-aside
    checkpoint's header: times and attempts), ``error`` (its last error record's JSON) and
    ``logs`` (the numbers of the attempts whose logs were set aside, when any: read them with
    :func:`~durableflow.runtime.logs.get_logs` and ``restart``; they are listed, not read).
    """
    record = store.read_run(workflow_id)
    if record is None:
        return []
    storage = store.storage
    history = []
    for entry in record.extra.get("restarts", []):
        number = entry.get("restart")
        base = layout.history_key(workflow_id, number, "")
        tasks: dict[str, dict[str, Any]] = {}
        for key in storage.list(base):
            kind, _, task_id = key[len(base) :].partition("/")
            if kind in ("specs", "logs"):  # logs: listed below, by their own layout
                continue
            raw = storage.get(key)
            if raw is None:
                continue
            try:
                if kind == "outputs":
                    header = store.serializer.unwrap(raw, key=key)[0]
                    tasks.setdefault(task_id, {})["checkpoint"] = header
                elif kind == "attempts":
                    attempt = AttemptRecord.from_bytes(raw).to_json()
                    tasks.setdefault(task_id, {})["attempt"] = attempt
                elif kind == "errors":
                    tasks.setdefault(task_id, {})["error"] = json.loads(raw)
            except (ValueError, KeyError, TypeError, CheckpointCorruptError):
                continue  # history is for display: a garbled entry hides nothing else
        for task_id, logged in list_logs(storage, workflow_id, restart=int(number)):
            tasks.setdefault(task_id, {}).setdefault("logs", []).append(logged)
        history.append({**entry, "tasks": tasks})
    return history
