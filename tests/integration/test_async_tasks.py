"""Async tasks: ``async def`` functions run as coroutines on an event loop.

On the thread executor they share one loop (no executor thread each: a thousand awaiting tasks
finish together); in a process worker each attempt runs on a loop of its own. Retries,
timeouts and cancel work through asyncio cancellation; generator tasks are refused.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from durableflow import Client, WorkflowCancellationError, WorkflowExecutionError, workflow
from durableflow.errors import WorkflowTimeoutError
from durableflow.executors.local import ProcessExecutor, ThreadExecutor
from durableflow.runtime.context import current_task_id
from durableflow.runtime.waits import wait_service
from helpers import wait_until

STARTED: set[str] = set()
CANCELLED: set[str] = set()


@pytest.fixture(autouse=True)
def _reset() -> Any:
    STARTED.clear()
    CANCELLED.clear()
    yield


@workflow.task
async def nap(i: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return i


@workflow.task
def total(*values: int) -> int:
    return sum(values)


@workflow.task
async def whoami() -> tuple[str | None, int, str]:
    await asyncio.sleep(0)
    return current_task_id(), os.getpid(), threading.current_thread().name


@workflow.task
async def flaky(counter: str, fails: int) -> str:
    with open(counter, "a") as f:
        f.write("x")
    if len(Path(counter).read_text()) <= fails:
        raise ValueError("not yet")
    return "ok"


@workflow.task
async def hangs(name: str, counter: str) -> str:
    with open(counter, "a") as f:
        f.write("x")
    STARTED.add(name)
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        CANCELLED.add(name)
        raise
    return "late"


@workflow.task
async def exits() -> None:
    raise SystemExit(3)


def test_a_thousand_sleeping_async_tasks_finish_together(tmp_path: Path) -> None:
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(4)) as client:
        dag = total.bind(*[nap.options(task_id=f"n{i}").bind(i, 1.0) for i in range(1000)])
        start = time.monotonic()
        assert client.run(dag, workflow_id="wf") == sum(range(1000))
        took = time.monotonic() - start
        assert took < 8, took  # one loop: ~1 s of sleeping plus the checkpoints, not 1000/4 s


def test_async_tasks_run_in_their_task_context(tmp_path: Path) -> None:
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2)) as client:
        task_id, pid, thread = client.run(whoami.options(task_id="me").bind(), workflow_id="a")
        assert (task_id, pid, thread) == ("me", os.getpid(), "durableflow-waits")
    with Client(str(tmp_path / "p"), executor=ProcessExecutor(1)) as client:
        task_id, pid, _ = client.run(whoami.options(task_id="me").bind(), workflow_id="b")
        assert task_id == "me" and pid != os.getpid()


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_an_async_task_is_retried(tmp_path: Path, executor: str) -> None:
    counter = str(tmp_path / "count")
    with Client(str(tmp_path / "s"), executor=executor) as client:
        node = flaky.options(max_retries=3, retry_exceptions=True).bind(counter, 2)
        assert client.run(node, workflow_id="wf") == "ok"
        assert Path(counter).read_text() == "xxx"
        with pytest.raises(WorkflowExecutionError) as caught:
            client.run(flaky.options(max_retries=0).bind(str(tmp_path / "c2"), 5), workflow_id="f")
        assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_an_async_task_times_out_through_asyncio(tmp_path: Path, executor: str) -> None:
    counter = str(tmp_path / "count")
    with Client(str(tmp_path / "s"), executor=executor) as client:
        node = hangs.options(timeout_s=0.3, max_retries=1, task_id="h").bind("h", counter)
        start = time.monotonic()
        with pytest.raises(WorkflowExecutionError) as caught:
            client.run(node, workflow_id="wf")
        assert time.monotonic() - start < 10
        assert isinstance(caught.value.__cause__, WorkflowTimeoutError)
        assert Path(counter).read_text() == "xx"
        if executor == "thread":
            wait_until(lambda: "h" in CANCELLED)  # the coroutine itself was cancelled
        assert not client.store.has_output("wf", "h")


def test_cancel_cancels_the_coroutine(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2), cancel_poll=0.05) as client:
        future = client.run_async(hangs.options(task_id="h").bind("h", counter), workflow_id="w")
        wait_until(lambda: "h" in STARTED)
        active = wait_service().active
        client.cancel("w")
        assert "h" in CANCELLED  # cancelled before cancel() returned
        with pytest.raises(WorkflowCancellationError):
            future.result(timeout=10)
        wait_until(lambda: wait_service().active < active)
        assert not client.store.has_output("w", "h")


def test_system_exit_in_an_async_task_fails_it_and_spares_the_loop(tmp_path: Path) -> None:
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2)) as client:
        with pytest.raises(WorkflowExecutionError) as caught:
            client.run(exits.options(max_retries=0).bind(), workflow_id="x")
        assert isinstance(caught.value.__cause__, SystemExit)
        assert client.run(nap.bind(5, 0), workflow_id="after") == 5  # the loop still serves


def test_await_run_async_inside_a_running_loop(tmp_path: Path) -> None:
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2)) as client:

        async def main() -> list[int]:
            runs = [client.run_async(nap.bind(i, 0.2), workflow_id=f"w{i}") for i in range(3)]
            return list(await asyncio.gather(*runs))

        start = time.monotonic()
        assert asyncio.run(main()) == [0, 1, 2]
        assert time.monotonic() - start < 5


def test_generator_tasks_are_refused_at_decoration() -> None:
    def numbers() -> Any:
        yield 1

    async def stream() -> Any:
        yield 1

    with pytest.raises(TypeError, match="numbers is a generator function"):
        workflow.task(numbers)
    with pytest.raises(TypeError, match="stream is an async generator function"):
        workflow.task(stream)
