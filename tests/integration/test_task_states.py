"""What tasks report: every task status, attempts (lost ones too), times, BaseException tasks.

On file storage, through the public API (``Client``, ``workflow``): ``get_metadata(wid, tid)``
and ``Client.list_tasks`` (what ``durableflow show`` prints) must agree on each task's status,
attempts and times, while the workflow runs, after it stopped, and after a crash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from durableflow import (
    Client,
    WorkflowExecutionError,
    WorkflowNotFoundError,
    WorkflowStatus,
    workflow,
)
from durableflow.executors.local import ThreadExecutor
from helpers import count_lines, wait_until

GATES: dict[str, threading.Event] = {}


def gate(name: str) -> threading.Event:
    return GATES.setdefault(name, threading.Event())


@pytest.fixture(autouse=True)
def _fresh_gates() -> Any:
    GATES.clear()
    yield
    for event in GATES.values():
        event.set()  # never leave a pool thread blocked


@pytest.fixture
def client(tmp_path: Path) -> Any:
    with Client(str(tmp_path / "store"), cancel_poll=0.05) as c:
        yield c
        for event in GATES.values():
            event.set()  # before the Client waits for its pool


@workflow.task
def blocked(name: str, value: int) -> int:
    deadline = time.monotonic() + 60
    while not gate(name).wait(0.01) and time.monotonic() < deadline:
        workflow.check_cancelled()  # a thread task stops at its checks (else cancel waits 30 s)
    return value


@workflow.task
def add(a: int, b: int) -> int:
    return a + b


@workflow.task
def boom(message: str) -> int:
    raise ValueError(message)


def task_meta(client: Client, workflow_id: str, task_id: str) -> dict[str, Any]:
    return client.get_metadata(workflow_id, task_id)


def task_status(client: Client, workflow_id: str, task_id: str) -> str | None:
    """The task's status in ``get_metadata``; None while the task does not exist yet."""
    try:
        return str(task_meta(client, workflow_id, task_id)["status"])
    except WorkflowNotFoundError:
        return None


def row(client: Client, workflow_id: str, task_id: str) -> dict[str, Any]:
    return next(r for r in client.list_tasks(workflow_id) if r["task_id"] == task_id)


def status_of(client: Client, workflow_id: str, task_id: str) -> str:
    """The task's status, once ``show`` and ``get_metadata`` agree on it (they read in turn)."""

    def agreed() -> str | None:
        shown = str(task_meta(client, workflow_id, task_id)["status"])
        return shown if row(client, workflow_id, task_id)["status"] == shown else None

    return str(wait_until(agreed))


# --- RUNNING, PENDING, SUCCESSFUL --------------------------------------------------------------
def test_a_task_blocked_in_its_function_reads_running_and_its_downstream_pending(client):
    dag = add.options(task_id="after").bind(blocked.options(task_id="b").bind("b", 1), 1)
    future = client.run_async(dag, workflow_id="w")
    wait_until(lambda: status_of(client, "w", "b") == "RUNNING")
    meta = task_meta(client, "w", "b")
    assert meta["attempts"] == 1 and meta["lost"] is False
    assert "start_time" in meta["stats"] and "end_time" not in meta["stats"]
    assert meta["last_attempt"]["pid"] == os.getpid() and meta["last_attempt"]["state"] == "RUNNING"
    assert status_of(client, "w", "after") == "PENDING"
    assert task_meta(client, "w", "after")["stats"] == {}
    workflow_stats = client.get_metadata("w")["stats"]
    assert "start_time" in workflow_stats and "end_time" not in workflow_stats  # as in Ray
    gate("b").set()
    assert future.result(timeout=30) == 2
    for task_id in ("b", "after"):
        assert status_of(client, "w", task_id) == "SUCCESSFUL"
        meta = task_meta(client, "w", task_id)
        assert meta["attempts"] == 1
        assert meta["stats"]["start_time"] <= meta["stats"]["end_time"]
    assert "end_time" in client.get_metadata("w")["stats"]


# --- RETRYING while the workflow runs ---------------------------------------------------------
def test_a_failed_attempt_waiting_for_its_retry_reads_retrying(tmp_path):
    """One pool thread: ``flaky`` fails first, ``hold`` (submitted second) takes the thread, and
    the retry of ``flaky`` waits its turn, visibly."""
    marker = tmp_path / "failed-once"

    @workflow.task
    def flaky() -> int:
        if not marker.exists():
            marker.touch()
            raise RuntimeError("first attempt fails")
        return 7

    @workflow.task
    def hold() -> int:
        gate("hold").wait(60)
        return 1

    @workflow.task
    def both(a: int, b: int) -> int:
        return a + b

    dag = both.bind(
        flaky.options(task_id="flaky", retry_exceptions=True).bind(),
        hold.options(task_id="hold").bind(),
    )
    with Client(str(tmp_path / "store"), executor=ThreadExecutor(max_workers=1)) as client:
        future = client.run_async(dag, workflow_id="r")
        wait_until(lambda: client.list_tasks("r") and marker.exists())
        # The failure is recorded just after the attempt raised: poll for it (the retry cannot
        # run while ``hold`` has the only thread, so RETRYING must show and stay).
        wait_until(lambda: status_of(client, "r", "flaky") == "RETRYING")
        meta = task_meta(client, "r", "flaky")
        assert meta["attempts"] == 1
        assert meta["error"]["message"] == "first attempt fails"
        assert meta["stats"]["start_time"] <= meta["stats"]["end_time"]
        gate("hold").set()
        assert future.result(timeout=30) == 8
        meta = task_meta(client, "r", "flaky")
        assert (meta["status"], meta["attempts"], meta["error"]) == ("SUCCESSFUL", 2, None)


# --- FAILED, SKIPPED, CANCELED -----------------------------------------------------------------
def test_a_failed_task_has_its_attempts_start_and_end_and_its_downstream_is_skipped(client):
    dag = add.options(task_id="next").bind(boom.options(task_id="f", max_retries=1).bind("no"), 1)
    with pytest.raises(WorkflowExecutionError):
        client.run(dag, workflow_id="f")
    meta = task_meta(client, "f", "f")
    assert (status_of(client, "f", "f"), meta["attempts"]) == ("FAILED", 1)
    assert meta["stats"]["start_time"] <= meta["stats"]["end_time"]
    assert meta["error"]["type"] == "builtins.ValueError"
    shown = row(client, "f", "f")
    assert shown["duration"] is not None and shown["error"] == "ValueError: no"
    assert status_of(client, "f", "next") == "SKIPPED"
    assert "end_time" in client.get_metadata("f")["stats"]


def test_a_canceled_workflow_shows_its_running_and_waiting_tasks_canceled(client):
    dag = add.options(task_id="never").bind(blocked.options(task_id="b").bind("c", 1), 1)
    client.run_async(dag, workflow_id="c")
    wait_until(lambda: status_of(client, "c", "b") == "RUNNING")
    client.cancel("c")
    assert client.get_status("c") is WorkflowStatus.CANCELED
    assert status_of(client, "c", "b") == "CANCELED"
    assert status_of(client, "c", "never") == "CANCELED"
    stats = client.get_metadata("c")["stats"]
    assert "start_time" in stats and "end_time" not in stats  # as in Ray


# --- continuations -----------------------------------------------------------------------------
@workflow.task
def outer(x: int) -> Any:
    return workflow.continuation(blocked.options(task_id="inner").bind("inner", x + 1))


def test_a_task_that_continued_reports_its_own_attempt_and_times(client):
    future = client.run_async(outer.options(task_id="outer").bind(1), workflow_id="k")
    wait_until(lambda: task_status(client, "k", "inner") == "RUNNING")
    meta = task_meta(client, "k", "outer")
    assert (status_of(client, "k", "outer"), meta["attempts"]) == ("CONTINUED", 1)
    assert meta["stats"]["start_time"] <= meta["stats"]["end_time"]
    gate("inner").set()
    assert future.result(timeout=30) == 2
    parent, child = task_meta(client, "k", "outer"), task_meta(client, "k", "inner")
    assert (parent["status"], parent["attempts"]) == ("SUCCESSFUL", 1)
    assert parent["stats"]["start_time"] <= parent["stats"]["end_time"]
    assert child["stats"]["start_time"] >= parent["stats"]["end_time"]  # Ray's nested rule
    shown = row(client, "k", "outer")
    assert shown["attempts"] == 1 and shown["start_time"] and shown["duration"] is not None


# --- BaseException raised by a task ------------------------------------------------------------
@workflow.task
def exits(code: int) -> int:
    sys.exit(code)


@workflow.task
def interrupts() -> int:
    raise KeyboardInterrupt("raised by the task's code")


@pytest.mark.parametrize("executor", ["thread", "process"])
@pytest.mark.parametrize(
    ("task", "kind"), [(exits.bind(3), SystemExit), (interrupts.bind(), KeyboardInterrupt)]
)
def test_system_exit_and_keyboard_interrupt_in_a_task_fail_it_like_any_error(
    tmp_path, executor, task, kind
):
    with Client(str(tmp_path / "store"), executor=executor) as client:
        with pytest.raises(WorkflowExecutionError) as raised:
            client.run(task, workflow_id="x")
        assert isinstance(raised.value.__cause__, kind)
        assert client.get_status("x") is WorkflowStatus.FAILED  # not RESUMABLE, not retried
        (only,) = client.list_tasks("x")
        assert (only["status"], only["attempts"]) == ("FAILED", 1)
        error = client.get_metadata("x")["error"]
        assert error["type"] == f"builtins.{kind.__name__}"

        caught = client.run(task.options(catch_exceptions=True), workflow_id="y")
        assert caught[0] is None and isinstance(caught[1], kind)
        assert client.get_status("y") is WorkflowStatus.SUCCESSFUL


@pytest.mark.parametrize(("retried", "attempts"), [([SystemExit], 3), ([ValueError], 1)])
def test_system_exit_is_retried_only_as_retry_exceptions_says(tmp_path, retried, attempts):
    with Client(str(tmp_path / "store")) as client:
        dag = exits.options(retry_exceptions=retried, max_retries=2).bind(1)
        with pytest.raises(WorkflowExecutionError):
            client.run(dag, workflow_id="x")
        (only,) = client.list_tasks("x")
        assert (only["status"], only["attempts"]) == ("FAILED", attempts)


# --- a crash: lost attempts are counted, a task waiting for its retry is RETRYING --------------
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from durableflow import Client, workflow
    config = json.loads(sys.argv[1])

    def log(name):
        with open(config["log"], "a") as handle:
            handle.write(name + "\\n")

    @workflow.task
    def fetch(n):
        log("fetch")
        return list(range(n))

    @workflow.task
    def crunch(numbers):
        log("crunch")
        if config["fail_first"] and not os.path.exists(config["failed"]):
            open(config["failed"], "w").close()
            raise RuntimeError("crunch fails once")
        while not os.path.exists(config["go"]):
            time.sleep(0.01)
        return sum(numbers)

    dag = crunch.options(task_id="crunch", retry_exceptions=True).bind(
        fetch.options(task_id="fetch").bind(10)
    )
    print(Client(config["storage"]).run(dag, workflow_id="big-job"))
    """
)


@pytest.mark.parametrize("fail_first", [False, True], ids=["killed", "failed-then-killed"])
def test_an_attempt_lost_with_its_runner_is_counted_and_the_task_reads_retrying(
    tmp_path, fail_first
):
    """The README's story: kill -9 the runner mid-task; fetch ran once, crunch twice."""
    config = {
        "storage": str(tmp_path / "store"),
        "log": str(tmp_path / "log"),
        "go": str(tmp_path / "go"),
        "failed": str(tmp_path / "failed"),
        "fail_first": fail_first,
    }
    program = tmp_path / "runner.py"
    program.write_text(CHILD)
    runner = subprocess.Popen(
        [sys.executable, str(program), json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lost = 2 if fail_first else 1
    try:
        with Client(config["storage"]) as client:

            def crunch_runs() -> bool:
                if client.list_all() == []:
                    return False
                meta = task_meta(client, "big-job", "crunch")
                return bool(meta["status"] == "RUNNING" and meta["attempts"] == lost)

            wait_until(crunch_runs, timeout=60)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=30)
    assert runner.returncode == -signal.SIGKILL

    with Client(config["storage"]) as client:
        assert client.get_status("big-job") is WorkflowStatus.RESUMABLE
        meta = task_meta(client, "big-job", "crunch")
        assert (status_of(client, "big-job", "crunch"), meta["attempts"]) == ("RETRYING", lost)
        assert meta["lost"] is True and "end_time" not in meta["stats"]
        assert "lost" in row(client, "big-job", "crunch")["error"]
        assert task_meta(client, "big-job", "fetch")["attempts"] == 1

        Path(config["go"]).touch()
        assert client.resume("big-job") == 45
        meta = task_meta(client, "big-job", "crunch")
        assert (meta["status"], meta["attempts"], meta["lost"]) == ("SUCCESSFUL", lost + 1, False)
        assert status_of(client, "big-job", "fetch") == "SUCCESSFUL"
    assert count_lines(Path(config["log"])) == {"fetch": 1, "crunch": lost + 1}
