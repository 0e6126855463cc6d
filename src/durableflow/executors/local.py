"""The embedded executors: a thread pool (default) and a process pool for CPU-bound tasks."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection, wait
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


_STARTED = b"started"
"""What a worker sends when it starts running a call (its result follows)."""


class _Worker:
    """One worker process and the call it runs (None while idle)."""

    __slots__ = ("conn", "conn_closed", "future", "killed", "process")

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.future: Future[Any] | None = None
        self.killed = False
        self.conn_closed = False


def _worker_main(conn: Connection) -> None:
    """A worker process: run ``fn(call)`` for each payload received, send back the result."""
    while True:
        try:
            payload = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not payload:
            return  # the pool closes
        try:
            fn, call = cloudpickle.loads(payload)
            conn.send_bytes(_STARTED)  # the call's clock (its timeout_s) starts now
            result: tuple[str, Any] = ("ok", fn(call))
        except BaseException as err:  # handed back to the engine, which decides
            result = ("error", err)
        try:
            data = cloudpickle.dumps(result)
        except Exception as err:
            data = cloudpickle.dumps(("error", RuntimeError(f"result cannot be pickled: {err}")))
        conn.send_bytes(data)


class ProcessExecutor(Executor):
    """Runs calls in worker processes (CPU-bound tasks; a crashing task kills only its worker).

    Calls are sent with cloudpickle, so functions defined in ``__main__`` work. Each worker runs
    one call at a time; a worker that dies fails its call with a system error (retried by the
    engine) and is replaced. :meth:`cancel` of a running call kills its worker (SIGKILL), and
    only that one: this is how a cancel or a timeout stops a process task.

    Args:
        max_workers: number of processes (default: the CPU count), started as calls come.
    """

    name = "process"
    shares_memory = False

    def __init__(self, max_workers: int | None = None) -> None:
        self._max_workers = max_workers or os.cpu_count() or 2
        self.max_in_flight = 4 * self._max_workers
        method = "forkserver" if sys.platform.startswith("linux") else "spawn"
        self._context: Any = multiprocessing.get_context(method)
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[Future[Any], bytes]] = collections.deque()
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._closed = False
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._watcher: threading.Thread | None = None

    def submit(self, fn: Callable[[T], R], call: T, options: Mapping[str, Any]) -> Future[R]:
        payload = cloudpickle.dumps((fn, call))
        future: Future[R] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the process executor is closed")
            self._queue.append((future, payload))
            self._assign()
        return future

    def cancel(self, future: Future[Any]) -> None:
        """Cancel a queued call; kill the worker of a running one (its future then fails)."""
        with self._lock:
            for item in self._queue:
                if item[0] is future:
                    self._queue.remove(item)
                    break
            for worker in self._workers:
                if worker.future is future and not worker.killed:
                    worker.killed = True
                    with contextlib.suppress(OSError, ValueError):
                        worker.process.kill()
        future.cancel()

    def close(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
            queued = [f for f, _ in self._queue]
            if not wait:
                self._queue.clear()
        if wait:
            pending = queued + [w.future for w in list(self._workers) if w.future is not None]
            concurrent.futures.wait(pending)
        else:
            for future in queued:
                future.cancel()
        with self._lock:
            workers, self._workers, self._idle = list(self._workers), [], []
        for worker in workers:
            if worker.future is None and wait:
                with contextlib.suppress(OSError):
                    worker.conn.send_bytes(b"")
            else:
                with contextlib.suppress(OSError, ValueError):
                    worker.process.kill()
        for worker in workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)
        self._wake()
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(5)
        for worker in workers:
            self._close_conn(worker)

    # --- inside -------------------------------------------------------------------------
    def _assign(self) -> None:
        """Hand queued calls to idle (or new) workers; under the lock."""
        while self._queue:
            if self._idle:
                worker = self._idle.pop()
            elif len(self._workers) < self._max_workers:
                worker = self._spawn()
            else:
                return
            future, payload = self._queue.popleft()
            if future.cancelled():
                self._idle.append(worker)
                continue
            worker.future = future  # running once the worker says it started
            # a worker that died meanwhile: the watcher sees its sentinel and fails the call
            with contextlib.suppress(OSError):
                worker.conn.send_bytes(payload)

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main, args=(child,), name="durableflow-process-worker", daemon=True
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self._workers.append(worker)
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(
                target=self._watch, name="durableflow-process-watcher", daemon=True
            )
            self._watcher.start()
        else:
            self._wake()
        return worker

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"w")

    def _watch(self) -> None:
        """Collect results and notice dead workers (one thread per executor)."""
        while True:
            with self._lock:
                workers = list(self._workers)
                if self._closed and not workers:
                    return
            by_conn = {w.conn: w for w in workers if w.future is not None and not w.conn_closed}
            by_sentinel = {w.process.sentinel: w for w in workers}
            try:
                ready = wait([self._wake_r, *by_conn, *by_sentinel], timeout=1.0)
            except (OSError, ValueError):  # a worker closed under us: look again
                continue
            if self._wake_r in ready:
                while self._wake_r.poll():
                    self._wake_r.recv_bytes()
            for item in ready:
                if item in by_conn:
                    self._collect(by_conn[item])
            for item in ready:
                if item in by_sentinel and by_sentinel[item].future is not None:
                    self._lost(by_sentinel[item])
                elif item in by_sentinel:
                    self._forget(by_sentinel[item])

    def _collect(self, worker: _Worker) -> None:
        try:
            data = worker.conn.recv_bytes()
            if data == _STARTED:
                future = worker.future
                if future is not None and not future.set_running_or_notify_cancel():
                    self.cancel(future)  # canceled while it was on its way: kill it
                return
            kind, value = cloudpickle.loads(data)
        except (EOFError, OSError):
            self._lost(worker)
            return
        except Exception as err:  # a result that does not unpickle here
            kind, value = "error", err
        with self._lock:
            future, worker.future = worker.future, None
            if worker in self._workers and not worker.killed:
                self._idle.append(worker)
            self._assign()
        if future is not None:
            _settle(future, kind, value)

    def _lost(self, worker: _Worker) -> None:
        """The worker died running a call (killed by :meth:`cancel`, or crashed)."""
        with contextlib.suppress(Exception):
            worker.process.join(1)
        code = worker.process.exitcode
        future = worker.future
        worker.future = None
        self._forget(worker)
        if future is None:
            return
        why = "it was stopped (cancel or timeout)" if worker.killed else f"exit code {code}"
        _settle(future, "error", BrokenProcessPool(f"a worker process died running a task: {why}"))

    def _forget(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            if not self._closed:
                self._assign()
        self._close_conn(worker)

    def _close_conn(self, worker: _Worker) -> None:
        with self._lock:  # once: a second close could close a file descriptor reused since
            if worker.conn_closed:
                return
            worker.conn_closed = True
        with contextlib.suppress(OSError):
            worker.conn.close()


def _settle(future: Future[Any], kind: str, value: Any) -> None:
    with contextlib.suppress(InvalidStateError):
        if kind == "ok":
            future.set_result(value)
        else:
            future.set_exception(value)
