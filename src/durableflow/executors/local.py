"""The embedded executors: a thread pool (default) and a process pool for CPU-bound tasks."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import cloudpickle

from durableflow.executors.base import Executor

__all__ = ["ProcessExecutor", "ThreadExecutor", "default_workers"]

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Threads for the default pool: enough for I/O-bound branches to overlap."""
    return min(32, (os.cpu_count() or 2) * 4)


class ThreadExecutor(Executor):
    """Runs calls on a thread pool in this process; independent branches run at once.

    Args:
        max_workers: pool size (default: 4 per CPU, at most 32).
    """

    name = "thread"
    shares_memory = True

    def __init__(self, max_workers: int | None = None) -> None:
        workers = max_workers or default_workers()
        self.max_in_flight = 4 * workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="durableflow-task")

    def submit(self, fn: Callable[[T], R], call: T, options: Mapping[str, Any]) -> Future[R]:
        return self._pool.submit(fn, call)

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def _run_pickled(payload: bytes) -> Any:
    fn, call = cloudpickle.loads(payload)
    return fn(call)


class ProcessExecutor(Executor):
    """Runs calls in worker processes (CPU-bound tasks; a crashing task kills only its worker).

    Calls are sent with cloudpickle, so functions defined in ``__main__`` work. A worker that
    dies fails its call with a system error (retried by the engine) and the pool is rebuilt.

    Args:
        max_workers: number of processes (default: the CPU count).
    """

    name = "process"
    shares_memory = False

    def __init__(self, max_workers: int | None = None) -> None:
        self._max_workers = max_workers or os.cpu_count() or 2
        self.max_in_flight = 4 * self._max_workers
        method = "forkserver" if sys.platform.startswith("linux") else "spawn"
        self._context = multiprocessing.get_context(method)
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self._max_workers, mp_context=self._context)

    def submit(self, fn: Callable[[T], R], call: T, options: Mapping[str, Any]) -> Future[R]:
        payload = cloudpickle.dumps((fn, call))
        with self._lock:
            try:
                return self._pool.submit(_run_pickled, payload)
            except BrokenProcessPool:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                return self._pool.submit(_run_pickled, payload)

    def close(self, wait: bool = True) -> None:
        with self._lock:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
