"""The executor plugin interface: ship a call somewhere, get a future back.

Executors never retry: the engine's retry policy decides. They know nothing of storage.
"""

from __future__ import annotations

import abc
import concurrent.futures
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["Executor"]

T = TypeVar("T")
R = TypeVar("R")


class Executor(abc.ABC):
    """Runs ``fn(call)`` for the engine."""

    name: str = "executor"
    shares_memory: bool = False
    """True when calls run in this process, so values pass by reference."""
    reports_start: bool = True
    """True when a call's future turns running just as its worker starts it (so a task's
    ``timeout_s`` is timed from there); False when it turns running at submission (Ray): the
    engine then confirms the start from the attempt's record before it times it out."""
    handles_runtime_env: bool = False
    """True when the executor applies a task's ``runtime_env`` option itself (Ray); else the
    attempt runs the function in a subprocess of that environment."""
    max_in_flight: int | None = None
    """Calls worth handing over at once (a few per worker); the engine keeps the rest until
    earlier ones finish, so that a fan-out of 10,000 does not hold 10,000 pending calls.
    None: no limit (a cluster schedules them itself)."""

    @abc.abstractmethod
    def submit(self, fn: Callable[[T], R], call: T, options: Mapping[str, Any]) -> Future[R]:
        """Start ``fn(call)``; ``options`` are the task's executor options."""

    def cancel(self, future: Future[Any]) -> None:
        """Stop the call if the executor can (a thread cannot be stopped once started).

        A call that cannot be stopped at once ends later: its future completes (with any result
        or error, which nobody reads) when nothing of it runs any more.
        """
        future.cancel()

    def wait_stopped(self, futures: Iterable[Future[Any]], timeout: float) -> None:
        """Wait up to ``timeout`` s until nothing of the calls of ``futures`` (canceled) runs."""
        concurrent.futures.wait(list(futures), timeout)

    def close(self, wait: bool = True) -> None:  # noqa: B027 - optional hook
        """Release workers; ``wait`` for running calls first."""
