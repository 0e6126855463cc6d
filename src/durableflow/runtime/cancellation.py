"""How a run stops: cancel, shutdown, a lost lease, task and workflow timeouts.

Part of :class:`~durableflow.runtime.engine.WorkflowRun` (a mixin). What stops, and when:

- **a task attempt past its** ``timeout_s`` (timed from when its executor started it): the
  dispatcher abandons it (:meth:`~durableflow.runtime.dispatch.Dispatcher.expired`): its gate is
  closed with a :class:`WorkflowTimeoutError` (a thread attempt can then write no checkpoint,
  :mod:`durableflow.runtime.gates`), its executor is asked to stop it (a process is killed, a
  Ray task canceled), its attempt record is written ERROR with the timeout error, and the
  engine gets a system failure: retried up to ``max_retries``, then the task fails;
- **a cancel** (:meth:`RunStops.request_cancel`, or a request found in storage): every attempt
  out is stopped the same way with a :class:`WorkflowCancellationError`; the run waits up to
  ``stop_grace`` seconds until no killed one (process, Ray) runs any more, writes CANCELED,
  then waits again up to ``stop_grace`` for thread attempts (which stop at their next
  ``check_cancelled()`` and can write no checkpoint meanwhile) before the run ends: a caller
  that waits for the run (``Client.cancel`` in-process) returns when nothing of the workflow
  runs, or after its timeout with a warning naming what still runs;
- **the workflow's** ``timeout_s`` (from the start of this run: a resume gets a fresh
  deadline): as a cancel, then FAILED with a :class:`WorkflowTimeoutError` as the cause of the
  :class:`WorkflowExecutionError` raised;
- **shutdown** (:meth:`RunStops.request_stop`): attempts are stopped without waiting, RESUMABLE;
- **a lost lease**: attempts are stopped, nothing is written.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from durableflow import telemetry
from durableflow.core.machine import Event, TaskFailed
from durableflow.errors import (
    StorageError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowIncompleteError,
    WorkflowStillActiveError,
    WorkflowTimeoutError,
)
from durableflow.model.attempts import AttemptRecord, AttemptState
from durableflow.model.records import ErrorInfo
from durableflow.model.status import WorkflowStatus
from durableflow.runtime.gates import cancellation_error, cancelled, check_cancelled

if TYPE_CHECKING:
    import queue

    from durableflow.runtime.dispatch import Dispatcher
    from durableflow.storage.store import WorkflowStore

__all__ = ["RunStops", "cancelled", "check_cancelled"]

log = logging.getLogger("durableflow.engine")

WAKE = object()
"""Put on a run's outcome queue to make its loop look at its signals."""


class RunStops:
    """Signals from other threads and the stop paths of one run (mixed into ``WorkflowRun``)."""

    store: WorkflowStore
    workflow_id: str
    _dispatch: Dispatcher
    _outcomes: queue.SimpleQueue[Any]
    _cancel: threading.Event
    _stop: threading.Event
    _lost: threading.Event
    stop_grace: float
    timeout_s: float | None
    _deadline: float | None
    _timed_out: dict[str, list[int]]

    if TYPE_CHECKING:  # provided by WorkflowRun and RunWrites

        def _set_status(self, status: WorkflowStatus, **changes: Any) -> None: ...

        def _fence(self) -> None: ...

        @property
        def epoch(self) -> int: ...  # noqa: D102

    # --- signals from other threads -------------------------------------------------------
    def request_cancel(self) -> None:
        """Cancel as soon as the loop sees it."""
        self._cancel.set()
        self._outcomes.put(WAKE)

    def request_stop(self) -> None:
        """Stop and leave the workflow RESUMABLE (shutdown without waiting)."""
        self._stop.set()
        self._outcomes.put(WAKE)

    def lease_lost(self) -> None:
        """Another runner took the workflow over: stop without writing anything."""
        self._lost.set()
        self._outcomes.put(WAKE)

    # --- the loop's side ------------------------------------------------------------------
    def _drop_running(self, error: WorkflowError | None = None) -> None:
        self._dispatch.drop_all(error)

    def _start_clock(self) -> None:
        """The workflow's deadline, from now (every run, a resume too, gets a fresh one)."""
        if self.timeout_s is not None:
            self._deadline = time.monotonic() + self.timeout_s

    def _next_wake(self, next_poll: float) -> float:
        """Seconds the loop may wait for an outcome before something needs a look."""
        now = time.monotonic()
        wait = next_poll - now
        timer = self._dispatch.next_timer()
        if timer is not None:
            wait = min(wait, timer)
        if self._deadline is not None:
            wait = min(wait, self._deadline - now)
        return max(0.0, wait)

    def _check_signals(self) -> None:
        if self._lost.is_set():
            self._drop_running()
            raise WorkflowStillActiveError(
                f"workflow {self.workflow_id!r} was taken over by another runner",
                workflow_id=self.workflow_id,
            )
        if self._cancel.is_set():
            error = cancellation_error(self.workflow_id)
            self._drop_and_wait(error, fenced=False)
            self._set_status(WorkflowStatus.CANCELED, end_time=time.time())
            self._drop_and_wait(error, fenced=True)
            raise error
        if self._stop.is_set():
            self._drop_running()
            self._set_status(WorkflowStatus.RESUMABLE)
            raise WorkflowIncompleteError(
                f"workflow {self.workflow_id!r} was stopped by shutdown; resume it to finish",
                workflow_id=self.workflow_id,
            )
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._workflow_timed_out()

    def _drop_and_wait(self, error: WorkflowError, *, fenced: bool) -> None:
        """Stop every attempt out; wait until none runs (up to ``stop_grace`` seconds).

        ``fenced`` False waits only for the attempts a gate does not fence (processes, Ray
        tasks: killed, and gone within moments); True for thread attempts too, which stop only
        at their next check but can write nothing meanwhile.
        """
        self._drop_running(error)
        still = self._dispatch.wait_stopped(self.stop_grace, fenced=fenced)
        if still and fenced:
            log.warning(
                "workflow %s: task(s) %s still run %s s after they were asked to stop (a "
                "thread task stops only at its next check_cancelled()); they write no checkpoint",
                self.workflow_id,
                ", ".join(still[:10]),
                self.stop_grace,
            )

    def _workflow_timed_out(self) -> None:
        limit = self.timeout_s or 0.0
        error = WorkflowTimeoutError(
            f"workflow {self.workflow_id!r} timed out: it ran past its timeout_s of {limit} s",
            workflow_id=self.workflow_id,
            limit_s=limit,
            elapsed_s=limit + time.monotonic() - (self._deadline or time.monotonic()),
        )
        self._drop_and_wait(error, fenced=False)
        log.warning("workflow %s FAILED: %s", self.workflow_id, error)
        self._set_status(
            WorkflowStatus.FAILED, end_time=time.time(), error=ErrorInfo.from_exception(error)
        )
        self._drop_and_wait(error, fenced=True)
        raise WorkflowExecutionError(
            f"workflow {self.workflow_id!r} FAILED: {error}", workflow_id=self.workflow_id
        ) from error

    def _timeouts(self) -> list[Event]:
        """Attempts past their ``timeout_s``: abandoned, recorded, and failed (system errors)."""
        events: list[Event] = []
        for timed, gate_error in self._dispatch.expired():
            self._timed_out.setdefault(timed.task_id, []).append(timed.attempt)
            log.warning("workflow %s: %s", self.workflow_id, gate_error)
            self._record_timeout(timed.task_id, timed.attempt, gate_error)
            events.append(TaskFailed(timed.task_id, gate_error, system=True))
        return events

    def _started_at(self, task_id: str, attempt: int) -> float | None:
        """When attempt ``attempt`` of ``task_id`` started, by its record (None: not yet)."""
        from durableflow.storage.attempts import read_attempt

        try:
            record = read_attempt(self.store, self.workflow_id, task_id)
        except StorageError:
            return None
        if record is None or record.attempt != attempt:
            return None
        return record.start

    def _record_timeout(self, task_id: str, attempt: int, error: WorkflowTimeoutError) -> None:
        """The attempt record of a timed-out attempt: ERROR, with the timeout error."""
        telemetry.task_event(self.workflow_id, "timeout", task_id, attempt, error)
        from durableflow.storage.attempts import HOST, write_attempt

        now = time.time()
        record = AttemptRecord(
            task_id, attempt, now - (error.elapsed_s or 0.0), HOST, os.getpid(), epoch=self.epoch
        ).ended(AttemptState.ERROR, now, ErrorInfo.from_exception(error, task_id))
        self._fence()
        try:
            write_attempt(self.store, self.workflow_id, record)
        except StorageError as err:  # the record is for display and numbering only
            log.warning(
                "workflow %s: timeout of %s not recorded: %s", self.workflow_id, task_id, err
            )
