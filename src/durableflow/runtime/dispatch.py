"""Dispatcher: hands a run's task attempts to the executor or the wait service.

The engine decides *what* runs (``core.decide``); the dispatcher decides *where and when*:

- a durable wait (``workflow.sleep``, ``wait_for_event``) on an executor that shares memory goes
  to the wait service at once and takes no executor slot (:mod:`durableflow.runtime.waits`);
  so does an async task, to the same event loop (:mod:`durableflow.runtime.async_tasks`);
- any other attempt goes to the executor while fewer than ``executor.max_in_flight`` of its
  attempts are out, else it waits in order in a backlog;
- each attempt's future reports ``(task_id, attempt, future)`` on the run's outcome queue when
  it ends; :meth:`Dispatcher.take` accepts only the outcome of the attempt still expected;
- an attempt whose task has a ``timeout_s`` is timed from the moment its executor starts it
  (``future.running()``; queued time does not count): past it, :meth:`Dispatcher.expired`
  abandons it (closes its gate, asks the executor to stop it) and reports it to the engine;
- an attempt that runs in this process (thread executor, wait service) gets an
  :class:`~durableflow.runtime.gates.AttemptGate`, closed when it is abandoned or dropped;
- abandoned and dropped attempts that have not ended yet are kept (``stopping``) so that a
  cancel can wait until nothing of the workflow runs (:meth:`Dispatcher.wait_stopped`).
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from durableflow.core.machine import SubmitTask
from durableflow.errors import WorkflowError, WorkflowTimeoutError
from durableflow.executors.base import Executor
from durableflow.model.calls import TaskCall, TaskOutcome
from durableflow.runtime.async_tasks import submit_async
from durableflow.runtime.attempt import execute_task
from durableflow.runtime.gates import AttemptGate
from durableflow.runtime.waits import cancel_wait, submit_wait

_CONFIRM_POLL = 0.25
"""Seconds between looks at the attempt record of a Ray attempt not seen started yet."""
_UNSTARTED_POLL = 0.05
"""Seconds between looks at whether a timed attempt has started (its clock starts then)."""


@dataclasses.dataclass
class Timed:
    """An attempt with a ``timeout_s``, as the dispatcher times it."""

    workflow_id: str
    task_id: str
    attempt: int
    limit: float
    future: Future[TaskOutcome]
    gate: AttemptGate | None
    started: float | None = None
    """When its executor started it (monotonic), once seen."""
    confirmed: bool = False
    """``started`` comes from the worker's own record (executors without ``reports_start``)."""


__all__ = ["Dispatcher"]


class Dispatcher:
    """The attempts of one run that are out, and the ones held back.

    Args:
        executor: where attempts run.
        outcomes: the run's queue; ended attempts are put there.
        build: makes the call of an attempt, with the executor options of its task.
        is_wait: whether a task is a durable wait for the wait service.
    """

    def __init__(
        self,
        executor: Executor,
        outcomes: queue.SimpleQueue[Any],
        build: Callable[[SubmitTask], tuple[TaskCall, Mapping[str, Any]]],
        is_wait: Callable[[str], bool],
        is_async: Callable[[str], bool] = lambda task_id: False,
        started_at: Callable[[str, int], float | None] = lambda task_id, attempt: None,
    ) -> None:
        self.executor = executor
        self._outcomes = outcomes
        self._build = build
        self._is_wait = is_wait
        self._is_async = is_async
        self._started_at = started_at
        self._futures: dict[str, Future[TaskOutcome]] = {}
        self._waits: set[Future[TaskOutcome]] = set()
        """Futures of durable waits (on the wait service, not the executor)."""
        self._backlog: collections.deque[SubmitTask] = collections.deque()
        """Attempts decided but not handed to the executor yet (its max_in_flight is reached)."""
        self._gates: dict[str, AttemptGate] = {}
        self._timed: dict[str, Timed] = {}
        self.stopping: dict[Future[TaskOutcome], tuple[str, bool]] = {}
        """Attempts abandoned or dropped that may still run: future -> (task id, whether its
        gate fences its checkpoint, so that its running on writes nothing)."""

    @property
    def busy(self) -> bool:
        """Whether any attempt is out or held back."""
        return bool(self._futures or self._backlog)

    def submit(self, command: SubmitTask) -> None:
        """Hand an attempt over now, or keep it in order while the executor's window is full."""
        if self._is_wait(command.task_id) or self._is_async(command.task_id):
            self._ship(command)  # on the event loop: takes no executor slot, never held back
            return
        limit = self.executor.max_in_flight
        if limit is not None and (self._backlog or self._in_executor() >= limit):
            self._backlog.append(command)
            return
        self._ship(command)

    def take(self, task_id: str, future: Future[TaskOutcome]) -> bool:
        """Accept the outcome of ``task_id``'s attempt if it is the one expected; refill."""
        if self._futures.get(task_id) is not future:
            return False
        self._forget(task_id)
        self._refill()
        return True

    def _forget(self, task_id: str) -> Future[TaskOutcome]:
        future = self._futures.pop(task_id)
        self._waits.discard(future)
        self._gates.pop(task_id, None)
        self._timed.pop(task_id, None)
        return future

    def _refill(self) -> None:
        limit = self.executor.max_in_flight
        while self._backlog and (limit is None or self._in_executor() < limit):
            self._ship(self._backlog.popleft())

    def _stop(self, task_id: str, error: WorkflowError) -> None:
        """Close the attempt's gate and ask its executor to stop it; keep it while it runs."""
        gate = self._gates.get(task_id)
        is_wait = self._futures[task_id] in self._waits
        future = self._forget(task_id)
        if gate is not None:
            gate.close(error)
        if is_wait:
            cancel_wait(future)
        else:
            self.executor.cancel(future)
        if not future.done():
            self.stopping[future] = (task_id, gate is not None)
            future.add_done_callback(lambda f: self.stopping.pop(f, None))

    def drop_all(self, error: WorkflowError | None = None) -> None:
        """Stop every attempt that is out (``error`` closes their gates) and forget the rest."""
        self._backlog.clear()
        reason = error or WorkflowError("the run stopped")
        for task_id in list(self._futures):
            self._stop(task_id, reason)

    def next_timer(self) -> float | None:
        """Seconds until :meth:`expired` has something to do (None: no timed attempt)."""
        now = time.monotonic()
        soonest: float | None = None
        for timed in self._timed.values():
            due = _UNSTARTED_POLL if timed.started is None else timed.started + timed.limit - now
            soonest = due if soonest is None else min(soonest, due)
        return None if soonest is None else max(0.0, soonest)

    def expired(self) -> list[tuple[Timed, WorkflowTimeoutError]]:
        """Abandon the attempts past their ``timeout_s``: ``(attempt, its timeout error)`` each.

        The caller (the engine) turns each into a failed attempt with a timeout error.
        """
        now = time.monotonic()
        late: list[tuple[Timed, WorkflowTimeoutError]] = []
        for timed in list(self._timed.values()):
            if timed.started is None:
                if timed.future.running() or timed.future.done():
                    timed.started = now
                continue
            if timed.future.done() or now < timed.started + timed.limit:
                continue  # an outcome on its way is taken as it is
            if not timed.confirmed and not self.executor.reports_start:
                self._confirm_start(timed, now)
                if now < timed.started + timed.limit:
                    continue
            gate = timed.gate or AttemptGate(
                timed.workflow_id, timed.task_id, timed.attempt, timed.limit
            )
            late.append((timed, gate.timeout_error(now - timed.started)))
        for timed, error in late:
            self._stop(timed.task_id, error)
        if late:
            self._refill()
        return late

    def _confirm_start(self, timed: Timed, now: float) -> None:
        """Time an attempt from its worker's start, as its attempt record gives it.

        For executors whose futures run from submission (Ray: a cold worker may take seconds
        to start). No record yet: not started (or only just): look again a little later.
        """
        wall = self._started_at(timed.task_id, timed.attempt)
        if wall is None:
            timed.started = now - timed.limit + min(timed.limit, _CONFIRM_POLL)
            return
        timed.confirmed = True
        timed.started = now - max(0.0, time.time() - wall)

    def wait_stopped(self, timeout: float, *, fenced: bool = True) -> list[str]:
        """Wait up to ``timeout`` s for stopped attempts to end; the task ids still running.

        ``fenced`` False waits only for attempts without a gate (killed by their executor),
        which could still write until they are gone.
        """
        futures = [f for f, (_, gated) in list(self.stopping.items()) if fenced or not gated]
        if futures:
            self.executor.wait_stopped(futures, timeout)
        return sorted({task for f, (task, _) in list(self.stopping.items()) if not f.done()})

    def _in_executor(self) -> int:
        return len(self._futures) - len(self._waits)

    def _ship(self, command: SubmitTask) -> None:
        call, options = self._build(command)
        wait = self._is_wait(command.task_id)
        on_loop = not wait and self._is_async(command.task_id)
        gate = None
        if wait or on_loop or self.executor.shares_memory:
            gate = AttemptGate(call.workflow_id, call.task_id, call.attempt, call.timeout_s)
            call.gate = gate
            self._gates[command.task_id] = gate
        try:
            if wait:
                future = submit_wait(call)
                self._waits.add(future)
            elif on_loop:
                future = submit_async(call)
                self._waits.add(future)
            else:
                future = self.executor.submit(execute_task, call, options)
        except Exception as err:  # the executor refused the call (unpicklable, bad options)
            future = Future()
            future.set_exception(err)
        self._futures[command.task_id] = future
        if call.timeout_s is not None and not wait:
            self._timed[command.task_id] = Timed(
                call.workflow_id, command.task_id, command.attempt, call.timeout_s, future, gate
            )
        outcomes = self._outcomes
        task_id, attempt = command.task_id, command.attempt
        future.add_done_callback(lambda f: outcomes.put((task_id, attempt, f)))
