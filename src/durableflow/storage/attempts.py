"""Attempt records: a task's latest attempt, written by the worker that runs it.

Key ``attempts/<task_id>`` of the workflow (:func:`durableflow.storage.layout.attempt_key`),
JSON (:class:`~durableflow.model.attempts.AttemptRecord`). Protocol of one attempt, run by
:func:`durableflow.runtime.attempt.execute_task` wherever the attempt runs, through a
:class:`RunningAttempt`:

1. once the attempt has run for :data:`RECORD_AFTER` seconds without ending, the process's
   recorder thread writes the record ``{attempt: n, state: RUNNING, start, host, pid, epoch}``;
2. the function runs meanwhile (a failed write of step 1 is logged; the attempt goes on);
3. an attempt that ends with a checkpoint writes nothing more here: the checkpoint's header
   holds its number, start and end;
4. any other outcome (FAILED, ERROR, CONTINUED; SUCCESSFUL without a checkpoint, only if step 1
   wrote a record) writes the ended record: ``end``, ``state`` and ``error`` added.

Every write here is without sync (:meth:`Storage.volatile`) and conditional
(:func:`write_attempt`: read, then create or compare-and-swap, never over a newer attempt's
record), so a late worker of an abandoned attempt never hides a newer one.

Why step 1 waits: on file storage every new key is a new file, and creating one costs about
as much as a fifth of a whole checkpointed task (0.2 ms of 1 ms on the benchmark machine). An
attempt shorter than :data:`RECORD_AFTER` is neither displayed as RUNNING (it is over before
anyone could look) nor counted if a crash ends it; every longer one is both, for a cost below
0.5 % of its run time, and a short one costs no write at all. ``RECORD_AFTER = 0`` writes step 1
before the function is called. Step 4 always writes for a failure or a continuation, so that a
task that continued has its own attempt and times (a continuation loop of trivial steps pays
one more file per step for it).

A crash (of the worker or the runner) after 1 and before 3 or 4 leaves a RUNNING record that
nobody waits for: readers report that attempt as lost (:func:`observe_task`), and the next run
numbers its attempts after it (:func:`read_attempt_counts`). A power cut may undo 1 or 4; the
record is for display and numbering only, never for what runs, so it is neither sealed nor
signed.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable

from durableflow.errors import StorageError
from durableflow.model.attempts import AttemptRecord, AttemptState
from durableflow.model.records import ErrorInfo
from durableflow.storage import layout
from durableflow.storage.store import WorkflowStore

__all__ = [
    "HOST",
    "RECORD_AFTER",
    "RunningAttempt",
    "begin_attempt",
    "list_attempts",
    "read_attempt",
    "read_attempt_counts",
    "read_attempts",
    "write_attempt",
]

log = logging.getLogger("durableflow.task")

RECORD_AFTER = 0.05
"""Seconds an attempt runs before its RUNNING record is written (step 1); 0: before it runs."""

_POLL = 0.05
"""The recorder thread's longest sleep while it has attempts to follow, or just had some."""
_QUIET_POLLS = 100
"""Polls without attempts before the recorder thread sleeps until an attempt wakes it."""


def _tagged(err: StorageError, workflow_id: str, task_id: str | None, key: str) -> StorageError:
    tagged = type(err)(
        f"workflow {workflow_id!r}: {err}", workflow_id=workflow_id, task_id=task_id, key=key
    )
    tagged.__cause__ = err.__cause__
    return tagged


def write_attempt(store: WorkflowStore, workflow_id: str, record: AttemptRecord) -> bool:
    """Store ``record`` unless a newer attempt's record is there; True if stored.

    The record replacing an earlier attempt's carries that attempt in its ``previous``
    history (see :meth:`AttemptRecord.after`), so every attempt's times stay readable.

    Read, then create (no record yet) or compare-and-swap on the bytes read, without sync;
    a race lost to another writer reads again.

    Raises:
        StorageError: the storage failed.
    """
    key = layout.attempt_key(workflow_id, record.task_id)
    storage = store.storage
    try:
        with storage.volatile():
            for _ in range(5):
                raw = storage.get(key)
                if raw is None:
                    if storage.create(key, record.to_bytes()):
                        return True
                    continue
                stored = _parse(raw)
                if stored is not None and stored.attempt > record.attempt:
                    return False
                if storage.swap(key, raw, record.after(stored).to_bytes()):
                    return True
    except StorageError as err:
        raise _tagged(err, workflow_id, record.task_id, key) from None
    return False


def _parse(raw: bytes) -> AttemptRecord | None:
    try:
        return AttemptRecord.from_bytes(raw)
    except (ValueError, KeyError, TypeError):
        return None


HOST = socket.gethostname()
"""This process's host name, as attempt records give it."""


class RunningAttempt:
    """One attempt in progress, whose record follows the protocol above.

    The record is built only when written (most attempts end before step 1 is due).

    Args:
        store: the workflow store.
        workflow_id: the workflow.
        task_id: the task.
        attempt: the attempt's number.
        start: when it started (Unix time).
        epoch: the fencing token of the runner that submitted it.
    """

    __slots__ = (
        "_lock",
        "attempt",
        "due",
        "ended",
        "epoch",
        "recorded",
        "start",
        "store",
        "task_id",
        "workflow_id",
    )

    def __init__(
        self,
        store: WorkflowStore,
        workflow_id: str,
        task_id: str,
        attempt: int,
        start: float,
        epoch: int | None = None,
    ) -> None:
        self.store = store
        self.workflow_id = workflow_id
        self.task_id = task_id
        self.attempt = attempt
        self.start = start
        self.epoch = epoch
        self.due = time.monotonic() + RECORD_AFTER
        self.ended = False
        self.recorded = False
        self._lock = threading.Lock()

    def running_record(self) -> AttemptRecord:
        """The record of step 1."""
        return AttemptRecord(
            self.task_id, self.attempt, self.start, HOST, os.getpid(), epoch=self.epoch
        )

    def record_start(self) -> None:
        """Step 1 (the recorder thread, or at once when RECORD_AFTER is 0)."""
        if not self._lock.acquire(blocking=False):
            return  # it is ending right now
        try:
            if not self.ended:
                self.recorded = self._write(self.running_record(), "start")  # 1
        finally:
            self._lock.release()

    def end(self, state: AttemptState | None, error: ErrorInfo | None = None) -> None:
        """Step 3 (``state`` None: a checkpoint ended it) or 4 (its outcome)."""
        with self._lock:
            self.ended = True
            if state is None or (state is AttemptState.SUCCESSFUL and not self.recorded):
                return  # 3 (or a short attempt without a checkpoint: nothing to correct)
            self._write(self.running_record().ended(state, time.time(), error), "end")  # 4

    def _write(self, record: AttemptRecord, what: str) -> bool:
        try:
            return write_attempt(self.store, self.workflow_id, record)
        except StorageError as err:
            log.warning(
                "workflow %s task %s: the %s of attempt %d was not recorded: %s",
                self.workflow_id,
                record.task_id,
                what,
                record.attempt,
                err,
            )
            return False


def begin_attempt(
    store: WorkflowStore,
    workflow_id: str,
    task_id: str,
    attempt: int,
    start: float,
    epoch: int | None = None,
) -> RunningAttempt:
    """Start following an attempt: its RUNNING record is written if it runs long enough."""
    running = RunningAttempt(store, workflow_id, task_id, attempt, start, epoch)
    if RECORD_AFTER <= 0:
        running.record_start()
    else:
        _recorder().add(running)
    return running


class _Recorder:
    """The thread that writes step 1 of the attempts of this process that run long enough."""

    def __init__(self) -> None:
        self.queue: collections.deque[RunningAttempt] = collections.deque()
        self.idle = False
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="durableflow-attempts", daemon=True)
        self.thread.start()

    def add(self, attempt: RunningAttempt) -> None:
        self.queue.append(attempt)
        if self.idle:  # asleep for good: wake it (a busy recorder polls, unwoken)
            self.idle = False
            self.wake.set()

    def _run(self) -> None:
        queue, quiet = self.queue, 0
        while True:
            while queue and (queue[0].ended or queue[0].due <= time.monotonic()):
                attempt = queue.popleft()
                if not attempt.ended:
                    attempt.record_start()
            if queue:
                quiet = 0
                time.sleep(min(max(queue[0].due - time.monotonic(), 0.001), _POLL))
                continue
            quiet += 1
            if quiet < _QUIET_POLLS:
                time.sleep(_POLL)
                continue
            self.idle = True
            self.wake.clear()
            if not queue:  # else add() ran before ``idle`` was set: go on at once
                self.wake.wait()
            self.idle, quiet = False, 0


_RECORDERS: dict[int, _Recorder] = {}
_RECORDERS_LOCK = threading.Lock()


def _recorder() -> _Recorder:
    pid = os.getpid()  # a forked child needs a thread of its own
    recorder = _RECORDERS.get(pid)
    if recorder is None:
        with _RECORDERS_LOCK:
            recorder = _RECORDERS.get(pid)
            if recorder is None:
                recorder = _RECORDERS[pid] = _Recorder()
    return recorder


def read_attempt(store: WorkflowStore, workflow_id: str, task_id: str) -> AttemptRecord | None:
    """The task's latest attempt record; None if there is none or it is garbled."""
    key = layout.attempt_key(workflow_id, task_id)
    try:
        raw = store.storage.get(key)
    except StorageError as err:
        raise _tagged(err, workflow_id, task_id, key) from None
    # informational only: a garbled record reads as none and blocks nothing
    return None if raw is None else _parse(raw)


def list_attempts(store: WorkflowStore, workflow_id: str) -> list[str]:
    """Ids of the tasks that started at least one attempt (one listing)."""
    prefix = layout.attempts_prefix(workflow_id)
    try:
        keys = store.storage.list(prefix)
    except StorageError as err:
        raise _tagged(err, workflow_id, None, prefix) from None
    return [key[len(prefix) :] for key in keys]


def read_attempts(
    store: WorkflowStore, workflow_id: str, task_ids: Iterable[str] | None = None
) -> dict[str, AttemptRecord]:
    """The attempt records of ``task_ids`` (default: every task that has one)."""
    ids = list_attempts(store, workflow_id) if task_ids is None else task_ids
    records = {}
    for task_id in ids:
        record = read_attempt(store, workflow_id, task_id)
        if record is not None:
            records[task_id] = record
    return records


def read_attempt_counts(
    store: WorkflowStore, workflow_id: str, done: Iterable[str] | None = None
) -> dict[str, int]:
    """Attempts made so far by every task that is not done, lost ones included.

    A resumed run numbers a task's next attempt after them (``n + 1``). Tasks with a
    checkpoint never run again, so their records are not read: one listing of the attempt
    records, one of the error records, one of the checkpoints (unless ``done`` is given), and
    one read per unfinished task that has a record.

    Args:
        store: the workflow store.
        workflow_id: the workflow.
        done: ids of the tasks with a checkpoint, if the caller listed them already.
    """
    finished = set(store.list_done(workflow_id) if done is None else done)
    counts: dict[str, int] = {}
    for task_id in list_attempts(store, workflow_id):
        if task_id not in finished:
            record = read_attempt(store, workflow_id, task_id)
            if record is not None:
                counts[task_id] = record.attempt
    # A worker process that died before step 1 leaves only the engine's error record.
    for task_id in store.list_task_errors(workflow_id):
        if task_id not in finished:
            error = store.read_task_error(workflow_id, task_id)
            if error is not None and error.attempts > counts.get(task_id, 0):
                counts[task_id] = error.attempts
    return counts
