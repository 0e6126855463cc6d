"""Dispatcher: hands a run's task attempts to the executor or the wait service.

The engine decides *what* runs (``core.decide``); the dispatcher decides *where and when*:

- a durable wait (``workflow.sleep``, ``wait_for_event``) on an executor that shares memory goes
  to the wait service at once and takes no executor slot (:mod:`durableflow.runtime.waits`);
- any other attempt goes to the executor while fewer than ``executor.max_in_flight`` of its
  attempts are out, else it waits in order in a backlog;
- each attempt's future reports ``(task_id, attempt, future)`` on the run's outcome queue when
  it ends; :meth:`Dispatcher.take` accepts only the outcome of the attempt still expected.
"""

from __future__ import annotations

import collections
import queue
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from durableflow.core.machine import SubmitTask
from durableflow.executors.base import Executor
from durableflow.model.calls import TaskCall, TaskOutcome
from durableflow.runtime.attempt import execute_task
from durableflow.runtime.waits import cancel_wait, submit_wait

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
    ) -> None:
        self.executor = executor
        self._outcomes = outcomes
        self._build = build
        self._is_wait = is_wait
        self._futures: dict[str, Future[TaskOutcome]] = {}
        self._waits: set[Future[TaskOutcome]] = set()
        """Futures of durable waits (on the wait service, not the executor)."""
        self._backlog: collections.deque[SubmitTask] = collections.deque()
        """Attempts decided but not handed to the executor yet (its max_in_flight is reached)."""

    @property
    def busy(self) -> bool:
        """Whether any attempt is out or held back."""
        return bool(self._futures or self._backlog)

    def submit(self, command: SubmitTask) -> None:
        """Hand an attempt over now, or keep it in order while the executor's window is full."""
        if self._is_wait(command.task_id):
            self._ship(command)  # a durable wait takes no executor slot: never held back
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
        del self._futures[task_id]
        self._waits.discard(future)
        limit = self.executor.max_in_flight
        while self._backlog and (limit is None or self._in_executor() < limit):
            self._ship(self._backlog.popleft())
        return True

    def drop_all(self) -> None:
        """Cancel every attempt that is out and forget the held-back ones."""
        self._backlog.clear()
        for future in self._futures.values():
            if future in self._waits:
                cancel_wait(future)
            else:
                self.executor.cancel(future)
        self._futures.clear()
        self._waits.clear()

    def _in_executor(self) -> int:
        return len(self._futures) - len(self._waits)

    def _ship(self, command: SubmitTask) -> None:
        call, options = self._build(command)
        try:
            if self._is_wait(command.task_id):
                future = submit_wait(call)
                self._waits.add(future)
            else:
                future = self.executor.submit(execute_task, call, options)
        except Exception as err:  # the executor refused the call (unpicklable, bad options)
            future = Future()
            future.set_exception(err)
        self._futures[command.task_id] = future
        outcomes = self._outcomes
        task_id, attempt = command.task_id, command.attempt
        future.add_done_callback(lambda f: outcomes.put((task_id, attempt, f)))
