"""RunQueue: the workflows one Client runs, at most ``max_running_workflows`` at a time.

A run is admitted before its lease is claimed: it takes a running slot, or a place in the
queue (PENDING) when every slot is taken, or is refused when the queue is full. A run that
ends frees its slot and starts the next queued one in a thread of its own. The queue holds no
state in storage: a queued run's lease and PENDING record are its claim, and a Client closed
without waiting leaves its queued runs RESUMABLE.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future
from typing import Any

from durableflow.errors import WorkflowError, WorkflowExecutionError, WorkflowQueueFullError
from durableflow.runtime.engine import WorkflowRun

__all__ = ["RunFuture", "RunQueue"]

log = logging.getLogger("durableflow")

Entry = tuple[WorkflowRun, "Future[Any]"]


class RunFuture(Future[Any]):
    """The future of a workflow run, also awaitable.

    Inside a running event loop ``await workflow.run_async(...)`` waits without blocking it.
    """

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self).__await__()


class RunQueue:
    """Admission, queueing and driving of one Client's runs.

    Args:
        max_running: runs at once (None: no limit).
        max_pending: queued runs allowed before admission raises WorkflowQueueFullError.
    """

    def __init__(self, max_running: int | None, max_pending: int | None) -> None:
        self.max_running = max_running
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._active: dict[str, Entry] = {}
        self._queue: collections.deque[Entry] = collections.deque()
        self._running = 0

    def admit(self, workflow_id: str) -> bool:
        """Take a running slot (False) or a place in the queue (True).

        Raises:
            WorkflowQueueFullError: every slot and every queue place is taken.
        """
        with self._lock:
            if self.max_running is None or self._running < self.max_running:
                self._running += 1
                return False
            if self.max_pending is not None and len(self._queue) >= self.max_pending:
                raise WorkflowQueueFullError(
                    f"Workflow queue has been full: cannot queue workflow {workflow_id!r}, "
                    f"{len(self._queue)} workflows already pending "
                    f"(max_pending_workflows={self.max_pending})",
                    workflow_id=workflow_id,
                )
            return True

    def release(self, queued: bool) -> None:
        """Give back what :meth:`admit` took, for a run that will not be launched."""
        if not queued:
            with self._lock:
                self._running -= 1

    def launch(self, run: WorkflowRun, queued: bool, inline: bool) -> Future[Any]:
        """Run ``run`` now (here when ``inline``, else in a thread), or queue it."""
        future: Future[Any] = RunFuture()
        with self._lock:
            self._active[run.workflow_id] = (run, future)
            if queued:
                self._queue.append((run, future))
                return future
        if inline:
            self._drive(run, future)
        else:
            self._thread(run, future)
        return future

    def _thread(self, run: WorkflowRun, future: Future[Any]) -> None:
        threading.Thread(
            target=self._drive,
            args=(run, future),
            daemon=True,
            name=f"durableflow-run-{run.workflow_id[:32]}",
        ).start()

    def _drive(self, run: WorkflowRun, future: Future[Any]) -> None:
        try:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(run.execute())
                except BaseException as err:
                    future.set_exception(err)
        finally:
            with self._lock:
                self._active.pop(run.workflow_id, None)
                self._running -= 1
                nxt = self._queue.popleft() if self._queue else None
                if nxt is not None:
                    self._running += 1
            if nxt is not None:
                self._thread(*nxt)

    def active(self, workflow_id: str) -> Entry | None:
        """The run of ``workflow_id`` this queue holds (running or queued), if any."""
        with self._lock:
            return self._active.get(workflow_id)

    def take_queued(self, workflow_id: str) -> Entry | None:
        """Remove a queued (not yet started) run and return it; None if it is not queued."""
        with self._lock:
            entry = self._active.get(workflow_id)
            if entry is None or entry not in self._queue:
                return None
            self._queue.remove(entry)
            del self._active[workflow_id]
            return entry

    def wait_all(self) -> None:
        """Wait until no run is left (queued runs start as slots free)."""
        while True:
            with self._lock:
                futures = [future for _, future in self._active.values()]
            if not futures:
                return
            concurrent.futures.wait(futures)

    def drain(self) -> tuple[list[Entry], list[Entry]]:
        """Empty the queue: ``(queued runs that will not start, runs still running)``."""
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
            for run, _ in queued:
                self._active.pop(run.workflow_id, None)
            running = list(self._active.values())
        return queued, running


def run_bounded(
    handles: list[tuple[str, Future[Any]]], call: Callable[[str], Any], size: int
) -> None:
    """Fill each future with ``call(workflow_id)`` on at most ``size`` threads, logging progress.

    Used by bulk calls (``resume_all``): thousands of workflows never mean thousands of threads.
    One failing call fills its future with its error and does not stop the others.
    """
    todo: queue.SimpleQueue[tuple[str, Future[Any]]] = queue.SimpleQueue()
    for handle in handles:
        todo.put(handle)
    total = len(handles)
    done = [0]
    step = max(1, total // 10)
    lock = threading.Lock()

    def work() -> None:
        while True:
            try:
                workflow_id, future = todo.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call(workflow_id))
                except BaseException as err:
                    if isinstance(err, WorkflowError) and not isinstance(
                        err, WorkflowExecutionError
                    ):
                        log.warning("%s cannot be resumed: %s", workflow_id, err)
                    future.set_exception(err)
            with lock:
                done[0] += 1
                if done[0] % step == 0 or done[0] == total:
                    log.info("%d of %d workflows done", done[0], total)

    for n in range(min(size, total)):
        threading.Thread(target=work, daemon=True, name=f"durableflow-bulk-{n}").start()
