"""Actor classes of the tests, importable by name (here and in the tests' subprocesses)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from durableflow import workflow
from durableflow.actors import virtual_actor


@virtual_actor
class Counter:
    """The issue's counter."""

    def __init__(self, start: int) -> None:
        self.value = start

    def incr(self, n: int = 1) -> int:
        self.value += n
        return self.value

    @virtual_actor.readonly
    def get(self) -> int:
        return self.value

    def fail(self) -> None:
        self.value = -1000
        raise ValueError("refused")


@virtual_actor
class Log:
    """Appends every call's argument: the state shows the order calls were applied in."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def append(self, item: Any) -> int:
        self.items.append(item)
        return len(self.items)

    @virtual_actor.readonly
    def all(self) -> list[Any]:
        return list(self.items)


@virtual_actor
class Effects:
    """A counter whose mutating method leaves a line in a file each time its body runs."""

    def __init__(self, log: str) -> None:
        self.log = log
        self.value = 0

    def incr(self, n: int = 1, kill_once: str | None = None) -> int:
        with open(self.log, "a") as handle:
            handle.write("incr\n")
        if kill_once is not None and not os.path.exists(kill_once):
            Path(kill_once).touch()
            os.kill(os.getpid(), 9)  # SIGKILL inside the method, the first time only
        self.value += n
        return self.value

    def slow_incr(self, gate: str, started: str) -> int:
        Path(started).touch()
        deadline = time.monotonic() + 60
        while not os.path.exists(gate):
            assert time.monotonic() < deadline, "the test never opened the gate"
            time.sleep(0.005)
        self.value += 1
        return self.value

    @virtual_actor.readonly
    def get(self) -> int:
        return self.value


@workflow.task
def double(x: int) -> int:
    return 2 * x


@workflow.task
def add(a: int, b: int) -> int:
    return a + b


@virtual_actor
class Planner:
    """A method that returns a DAG: the call's result is the sub-workflow's output."""

    def __init__(self) -> None:
        self.value = 1

    def grow(self) -> Any:
        self.value += 1
        return add.bind(double.bind(self.value), 1)

    @virtual_actor.readonly
    def get(self) -> int:
        return self.value
