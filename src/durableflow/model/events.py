"""Durable timers and external events: DAG nodes whose output is an event.

``wait_for_event(Listener, *args)`` is two tasks: the first polls the listener until the event
arrives and is checkpointed like any output; the second tells the listener the event is stored
(``event_checkpointed``, for acknowledging a message queue) and passes the event on. A resumed
workflow never waits again for an event it already received.

``sleep(seconds)`` is three: ``wake_time`` stores the wake-up time first, then a
``TimerListener`` waits for it, so a workflow resumed after a crash wakes at the original time,
not ``seconds`` after the resume (and at once if that time has passed).

What holds a thread while a workflow waits:

- **Thread executor** (the default, and any executor that ``shares_memory``): the polling task
  does not run on the executor. The engine hands it to the process-wide wait service
  (:mod:`durableflow.runtime.waits`): ``async`` listeners — ``TimerListener`` among them — are
  coroutines on ONE event-loop thread, so a thousand sleeping workflows hold no executor thread
  and one loop thread between them, and do not count against the executor's in-flight window.
  A listener whose ``poll_for_event`` is a plain function holds one thread of the service's
  small bounded listener pool (not an executor thread) until it returns; beyond that pool's
  size such listeners queue, so write listeners as ``async`` and never block inside them (a
  blocking ``async`` listener stalls every wait of the process). ``wake_time`` and
  ``event_checkpointed`` are ordinary, short tasks on the executor. Cancel, stop and a lost
  lease stop an ``async`` wait at once; a plain-function listener runs until it returns (its
  event is then dropped).
- **Process and Ray executors**: the polling task is shipped like any task and holds one worker
  (process or Ray task) for the whole wait, running the listener with ``asyncio.run`` there;
  cancel stops it only where the executor can stop a running call.

The engine's own loop thread stays with its workflow while it waits, on every executor.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

from durableflow.model.dag import TaskNode
from durableflow.model.task import task

__all__ = ["EventListener", "TimerListener", "sleep", "wait_for_event"]

_TIMER_RECHECK = 60.0
"""A long timer re-reads the wall clock at least this often (seconds), so a clock step or a
suspended machine delays it by at most this much."""


class EventListener:
    """Subclass it to wait for something outside the workflow (Ray's ``workflow.EventListener``).

    Both methods may be ``async`` (as in Ray) or plain functions; ``async`` ones must not block
    (they share one event loop with every other wait of the process, see the module docstring).
    A listener is created afresh in the task that uses it, so it must not rely on state from
    ``__init__`` arguments.
    """

    async def poll_for_event(self, *args: Any, **kwargs: Any) -> Any:
        """Wait for the event and return it (its value must pickle)."""
        raise NotImplementedError

    async def event_checkpointed(self, event: Any) -> None:
        """Called once the event is stored: acknowledge it at its source here."""


class TimerListener(EventListener):
    """The event of :func:`sleep`: the clock passing a stored wake-up time."""

    async def poll_for_event(self, wake_at: float) -> None:
        """Sleep until ``wake_at`` (Unix time)."""
        while (left := wake_at - time.time()) > 0:
            await asyncio.sleep(min(left, _TIMER_RECHECK))


def _settle(result: Any) -> Any:
    if inspect.isawaitable(result):
        return asyncio.run(_wait(result))
    return result


async def _wait(awaitable: Any) -> Any:
    return await awaitable


@task
def poll_for_event(listener_type: type[EventListener], *args: Any, **kwargs: Any) -> Any:
    """Task: wait for the listener's event.

    On an executor that shares memory the engine does not call this: the wait service runs
    the listener instead (:func:`durableflow.runtime.waits.is_wait` recognises this task).
    """
    return _settle(listener_type().poll_for_event(*args, **kwargs))


@task
def event_checkpointed(listener_type: type[EventListener], event: Any) -> Any:
    """Task: tell the listener its event is stored, and pass the event on."""
    if listener_type.event_checkpointed is not EventListener.event_checkpointed:
        _settle(listener_type().event_checkpointed(event))
    return event


@task
def wake_time(seconds: float) -> float:
    """Task: the Unix time ``seconds`` from now, stored once."""
    return time.time() + seconds


def wait_for_event(listener_type: type[EventListener], *args: Any, **kwargs: Any) -> TaskNode:
    """A node whose output is the next event of ``listener_type`` (polled with ``args``)."""
    if not (isinstance(listener_type, type) and issubclass(listener_type, EventListener)):
        raise TypeError(f"wait_for_event needs an EventListener subclass, got {listener_type!r}")
    return event_checkpointed.bind(
        listener_type, poll_for_event.bind(listener_type, *args, **kwargs)
    )


def sleep(seconds: float) -> TaskNode:
    """A node that finishes ``seconds`` after it first starts, durably (output None)."""
    if not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError(f"sleep needs a number of seconds >= 0, got {seconds!r}")
    return wait_for_event(TimerListener, wake_time.bind(float(seconds)))
