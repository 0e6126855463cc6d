"""Timeouts, cancel and async tasks on the Ray executor.

A hanging Ray task past its ``timeout_s`` is canceled (KeyboardInterrupt, then killed after the
executor's grace), recorded with a ``WorkflowTimeoutError``, retried, then fails; an ``async
def`` task runs on an event loop of its Ray worker (Ray refuses ``async def`` remote functions
and asks for exactly that); cancel returns once the Ray task ended, with no checkpoint after.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from durableflow import (
    Client,
    WorkflowCancellationError,
    WorkflowExecutionError,
    WorkflowStatus,
    workflow,
)
from durableflow.errors import WorkflowTimeoutError


@pytest.fixture
def client(storage_dir: Path) -> Iterator[Client]:
    c = Client(str(storage_dir), executor="ray", cancel_poll=0.05)
    yield c
    c.close(wait=False)


@workflow.task
def hangs(pids: str) -> int:
    with open(pids, "a") as f:
        f.write(f"{os.getpid()}\n")
    while True:  # no sleep: only a kill stops it quickly
        time.sleep(0.01)


@workflow.task
async def async_nap(x: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return x + 1


@workflow.task
async def async_hangs(counter: str) -> int:
    with open(counter, "a") as f:
        f.write("x")
    await asyncio.sleep(60)
    return 0


def test_a_hanging_ray_task_times_out_is_retried_then_fails(client: Client, tmp_path: Path) -> None:
    pids = str(tmp_path / "pids")
    node = hangs.options(timeout_s=1.0, max_retries=1, task_id="h").bind(pids)
    start = time.monotonic()
    with pytest.raises(WorkflowExecutionError) as caught:
        client.run(node, workflow_id="hang")
    assert time.monotonic() - start < 60
    cause = caught.value.__cause__
    assert isinstance(cause, WorkflowTimeoutError) and cause.task_id == "h"
    assert len(Path(pids).read_text().split()) == 2  # the first attempt and its retry
    assert client.get_status("hang") is WorkflowStatus.FAILED
    assert not (Path(str(tmp_path)) / "never").exists()


def test_async_tasks_run_on_ray_and_time_out(client: Client, tmp_path: Path) -> None:
    dag = async_nap.bind(async_nap.bind(1, 0.05), 0.05)
    assert client.run(dag, workflow_id="naps") == 3
    counter = str(tmp_path / "count")
    node = async_hangs.options(timeout_s=0.5, max_retries=1).bind(counter)
    with pytest.raises(WorkflowExecutionError) as caught:
        client.run(node, workflow_id="async-hang")
    assert isinstance(caught.value.__cause__, WorkflowTimeoutError)
    assert Path(counter).read_text() == "xx"


def test_cancel_returns_after_the_ray_task_ended(client: Client, tmp_path: Path) -> None:
    pids = str(tmp_path / "pids")
    ref = client.run_async(hangs.options(task_id="h").bind(pids), workflow_id="c")
    deadline = time.monotonic() + 60
    while not os.path.exists(pids):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    client.cancel("c")
    assert client.get_status("c") is WorkflowStatus.CANCELED
    with pytest.raises(WorkflowCancellationError):
        _result(ref)
    time.sleep(0.3)
    assert not client.store.has_output("c", "h")


def _result(ref: object) -> object:
    import ray

    if isinstance(ref, ray.ObjectRef):
        return ray.get(ref)
    return ref.result(timeout=60)  # type: ignore[attr-defined]


@workflow.task
def naps(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def test_a_workflow_timeout_on_the_ray_runner_fails_it_on_the_coordinator(
    storage_dir: Path,
) -> None:
    """``run(timeout_s=)`` reaches the coordinator that runs the workflow (the Ray runner)."""
    with Client(str(storage_dir), runner="ray") as ray_client:
        start = time.monotonic()
        with pytest.raises(WorkflowExecutionError) as caught:
            ray_client.run(naps.bind(30), workflow_id="ray-limit", timeout_s=1.0)
        assert time.monotonic() - start < 25
        assert isinstance(caught.value.__cause__, WorkflowTimeoutError)
        assert ray_client.get_status("ray-limit") is WorkflowStatus.FAILED
        assert ray_client.store.read_run("ray-limit").extra["timeout_s"] == 1.0
