"""Task and workflow timeouts (``timeout_s``) on the thread and process executors.

What must hold: an attempt past its ``timeout_s`` is recorded as a failed attempt with a
``WorkflowTimeoutError``, retried like a system error under ``max_retries``, then fails the
workflow with that error as the cause; an attempt that could not be stopped (a thread) never
writes its checkpoint after its deadline, and a late checkpoint loses to the retry's (fencing
by attempt number); a process attempt is killed; a workflow's own ``timeout_s`` fails it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from durableflow import Client, WorkflowExecutionError, WorkflowStatus, workflow
from durableflow.errors import WorkflowTimeoutError
from durableflow.executors.local import ProcessExecutor, ThreadExecutor
from durableflow.model.attempts import AttemptState
from durableflow.model.calls import OutcomeKind, TaskCall
from durableflow.model.dag import flatten
from durableflow.model.task import workflow_options
from durableflow.runtime.attempt import execute_task
from durableflow.runtime.gates import check_cancelled
from durableflow.storage.attempts import read_attempt
from durableflow.storage.serializer import Serializer
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage
from helpers import wait_until

RELEASE: dict[str, threading.Event] = {}
ENDED: dict[str, threading.Event] = {}


@pytest.fixture(autouse=True)
def _release_threads() -> Any:
    RELEASE.clear()
    ENDED.clear()
    yield
    for event in RELEASE.values():
        event.set()  # never leave a pool thread blocked


def _event(table: dict[str, threading.Event], name: str) -> threading.Event:
    return table.setdefault(name, threading.Event())


@workflow.task
def hangs_then_returns(name: str, counter: str) -> str:
    """Attempt 1 ignores every stop and returns late; later attempts return at once."""
    with open(counter, "a") as f:
        f.write("x")
    attempt = len(Path(counter).read_text())
    if attempt == 1:
        _event(RELEASE, name).wait(30)
        _event(ENDED, name).set()
        return "late"
    return f"attempt {attempt}"


@workflow.task
def always_hangs(name: str, counter: str) -> str:
    with open(counter, "a") as f:
        f.write("x")
    _event(RELEASE, name).wait(30)
    _event(ENDED, name).set()
    return "late"


@workflow.task
def cooperative(counter: str) -> str:
    with open(counter, "a") as f:
        f.write("x")
    for _ in range(3000):
        check_cancelled()
        time.sleep(0.01)
    return "never"


@workflow.task
def sleeps(seconds: float, counter: str) -> int:
    with open(counter, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return os.getpid()


@workflow.task
def quick(x: int) -> int:
    return x + 1


def _client(tmp_path: Path, executor: Any = None) -> Client:
    return Client(str(tmp_path / "store"), executor=executor, cancel_poll=0.05)


def test_a_hanging_thread_task_times_out_is_retried_then_fails(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    with _client(tmp_path, ThreadExecutor(max_workers=4)) as client:
        node = always_hangs.options(timeout_s=0.3, max_retries=1, task_id="h").bind("h", counter)
        start = time.monotonic()
        with pytest.raises(WorkflowExecutionError) as caught:
            client.run(node, workflow_id="wf")
        took = time.monotonic() - start
        cause = caught.value.__cause__
        assert isinstance(cause, WorkflowTimeoutError)
        assert isinstance(cause, TimeoutError)
        assert cause.task_id == "h" and cause.limit_s == 0.3
        assert cause.elapsed_s is not None and cause.elapsed_s >= 0.3
        assert Path(counter).read_text() == "xx"  # the first attempt and one retry
        assert took < 10
        assert client.get_status("wf") is WorkflowStatus.FAILED
        record = read_attempt(client.store, "wf", "h")
        assert record is not None and record.attempt == 2
        assert record.state is AttemptState.ERROR
        assert record.error is not None and "WorkflowTimeoutError" in record.error.summary()
        error = client.store.read_task_error("wf", "h")
        assert error is not None and error.final and error.attempts == 2
        # The abandoned attempts return late: neither may write its checkpoint.
        _event(RELEASE, "h").set()
        assert _event(ENDED, "h").wait(10)
        time.sleep(0.1)
        assert not client.store.has_output("wf", "h")


def test_a_late_thread_attempt_never_overwrites_the_retry(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    with _client(tmp_path, ThreadExecutor(max_workers=4)) as client:
        node = hangs_then_returns.options(timeout_s=0.3, max_retries=2, task_id="t").bind(
            "t", counter
        )
        assert client.run(node, workflow_id="wf") == "attempt 2"
        _event(RELEASE, "t").set()  # attempt 1 now returns "late", after its deadline
        assert _event(ENDED, "t").wait(10)
        time.sleep(0.1)
        assert client.store.read_output("wf", "t") == "attempt 2"
        header = client.store.read_output_header("wf", "t")
        assert header is not None and header["attempt"] == 2


def test_a_cooperative_thread_task_stops_at_its_next_check(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    executor = ThreadExecutor(max_workers=1)  # one thread: the retry needs it back
    with _client(tmp_path, executor) as client:
        node = cooperative.options(timeout_s=0.3, max_retries=2, task_id="c").bind(counter)
        start = time.monotonic()
        with pytest.raises(WorkflowExecutionError) as caught:
            client.run(node, workflow_id="wf")
        assert isinstance(caught.value.__cause__, WorkflowTimeoutError)
        assert Path(counter).read_text() == "xxx"
        assert time.monotonic() - start < 10  # each attempt freed the only thread


def test_the_checkpoint_of_an_abandoned_attempt_is_replaced_by_the_retry(tmp_path: Path) -> None:
    """Fencing at step 5: a checkpoint of attempt 1, which the engine abandoned, loses."""
    store = WorkflowStore(open_storage(str(tmp_path / "store")), Serializer())
    store.write_output("wf", "t", "late", {"attempt": 1})

    def call(attempt: int, replaces: tuple[int, ...]) -> TaskCall:
        return TaskCall(
            "wf", "t", attempt, lambda: f"from {attempt}", (), {}, {}, True, False,
            store=store, replaces=replaces,
        )  # fmt: skip

    adopted = execute_task(call(2, ()))  # another runner's checkpoint: adopted
    assert adopted.kind is OutcomeKind.OK and adopted.value == "late"
    replaced = execute_task(call(3, (1,)))
    assert replaced.kind is OutcomeKind.OK and replaced.value == "from 3"
    assert store.read_output("wf", "t") == "from 3"
    assert store.read_output_header("wf", "t")["attempt"] == 3
    kept = execute_task(call(4, (1,)))  # attempt 3's is not an abandoned attempt's: kept
    assert kept.value == "from 3"


def test_an_attempt_past_its_own_deadline_writes_nothing(tmp_path: Path) -> None:
    """The worker's side, as in a process or on Ray: late, it fails with the timeout."""
    store = WorkflowStore(open_storage(str(tmp_path / "store")), Serializer())

    def slow() -> str:
        time.sleep(0.3)
        return "late"

    call = TaskCall("wf", "t", 1, slow, (), {}, {}, True, False, store=store, timeout_s=0.1)
    outcome = execute_task(call)
    assert outcome.kind is OutcomeKind.ERROR and outcome.system
    assert isinstance(outcome.error, WorkflowTimeoutError)
    assert not store.has_output("wf", "t")


def test_a_hanging_process_task_is_killed_retried_then_fails(tmp_path: Path) -> None:
    counter = str(tmp_path / "pids")
    with _client(tmp_path, ProcessExecutor(max_workers=2)) as client:
        node = sleeps.options(timeout_s=0.5, max_retries=1, task_id="p").bind(30, counter)
        with pytest.raises(WorkflowExecutionError) as caught:
            client.run(node, workflow_id="wf")
        assert isinstance(caught.value.__cause__, WorkflowTimeoutError)
        pids = [int(p) for p in Path(counter).read_text().split()]
        assert len(pids) == 2
        for pid in pids:  # both workers were killed, not left sleeping
            wait_until(lambda pid=pid: not _alive(pid), timeout=5)
        assert client.run(quick.bind(1), workflow_id="after") == 2  # the pool still works


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not reaped yet counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_a_workflow_timeout_fails_it_and_resume_gets_a_fresh_deadline(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    with _client(tmp_path, ThreadExecutor(max_workers=4)) as client:
        dag = flatten(quick.bind(cooperative.options(task_id="c").bind(counter)))
        start = time.monotonic()
        future = client._launcher.start("wf", dag, {}, inline=True, timeout_s=0.4)
        with pytest.raises(WorkflowExecutionError) as caught:
            future.result(timeout=30)
        assert time.monotonic() - start < 10
        cause = caught.value.__cause__
        assert isinstance(cause, WorkflowTimeoutError) and cause.limit_s == 0.4
        assert client.get_status("wf") is WorkflowStatus.FAILED
        assert client.store.read_run("wf").extra["timeout_s"] == 0.4
        start = time.monotonic()
        with pytest.raises(WorkflowExecutionError) as again:
            client.resume("wf")
        assert 0.3 < time.monotonic() - start < 10  # a fresh 0.4 s, not already expired
        assert isinstance(again.value.__cause__, WorkflowTimeoutError)
        assert Path(counter).read_text() == "xx"


def test_bad_timeouts_are_refused_where_given() -> None:
    for bad in (0, -1, "1", True, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="timeout_s"):
            quick.options(timeout_s=bad)
    assert quick.options(timeout_s=2).task_options.timeout_s == 2
    options = workflow_options(timeout_s=1.5)  # Ray's shape
    assert quick.options(**options).task_options.timeout_s == 1.5


@workflow.task
def big_then_small(counter: str) -> bytes:
    with open(counter, "a") as f:
        f.write("x")
    if len(Path(counter).read_text()) == 1:
        time.sleep(0.25)
        return b"x" * 40_000_000  # its checkpoint is being written when the deadline comes
    return b"y" * 10


def test_a_process_killed_mid_write_leaves_a_whole_checkpoint_or_none(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    with _client(tmp_path, ProcessExecutor(max_workers=2)) as client:
        node = big_then_small.options(timeout_s=0.3, max_retries=2, task_id="b").bind(counter)
        result = client.run(node, workflow_id="wf")
        assert result in (b"x" * 40_000_000, b"y" * 10)
        assert client.store.read_output("wf", "b") == result  # whole, and the one returned
        header = client.store.read_output_header("wf", "b")
        attempts = len(Path(counter).read_text())
        assert header is not None and header["attempt"] == attempts
