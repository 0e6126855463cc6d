"""The threads that drive ``run_async`` calls of virtual actors (:mod:`.runtime`)."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

__all__ = ["DriverThreads", "submit"]

log = logging.getLogger("durableflow.actors")


class DriverThreads:
    """Long-lived daemon threads that run the actors' drivers.

    Long-lived because a storage may keep a connection per thread (SQLite does): a thread per
    burst of calls would open and drop one each time. Daemon threads, so that a driver still
    waiting for another process's writer never holds up the interpreter's exit.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on an idle thread, or on a new one."""
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            else:
                threading.Thread(target=self._run, name="durableflow-actor", daemon=True).start()
        self._queue.put(task)

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            try:
                task()
            except Exception:  # _drive reports to its callers; this is a last resort
                log.exception("actor driver failed")
            with self._lock:
                self._idle += 1


_pool = DriverThreads()


def _after_fork() -> None:
    global _pool
    _pool = DriverThreads()  # the parent's threads do not exist in a forked child


os.register_at_fork(after_in_child=_after_fork)


def submit(task: Callable[[], None]) -> None:
    """Run ``task`` on one of this process's driver threads."""
    _pool.submit(task)
