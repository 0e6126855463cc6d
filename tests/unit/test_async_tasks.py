"""Async tasks: their output captured in the attempt's log, awaiting a run from a loop.

What an ``async def`` task prints or logs goes to its attempt's log as a sync task's does, on
the shared event loop of the thread executor (where many attempts interleave) and in a worker
process; ``await workflow.run_async(...)`` works from inside a running event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from durableflow import Client, workflow
from durableflow.executors.local import ProcessExecutor, ThreadExecutor
from durableflow.runtime.logs import get_logs

log = logging.getLogger("tests.async_tasks")


@workflow.task
async def chatty(name: str, pause: float) -> str:
    print(f"{name} before")
    await asyncio.sleep(pause)  # the others print meanwhile, on the same loop
    log.warning("%s logged", name)
    print(f"{name} after")
    return name


@workflow.task
async def chatty_fails(counter: str) -> str:
    with open(counter, "a") as f:
        f.write("x")
    attempt = len(Path(counter).read_text())
    print(f"attempt {attempt}")
    await asyncio.sleep(0)
    if attempt == 1:
        raise ValueError("first attempt fails")
    return "ok"


@workflow.task
async def nap(i: int) -> int:
    await asyncio.sleep(0.2)
    return i


@workflow.task
def gather(*names: str) -> list[str]:
    return list(names)


def _texts(client: Client, workflow_id: str) -> dict[str, list[str]]:
    return {
        tid: [e.text for e in entries]
        for tid, entries in get_logs(client.store, workflow_id).items()
    }


def test_interleaved_async_tasks_each_capture_their_own_output(tmp_path: Path) -> None:
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2)) as client:
        nodes = [chatty.options(task_id=f"c{i}").bind(f"c{i}", 0.05 * (3 - i)) for i in range(3)]
        assert client.run(gather.bind(*nodes), workflow_id="w") == ["c0", "c1", "c2"]
        texts = _texts(client, "w")
    for i in range(3):
        (text,) = texts[f"c{i}"]
        lines = text.splitlines()
        assert lines[0] == f"c{i} before" and lines[-1] == f"c{i} after", text
        assert f"WARNING tests.async_tasks: c{i} logged" in lines[1]
        assert len(lines) == 3  # nothing of the other tasks, which ran meanwhile on the loop


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_each_attempt_of_an_async_task_has_its_log(tmp_path: Path, executor: str) -> None:
    chosen = ThreadExecutor(2) if executor == "thread" else ProcessExecutor(1)
    counter = str(tmp_path / "count")
    with Client(str(tmp_path / "s"), executor=chosen) as client:
        node = chatty_fails.options(task_id="t", max_retries=1, retry_exceptions=True)
        assert client.run(node.bind(counter), workflow_id="r") == "ok"
        entries = get_logs(client.store, "r")["t"]
    assert [(e.attempt, e.text) for e in entries] == [(1, "attempt 1\n"), (2, "attempt 2\n")]
    assert all(e.end is not None for e in entries)  # each ended, its final blob stored


def test_await_the_facade_run_async_inside_a_running_loop(wf: Any) -> None:
    async def main() -> list[int]:
        runs = [workflow.run_async(nap.bind(i), workflow_id=f"w{i}") for i in range(3)]
        return list(await asyncio.gather(*runs))

    start = time.monotonic()
    assert asyncio.run(main()) == [0, 1, 2]
    assert time.monotonic() - start < 5
    assert [workflow.get_status(f"w{i}").value for i in range(3)] == ["SUCCESSFUL"] * 3
