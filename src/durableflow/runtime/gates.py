"""Attempt gates: how a cancel or a timeout reaches an attempt, and fences its checkpoint.

Every attempt runs with an :class:`AttemptGate`. On executors that share the engine's memory
(the thread executor, the wait service) the engine creates it and keeps it (``TaskCall.gate``);
elsewhere (a process, a Ray worker) :func:`~durableflow.runtime.attempt.execute_task` creates a
local one, closed by nobody but its own deadline, since the executor stops those attempts by
killing their worker.

The protocol of a gate, as numbered steps:

1. the attempt starts: ``begin(timeout_s)`` fixes its deadline on this process's monotonic
   clock, from the moment its code starts (time spent queued in a pool does not count);
2. the task's code may ask :func:`cancelled` / :func:`check_cancelled` (a contextvar gives
   them the running attempt's gate); an async task is also cancelled through asyncio
   (:meth:`AttemptGate.on_close` callbacks);
3. the engine closes the gate (:meth:`AttemptGate.close`, with the reason: a
   :class:`WorkflowCancellationError` or a :class:`WorkflowTimeoutError`); the close takes the
   gate's lock, so it returns only once no checkpoint write of the attempt is in progress;
4. the attempt writes its checkpoint only inside :meth:`AttemptGate.writing`, which holds the
   same lock and says whether the gate is still open and the deadline not passed: after step 3
   returned, the attempt can write nothing, however late its code returns.

So for an attempt on a shared-memory executor "no checkpoint after cancel returned" is exact,
even though Python cannot stop the thread that runs it.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import threading
import time
from collections.abc import Callable, Iterator

from durableflow.errors import WorkflowCancellationError, WorkflowError, WorkflowTimeoutError

__all__ = ["AttemptGate", "cancelled", "check_cancelled", "current_gate"]


class AttemptGate:
    """The stop signal and checkpoint fence of one attempt (module docstring)."""

    __slots__ = (
        "_callbacks",
        "_deadline",
        "_error",
        "_lock",
        "_start",
        "attempt",
        "task_id",
        "timeout_s",
        "workflow_id",
    )

    def __init__(
        self,
        workflow_id: str | None = None,
        task_id: str | None = None,
        attempt: int = 0,
        timeout_s: float | None = None,
    ) -> None:
        self.workflow_id = workflow_id
        self.task_id = task_id
        self.attempt = attempt
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._error: WorkflowError | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._start: float | None = None
        self._deadline: float | None = None

    def begin(self) -> None:
        """Step 1: the attempt's code starts now; its deadline runs from here."""
        self._start = time.monotonic()
        if self.timeout_s is not None:
            self._deadline = self._start + self.timeout_s

    @property
    def elapsed(self) -> float:
        """Seconds since :meth:`begin` (0 before)."""
        return 0.0 if self._start is None else time.monotonic() - self._start

    @property
    def error(self) -> WorkflowError | None:
        """Why the attempt must stop: the close's reason, or a timeout past the deadline."""
        if self._error is not None:
            return self._error
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return self.timeout_error()
        return None

    def timeout_error(self, elapsed: float | None = None) -> WorkflowTimeoutError:
        """The error of this attempt running past its ``timeout_s``."""
        spent = self.elapsed if elapsed is None else elapsed
        return WorkflowTimeoutError(
            f"task {self.task_id!r} attempt {self.attempt} timed out: it ran {spent:.3f} s, "
            f"its timeout_s is {self.timeout_s} s",
            workflow_id=self.workflow_id,
            task_id=self.task_id,
            limit_s=self.timeout_s,
            elapsed_s=spent,
        )

    def close(self, error: WorkflowError) -> bool:
        """Step 3: stop the attempt; returns once no checkpoint write of it is in progress.

        Returns False if the gate was already closed. Callbacks run after the lock is released.
        """
        with self._lock:
            if self._error is not None:
                return False
            self._error = error
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
        return True

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the gate closes (at once if it is closed already)."""
        with self._lock:
            if self._error is None:
                self._callbacks.append(callback)
                return
        callback()

    @contextlib.contextmanager
    def writing(self) -> Iterator[WorkflowError | None]:
        """Step 4: hold the gate open while the checkpoint is written.

        Yields None when the write may go ahead, else the error that stops it (the block must
        then write nothing).
        """
        with self._lock:
            yield self.error


_CURRENT: contextvars.ContextVar[AttemptGate | None] = contextvars.ContextVar(
    "durableflow_gate", default=None
)


def current_gate() -> AttemptGate | None:
    """The gate of the attempt running this code, or None outside tasks."""
    return _CURRENT.get()


@contextlib.contextmanager
def gate_context(gate: AttemptGate) -> Iterator[None]:
    """Make ``gate`` the running attempt's for the code inside the block (step 2)."""
    token = _CURRENT.set(gate)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def cancelled() -> bool:
    """Whether the running task should stop: its workflow was canceled or it timed out.

    Always False outside a task. On the thread executor this is how a cancel or a timeout
    reaches a running task (a thread cannot be killed); on the process and Ray executors the
    worker is killed instead, and this only reports a passed ``timeout_s``.
    """
    gate = _CURRENT.get()
    return gate is not None and gate.error is not None


def check_cancelled() -> None:
    """Raise if the running task should stop (see :func:`cancelled`); else return at once.

    Raises:
        WorkflowCancellationError: its workflow was canceled.
        WorkflowTimeoutError: it ran past its ``timeout_s`` (or its workflow's).
    """
    gate = _CURRENT.get()
    if gate is None:
        return
    error = gate.error
    if error is not None:
        raise copy.copy(error)  # a copy each time: threads never share one traceback


def cancellation_error(workflow_id: str) -> WorkflowCancellationError:
    """The reason given to the gates of a canceled workflow's attempts."""
    return WorkflowCancellationError(
        f"workflow {workflow_id!r} was canceled", workflow_id=workflow_id
    )
