"""Async tasks: ``async def`` task functions, run as coroutines on an event loop.

Where an async task's attempt runs:

- on executors that share the engine's memory (the thread executor), on the process-wide
  event loop of the wait service (:mod:`durableflow.runtime.waits`): ONE loop thread for every
  async attempt of the process, so a thousand tasks awaiting I/O hold no executor thread and
  do not count against the executor's in-flight window; the blocking storage work of each
  attempt (steps 1-2 and 4-6 of :mod:`durableflow.runtime.attempt`, shared through
  :class:`~durableflow.runtime.attempt.TaskAttempt`) runs in the service's storage pool, never
  on the loop. A task that blocks the loop (``time.sleep`` in an ``async def``) delays every
  other async task of the process: that is asyncio's rule, and the reason to ``await``;
- in a worker process, or on Ray, :func:`~durableflow.runtime.attempt.execute_task` runs the
  coroutine on a new loop of that worker (``asyncio.run``), which it holds until it ends.

Steps of one attempt on the loop:

1. follow the attempt and resolve its arguments (storage pool);
2. mark the future running (a ``timeout_s`` counts from here), then create the coroutine
   inside the task context (with the attempt's ``call``: its log capture and span, as for a
   sync task) and the attempt's gate, entered in a ``contextvars`` context of its own that its
   asyncio task runs in, so they last as long as the coroutine; a close of the gate (a cancel,
   the engine's timeout) cancels it (``Task.cancel``); its own ``timeout_s`` is also enforced
   on the loop (``asyncio.wait_for``), so it ends at its deadline even if the engine is slow
   to look. A call that raises at once (wrong arguments) is the task's own error;
3. in the storage pool: the task context is left (the captured log is stored, the span ended
   with the outcome), then what it returned is checkpointed (step 5 of the attempt, fenced by
   the gate), or what it raised recorded; a cancellation caused by the gate ends it with the
   gate's error (a system error), any other exception is the task's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
from collections.abc import Coroutine
from concurrent.futures import Future, InvalidStateError
from typing import Any

from durableflow.model.calls import TaskCall, TaskOutcome
from durableflow.model.task import TaskFunction
from durableflow.runtime.attempt import TaskAttempt, store_for
from durableflow.runtime.context import task_context
from durableflow.runtime.gates import gate_context
from durableflow.runtime.waits import wait_service

__all__ = ["is_async", "submit_async"]


def is_async(func: Any) -> bool:
    """Whether ``func`` (a spec's function, or its ``@task`` wrapper) is an ``async def``."""
    if isinstance(func, TaskFunction):
        func = func.func
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    if inspect.isroutine(func) or isinstance(func, type):
        return False
    return inspect.iscoroutinefunction(type(func).__call__)  # an object with an async __call__


def submit_async(call: TaskCall) -> Future[TaskOutcome]:
    """Run one attempt of an async task on the process's event loop (module docstring)."""
    future: Future[TaskOutcome] = Future()
    service = wait_service()
    running = asyncio.run_coroutine_threadsafe(_attempt(call, future), service.loop())
    service.track(running)
    return future


async def _attempt(call: TaskCall, future: Future[TaskOutcome]) -> None:
    attempt = TaskAttempt(call)
    pool = wait_service().storage_pool
    try:
        outcome = await _steps(call, future, attempt, pool)
    except BaseException as err:  # a bug of ours, or the service closed: the engine retries
        with contextlib.suppress(InvalidStateError):
            future.set_exception(err)
        if isinstance(err, (asyncio.CancelledError, GeneratorExit)):
            raise
        return
    with contextlib.suppress(InvalidStateError):
        future.set_result(outcome)


async def _steps(
    call: TaskCall, future: Future[TaskOutcome], attempt: TaskAttempt, pool: Any
) -> TaskOutcome:
    """Steps 1-3 of the module docstring."""
    try:
        args, kwargs = await asyncio.wrap_future(pool.submit(attempt.begin, store_for))  # 1
    except Exception as err:  # storage, a lost input: a system error
        return await asyncio.wrap_future(pool.submit(attempt.failed, err, system=True))
    gate = attempt.gate
    if not future.set_running_or_notify_cancel():  # 2: canceled before it started
        reason: BaseException = gate.error or asyncio.CancelledError()
        return await asyncio.wrap_future(pool.submit(attempt.failed, reason, system=True))
    gate.begin()  # its deadline runs from here, not from the storage work before
    scope = _Scope(call, gate)
    try:
        guarded = scope.context.run(scope.enter, args, kwargs)
    except BaseException as err:  # calling it raised (wrong arguments): the task's own error
        ended = pool.submit(scope.exit_then, None, attempt.stopped_or_failed, err)
        return await asyncio.wrap_future(ended)
    loop = asyncio.get_running_loop()
    # Created inside the scope's context: the asyncio task runs in a copy of it.
    task = scope.context.run(asyncio.ensure_future, asyncio.wait_for(guarded, gate.timeout_s))
    gate.on_close(lambda: _cancel_soon(loop, task))
    try:
        ok, result = await task
    except (asyncio.CancelledError, TimeoutError) as err:
        stopped = gate.error
        if stopped is None:  # not ours: the service is closing
            scope.exit_then(err, lambda: None)
            raise
        ended = pool.submit(scope.exit_then, stopped, attempt.failed, stopped, system=True)
        return await asyncio.wrap_future(ended)
    if not ok:  # the task's own error, whatever its type
        ended = pool.submit(scope.exit_then, result, attempt.stopped_or_failed, result)  # 3
        return await asyncio.wrap_future(ended)
    return await asyncio.wrap_future(pool.submit(scope.exit_then, None, attempt.finish, result))


class _Scope:
    """The attempt's task context, around its coroutine only (step 2 of the module docstring).

    Entered in a context of its own, which its asyncio task runs in (a copy), so what the coroutine
    prints or logs is captured into the attempt's log and its span is current while it runs, as
    for a sync task (:func:`~durableflow.runtime.context.task_context` with the ``call``). It is
    left in the storage pool, never on the loop: ending the capture stores the log.
    """

    def __init__(self, call: TaskCall, gate: Any) -> None:
        self.call = call
        self.gate = gate
        self.context = contextvars.copy_context()
        self._stack = contextlib.ExitStack()

    def enter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Coroutine[Any, Any, Any]:
        """Open the task context and the gate's; create the coroutine inside them."""
        call = self.call
        self._stack.enter_context(task_context(call.workflow_id, call.task_id, call=call))
        self._stack.enter_context(gate_context(self.gate))
        try:
            return _guarded(call.func(*args, **kwargs))
        except BaseException as err:  # left here, in this context: the span records it
            stack, self._stack = self._stack, contextlib.ExitStack()
            stack.__exit__(type(err), err, err.__traceback__)
            raise

    def exit_then(self, error: BaseException | None, then: Any, *args: Any, **kwargs: Any) -> Any:
        """Leave the scope (the span records ``error``), then ``then(*args, **kwargs)``."""
        stack, self._stack = self._stack, contextlib.ExitStack()
        kind = None if error is None else type(error)
        trace = None if error is None else error.__traceback__
        with contextlib.suppress(Exception):  # the error is the caller's to record
            self.context.run(stack.__exit__, kind, error, trace)
        return then(*args, **kwargs)


def _cancel_soon(loop: asyncio.AbstractEventLoop, task: asyncio.Future[Any]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed: nothing runs any more
        loop.call_soon_threadsafe(task.cancel)


async def _guarded(coroutine: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Await the task's coroutine; what it raises (SystemExit too) comes back as a value.

    asyncio lets a ``KeyboardInterrupt`` or ``SystemExit`` raised in a task stop the whole
    loop; here it is the task's error, as in a thread. Only a cancellation propagates.
    """
    try:
        return True, await coroutine
    except asyncio.CancelledError:
        raise
    except BaseException as err:
        return False, err
