"""Cancel that stops the work, on the thread and process executors.

What must hold once ``Client.cancel`` returned: nothing of the workflow runs any more (a
process task was killed; a thread task stopped at its next ``check_cancelled()``), and no task
of it writes a checkpoint afterwards (counted), even one that ignores the cancel and returns
late, or one that was finishing while the cancel came.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from durableflow import Client, WorkflowCancellationError, WorkflowStatus, workflow
from durableflow.executors.local import ProcessExecutor, ThreadExecutor
from durableflow.runtime.gates import cancelled, check_cancelled
from helpers import wait_until

RUNNING: set[str] = set()
"""Thread tasks running now (set.add and discard are atomic; a lock would not pickle)."""
RELEASE: list[str] = []
"""The file whose existence releases ``ignores_cancel``."""


@pytest.fixture(autouse=True)
def _reset(tmp_path: Path) -> Any:
    RUNNING.clear()
    RELEASE[:] = [str(tmp_path / "release")]
    yield
    Path(RELEASE[0]).touch()


@workflow.task
def steps(name: str, n: int) -> str:
    """A cooperative task: checks for a cancel between its steps."""
    RUNNING.add(name)
    try:
        for _ in range(n):
            check_cancelled()
            time.sleep(0.01)
        return name
    finally:
        RUNNING.discard(name)


@workflow.task
def ignores_cancel(name: str) -> str:
    """Never checks: runs on after the cancel, then returns (and must write nothing)."""
    RUNNING.add(name)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(RELEASE[0]) and time.monotonic() < deadline:
            time.sleep(0.01)
        return name
    finally:
        RUNNING.discard(name)


@workflow.task
def polls(name: str) -> str:
    while not cancelled():
        time.sleep(0.01)
    return "saw the cancel"


@workflow.task
def sleeps_in_process(seconds: float, pids: str) -> int:
    with open(pids, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return os.getpid()


@workflow.task
def collect(*values: Any) -> int:
    return len(values)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_cancel_returns_when_nothing_runs_and_no_checkpoint_follows(tmp_path: Path) -> None:
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(4), cancel_poll=0.05) as client:
        dag = collect.bind(*[steps.options(task_id=f"s{i}").bind(f"s{i}", 10) for i in range(40)])
        future = client.run_async(dag, workflow_id="wf")
        wait_until(lambda: len(client.store.list_done("wf")) >= 4)
        client.cancel("wf")
        assert not RUNNING  # every thread task stopped at its next check
        done = len(client.store.list_done("wf"))
        assert 4 <= done < 40
        with pytest.raises(WorkflowCancellationError):
            future.result(timeout=10)
        time.sleep(0.3)
        assert len(client.store.list_done("wf")) == done
        assert client.get_status("wf") is WorkflowStatus.CANCELED


def test_a_thread_task_that_ignores_the_cancel_writes_nothing(tmp_path: Path) -> None:
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(4), cancel_poll=0.05) as client:
        client._launcher.stop_grace = 0.3
        node = ignores_cancel.options(task_id="t").bind("t")
        future = client.run_async(node, workflow_id="wf")
        wait_until(lambda: "t" in RUNNING)
        start = time.monotonic()
        client.cancel("wf")
        assert time.monotonic() - start < 5  # it waited stop_grace, not for the task
        assert client.get_status("wf") is WorkflowStatus.CANCELED
        assert "t" in RUNNING  # Python cannot stop it...
        Path(RELEASE[0]).touch()
        wait_until(lambda: "t" not in RUNNING)
        time.sleep(0.1)
        assert not client.store.has_output("wf", "t")  # ...but it wrote nothing
        with pytest.raises(WorkflowCancellationError):
            future.result(timeout=10)


def test_cancelled_tells_a_polling_task(tmp_path: Path) -> None:
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2), cancel_poll=0.05) as client:
        future = client.run_async(polls.options(task_id="p").bind("p"), workflow_id="wf")
        wait_until(lambda: client.get_status("wf") is WorkflowStatus.RUNNING)
        time.sleep(0.1)
        start = time.monotonic()
        client.cancel("wf")
        assert time.monotonic() - start < 5
        assert not client.store.has_output("wf", "p")  # it returned, after the cancel
        with pytest.raises(WorkflowCancellationError):
            future.result(timeout=10)
    assert not cancelled()  # outside a task: never
    check_cancelled()


def test_cancel_kills_running_process_tasks(tmp_path: Path) -> None:
    pids = str(tmp_path / "pids")
    with Client(str(tmp_path / "s"), executor=ProcessExecutor(2), cancel_poll=0.05) as client:
        dag = collect.bind(
            sleeps_in_process.options(task_id="a").bind(30, pids),
            sleeps_in_process.options(task_id="b").bind(30, pids),
        )
        future = client.run_async(dag, workflow_id="wf")
        wait_until(lambda: os.path.exists(pids) and len(Path(pids).read_text().split()) == 2)
        start = time.monotonic()
        client.cancel("wf")
        assert time.monotonic() - start < 10
        for pid in map(int, Path(pids).read_text().split()):
            assert not _alive(pid)  # killed before cancel returned
        assert client.store.list_done("wf") == set()
        with pytest.raises(WorkflowCancellationError):
            future.result(timeout=10)
        assert client.run(collect.bind(1, 2), workflow_id="after") == 2  # the pool recovers


def test_cancel_racing_finishing_tasks_never_lets_a_checkpoint_through(tmp_path: Path) -> None:
    """Cancel at random moments while short tasks finish: the count never moves after."""
    rng = random.Random(7)
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(4), cancel_poll=0.05) as client:
        for round_ in range(15):
            wid = f"wf{round_}"
            tasks = [steps.options(task_id=f"t{i}").bind(f"{wid}-{i}", 1) for i in range(30)]
            future = client.run_async(collect.bind(*tasks), workflow_id=wid)
            time.sleep(rng.uniform(0.0, 0.08))
            client.cancel(wid)
            done = client.store.list_done(wid)
            time.sleep(0.05)
            if client.get_status(wid) is WorkflowStatus.CANCELED:
                assert client.store.list_done(wid) == done
                with pytest.raises(WorkflowCancellationError):
                    future.result(timeout=10)
            else:  # it finished before the cancel came
                assert future.result(timeout=10) == 30


def test_a_process_cancel_kills_only_that_workflows_worker(tmp_path: Path) -> None:
    pids = str(tmp_path / "pids")
    with Client(str(tmp_path / "s"), executor=ProcessExecutor(2), cancel_poll=0.05) as client:
        doomed = client.run_async(sleeps_in_process.bind(30, pids), workflow_id="doomed")
        kept = client.run_async(sleeps_in_process.bind(1.5, pids), workflow_id="kept")
        wait_until(lambda: os.path.exists(pids) and len(Path(pids).read_text().split()) == 2)
        client.cancel("doomed")
        with pytest.raises(WorkflowCancellationError):
            doomed.result(timeout=10)
        survivor = kept.result(timeout=30)  # its worker was not touched
        assert survivor in map(int, Path(pids).read_text().split())
        assert client.get_status("kept") is WorkflowStatus.SUCCESSFUL
