"""The wait service: durable waits (``sleep``, ``wait_for_event``) that hold no executor thread.

Both end in the ``poll_for_event`` task of :mod:`durableflow.model.events`. On an executor that
shares memory with the engine (the thread executor: ``executor.shares_memory``) the engine does
not ship that task to the executor; it calls :func:`submit_wait`, and this process-wide service
runs it:

- ONE event-loop thread (a daemon, started on the first wait and started afresh in a forked
  child) runs every ``async`` listener's ``poll_for_event`` as a coroutine, ``TimerListener``
  among them: a thousand sleeping workflows are a thousand timers on one loop, not a thousand
  sleeping threads, and they do not count against the executor's in-flight window;
- a bounded pool of :data:`LISTENER_THREADS` daemon threads runs listeners whose
  ``poll_for_event`` is a plain function: each holds one of these threads (never an executor
  thread) until it returns, and more of them wait their turn;
- a bounded pool of :data:`STORAGE_THREADS` daemon threads does the blocking storage work:
  reading inputs and writing the event's checkpoint.

On process and Ray executors (``shares_memory`` False) the engine keeps shipping the task to the
executor: the worker is another process, which this loop cannot serve, and it holds that worker
while it waits (see :mod:`durableflow.model.events`).

One wait, as numbered steps: those of :func:`~durableflow.runtime.attempt.execute_task`, with
the attempt record's protocol of :mod:`durableflow.storage.attempts` (steps 1-2 and 4-6 are the
same code, :class:`~durableflow.runtime.attempt.TaskAttempt`); storage work runs in the storage
pool, never on the loop:

1. follow the attempt (``begin_attempt``): a wait that lasts is recorded RUNNING
   (``attempts/<tid>``), so readers show it and a crash counts it;
2. resolve the arguments: upstream outputs from ``call.inputs``, the others read from storage;
   a storage error or a missing input is a system error, retried by the engine;
3. await the listener's event inside the task context (on the loop; in the listener pool for a
   plain function); a timer sleeps until the wake-up time that ``wake_time`` stored, so a
   resumed workflow wakes at the original time;
4. a returned DAG or ``Continuation`` goes back to the engine (record CONTINUED);
5. else the event is checkpointed create-only with header ``start``, ``end``, ``attempt``; if
   another runner's checkpoint won, its value is used, so both go on with it;
6. a failure is recorded FAILED (whatever the listener raised, as for a task's function) or
   ERROR (storage), and returned;
7. the future gets a :class:`~durableflow.model.calls.TaskOutcome` shaped as
   ``execute_task``'s (``value`` only when ``call.return_value``).

A crash before step 5 lands leaves no checkpoint (and a RUNNING attempt record, read as lost):
the resume waits again, a timer until the same stored time, so it does not sleep twice. After
it, the resume finds the event stored and never waits again. Canceling the future
(:func:`cancel_wait` or ``Future.cancel``, as the engine does on cancel, stop and a lost lease)
stops the coroutine at its next ``await``: an ``async`` wait ends at once; a plain-function
listener runs on until it returns, its event dropped. A checkpoint being written when the
cancel comes may still land: harmless (create-only; a later run uses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, InvalidStateError
from typing import Any

from durableflow.errors import SerializationError, StorageError
from durableflow.model.calls import TaskCall, TaskOutcome
from durableflow.model.events import poll_for_event
from durableflow.model.task import TaskFunction
from durableflow.runtime.attempt import TaskAttempt
from durableflow.runtime.context import task_context
from durableflow.storage.serializer import Serializer
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage

__all__ = [
    "LISTENER_THREADS",
    "STORAGE_THREADS",
    "WaitService",
    "active_waits",
    "cancel_wait",
    "is_wait",
    "submit_wait",
    "wait_service",
]

LISTENER_THREADS = 4
"""Threads for listeners whose ``poll_for_event`` is a plain function (at most this many poll
at once in a process; the others queue)."""
STORAGE_THREADS = 16
"""Threads for the waits' storage reads and checkpoint writes."""

_POLL = poll_for_event.func


def is_wait(func: Any) -> bool:
    """Whether ``func`` (a spec's function, or its ``@task`` wrapper) is the event-polling task."""
    if isinstance(func, TaskFunction):
        func = func.func
    if func is _POLL:
        return True
    # A copy pickled by value (not by reference) is still the same task.
    return bool(
        getattr(func, "__module__", None) == _POLL.__module__
        and getattr(func, "__qualname__", None) == _POLL.__qualname__
    )


class _DaemonPool(Executor):
    """A bounded pool of daemon threads, started as calls come.

    Unlike ``ThreadPoolExecutor`` its threads never hold up the interpreter's exit: a listener
    that polls forever must not keep a finished program alive.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], Any, Any]]
        self._calls = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def threads(self) -> int:
        """Threads started so far (never more than the size)."""
        return len(self._threads)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Queue ``fn(*args, **kwargs)``."""
        future: Future[Any] = Future()
        self._calls.put((future, fn, args, kwargs))
        with self._lock:
            if len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            future, fn, args, kwargs = self._calls.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as err:  # handed to the waiting coroutine, which decides
                future.set_exception(err)
            else:
                future.set_result(result)


class WaitService:
    """One event loop thread for the waits of this process, and two small thread pools.

    Use the process-wide instance (:func:`wait_service`); a separate one is for tests.
    """

    def __init__(
        self, listener_threads: int = LISTENER_THREADS, storage_threads: int = STORAGE_THREADS
    ) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listeners = _DaemonPool(listener_threads, "durableflow-wait-listener")
        self._storage = _DaemonPool(storage_threads, "durableflow-wait-storage")
        self._active = 0
        self._closed = False
        self._stores: dict[tuple[str, bytes | None], WorkflowStore] = {}

    @property
    def active(self) -> int:
        """Waits submitted and not finished yet."""
        return self._active

    @property
    def threads(self) -> int:
        """OS threads this service has started (the loop's and both pools')."""
        loop = 1 if self._thread is not None else 0
        return loop + self._listeners.threads + self._storage.threads

    @property
    def storage_pool(self) -> Executor:
        """The pool that does the blocking storage work of the attempts on the loop."""
        return self._storage

    def loop(self) -> asyncio.AbstractEventLoop:
        """The service's event loop (started on first use)."""
        return self._running_loop()

    def track(self, running: Future[Any]) -> None:
        """Count ``running`` (a coroutine on the loop) as active until it ends."""
        with self._lock:
            self._active += 1
        running.add_done_callback(self._finished)

    def submit(self, call: TaskCall) -> Future[TaskOutcome]:
        """Start one wait (steps 1-7 of the module docstring); its future never raises early.

        Raises:
            ValueError: ``call`` is not a call of the event-polling task.
        """
        if not is_wait(call.func):
            raise ValueError(f"task {call.task_id!r} is not a durable wait")
        future: Future[TaskOutcome] = Future()
        loop = self._running_loop()
        with self._lock:
            self._active += 1
        running = asyncio.run_coroutine_threadsafe(self._wait(call, future), loop)
        running.add_done_callback(self._finished)
        future.add_done_callback(lambda f: running.cancel() if f.cancelled() else None)
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Stop the loop; its waits end with a CancelledError (the pools' threads stay idle)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            self._closed = True
        if loop is None or thread is None:
            return

        async def cancel_all() -> None:
            waits = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for running in waits:
                running.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()

    def _finished(self, _: Any) -> None:
        with self._lock:
            self._active -= 1

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_run_forever, args=(loop,), name="durableflow-waits", daemon=True
                )
                thread.start()
                self._loop, self._thread, self._closed = loop, thread, False
            return self._loop

    async def _wait(self, call: TaskCall, future: Future[TaskOutcome]) -> None:
        try:
            outcome = await self._attempt(call, future, TaskAttempt(call))
            if outcome is not None:
                _complete(future, outcome)  # 7
        except asyncio.CancelledError as err:
            if not future.done():  # the service closed under it: the engine retries
                _fail_future(future, err)
            raise
        except GeneratorExit:
            raise
        except BaseException as err:  # a bug of ours: fail the attempt as a lost worker would
            _fail_future(future, err)

    async def _attempt(
        self, call: TaskCall, future: Future[TaskOutcome], attempt: TaskAttempt
    ) -> TaskOutcome | None:
        """Steps 1-6 (module docstring); None if the wait was canceled meanwhile.

        Steps 1-2 and 4-6 are ``execute_task``'s own (:class:`TaskAttempt`), run in the storage
        pool; only step 3 is the wait's.
        """
        storage = self._storage
        try:
            begun = storage.submit(attempt.begin, self._store_for)
            args, kwargs = await asyncio.wrap_future(begun)  # 1, 2
        except (StorageError, SerializationError, KeyError) as err:
            return await asyncio.wrap_future(storage.submit(attempt.failed, err, system=True))  # 6
        try:
            event = await self._poll(call, args, kwargs)  # 3
        except asyncio.CancelledError as err:
            if future.cancelled() or self._closed:
                raise  # canceled by cancel_wait or close, not by the listener
            return await asyncio.wrap_future(storage.submit(attempt.failed, err, system=False))  # 6
        except GeneratorExit:
            raise
        except BaseException as err:  # the listener's own errors, whatever their type
            return await asyncio.wrap_future(storage.submit(attempt.failed, err, system=False))  # 6
        if future.cancelled():
            return None
        return await asyncio.wrap_future(storage.submit(attempt.finish, event))  # 4, 5

    def _store_for(self, call: TaskCall) -> WorkflowStore:
        if call.store is not None:
            store: WorkflowStore = call.store
            return store
        if call.store_url is None:
            raise StorageError(
                "a wait needs a store or a store URL",
                workflow_id=call.workflow_id,
                task_id=call.task_id,
            )
        key = (call.store_url, call.signing_key)
        with self._lock:
            if key not in self._stores:
                storage = open_storage(call.store_url)
                self._stores[key] = WorkflowStore(storage, Serializer(call.signing_key))
            return self._stores[key]

    async def _poll(self, call: TaskCall, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Step 3: the arguments of ``poll_for_event(listener_type, *args, **kwargs)``."""
        if args:
            listener_type, rest = args[0], args[1:]
        else:
            kwargs = dict(kwargs)
            listener_type, rest = kwargs.pop("listener_type"), ()
        with task_context(call.workflow_id, call.task_id):
            method = listener_type().poll_for_event
            if inspect.iscoroutinefunction(method):
                return await method(*rest, **kwargs)
            pending = self._listeners.submit(_call_in_context, call, method, rest, kwargs)
            result = await asyncio.wrap_future(pending)
            if inspect.isawaitable(result):
                return await result
            return result


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


def _call_in_context(
    call: TaskCall, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    with task_context(call.workflow_id, call.task_id):
        return method(*args, **kwargs)


def _complete(future: Future[TaskOutcome], outcome: TaskOutcome) -> None:
    with contextlib.suppress(InvalidStateError):  # canceled meanwhile: nobody waits for it
        future.set_result(outcome)


def _fail_future(future: Future[TaskOutcome], error: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):
        future.set_exception(error)


_SERVICE: WaitService | None = None
_SERVICE_LOCK = threading.Lock()


def wait_service() -> WaitService:
    """The process-wide wait service (created on first use; afresh in a forked child)."""
    global _SERVICE
    with _SERVICE_LOCK:
        if _SERVICE is None:
            _SERVICE = WaitService()
        return _SERVICE


def _forget_after_fork() -> None:
    """In a forked child the loop and pool threads do not exist: start a new service there."""
    global _SERVICE, _SERVICE_LOCK
    _SERVICE = None
    _SERVICE_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def submit_wait(call: TaskCall) -> Future[TaskOutcome]:
    """Run one attempt of the event-polling task on the wait service (module docstring).

    Only for executors that share memory (``call.store`` set); the engine ships the task to
    process and Ray executors as any other.
    """
    return wait_service().submit(call)


def cancel_wait(future: Future[Any]) -> bool:
    """Stop a wait (its coroutine ends at its next ``await``); False if it already finished."""
    return future.cancel()


def active_waits() -> int:
    """Waits of this process not finished yet."""
    return 0 if _SERVICE is None else _SERVICE.active
