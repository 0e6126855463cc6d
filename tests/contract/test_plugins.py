"""Plugins named by a string: executors (register_executor) beside storage schemes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from durableflow import Client, workflow
from durableflow.client import executors as registry
from durableflow.client.executors import make_executor, register_executor
from durableflow.executors.local import ProcessExecutor, ThreadExecutor


@workflow.task
def double(x: int) -> int:
    return 2 * x


class CountingExecutor(ThreadExecutor):
    """A thread executor that counts the attempts it was given."""

    made: list[CountingExecutor] = []

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0
        self._count_lock = threading.Lock()
        CountingExecutor.made.append(self)

    def submit(self, fn: Callable[[Any], Any], call: Any, options: Mapping[str, Any]) -> Future:
        with self._count_lock:
            self.submitted += 1
        return super().submit(fn, call, options)


@pytest.fixture(autouse=True)
def _registry() -> Iterator[None]:
    saved = dict(registry.EXECUTORS)
    CountingExecutor.made.clear()
    yield
    registry.EXECUTORS.clear()
    registry.EXECUTORS.update(saved)


def test_a_registered_executor_runs_the_tasks_of_a_client_naming_it(tmp_path: Path) -> None:
    register_executor("Counting", CountingExecutor)
    with Client(str(tmp_path / "store"), executor="counting") as client:
        assert client.run(double.bind(double.bind(3)), workflow_id="w") == 12
    (executor,) = CountingExecutor.made
    assert executor.submitted == 2


def test_the_environment_variable_names_a_registered_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register_executor("counting", CountingExecutor)
    monkeypatch.setenv("DURABLEFLOW_EXECUTOR", "COUNTING")
    executor = make_executor(None)
    assert isinstance(executor, CountingExecutor)
    executor.close()


def test_a_lazy_entry_is_imported_only_when_used() -> None:
    register_executor("lazy", "tests_lazy_executor_module:make")
    assert "tests_lazy_executor_module" not in sys.modules
    with pytest.raises(ModuleNotFoundError, match="tests_lazy_executor_module"):
        make_executor("lazy")


def test_the_built_in_names_still_work() -> None:
    for name, cls in (("thread", ThreadExecutor), ("process", ProcessExecutor)):
        executor = make_executor(name)
        assert type(executor) is cls
        executor.close()
    assert registry.EXECUTORS["ray"] == "durableflow.ray.executor:RayExecutor"  # lazy
    instance = ThreadExecutor()
    assert make_executor(instance) is instance
    instance.close()


def test_unknown_names_and_bad_factories_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown executor 'nope'; expected one of .*thread"):
        make_executor("nope")
    with pytest.raises(TypeError, match="must be callable"):
        register_executor("bad", 42)  # type: ignore[arg-type]
    register_executor("not-an-executor", lambda: object())
    with pytest.raises(TypeError, match="not an Executor"):
        make_executor("not-an-executor")
