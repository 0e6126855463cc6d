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
   inside the task context and the attempt's gate, as an asyncio task: a close of the gate (a
   cancel, the engine's timeout) cancels it (``Task.cancel``); its own ``timeout_s`` is also
   enforced on the loop (``asyncio.wait_for``), so it ends at its deadline even if the engine
   is slow to look;
3. what it returned is checkpointed (step 5 of the attempt, in the storage pool, fenced by the
   gate), or what it raised recorded; a cancellation caused by the gate ends it with the
   gate's error (a system error), any other exception is the task's own.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    with task_context(call.workflow_id, call.task_id), gate_context(gate):
        guarded = _guarded(call.func(*args, **kwargs))
        task = asyncio.ensure_future(asyncio.wait_for(guarded, gate.timeout_s))
    loop = asyncio.get_running_loop()
    gate.on_close(lambda: _cancel_soon(loop, task))
    try:
        ok, result = await task
    except (asyncio.CancelledError, TimeoutError):
        stopped = gate.error
        if stopped is None:  # not ours: the service is closing
            raise
        return await asyncio.wrap_future(pool.submit(attempt.failed, stopped, system=True))
    if not ok:  # the task's own error, whatever its type
        return await asyncio.wrap_future(pool.submit(attempt.stopped_or_failed, result))  # 3
    return await asyncio.wrap_future(pool.submit(attempt.finish, result))  # 3


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
