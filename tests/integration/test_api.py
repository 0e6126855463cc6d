"""SPEC section 2, end to end through the facade and the Client, on real storage."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from durableflow import (
    Client,
    InvalidWorkflowIdError,
    SerializationError,
    WorkflowCancellationError,
    WorkflowExecutionError,
    WorkflowIncompleteError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowQueueFullError,
    WorkflowStatus,
    WorkflowStillActiveError,
    workflow,
)
from helpers import append_line, count_lines, stored_keys, wait_until

LOG = Path(os.environ.get("DF_TEST_LOG", "/nonexistent"))


@workflow.task
def add(a: int, b: int) -> int:
    return a + b


@workflow.task
def logged(name: str, log: str, value: int = 0) -> int:
    append_line(log, name)
    return value


@workflow.task
def fail_unless(flag: str, value: int) -> int:
    if not os.path.exists(flag):
        raise ValueError(f"flag {flag} missing")
    return value


@workflow.task
def wait_gate(value: int, gate: str) -> int:
    deadline = time.monotonic() + 30
    while not os.path.exists(gate):
        assert time.monotonic() < deadline, "gate never opened"
        workflow.check_cancelled()  # a canceled workflow's thread task stops here
        time.sleep(0.005)
    return value


@workflow.task
def fact(n: int, acc: int = 1) -> int:
    if n <= 1:
        return acc
    return workflow.continuation(fact.bind(n - 1, acc * n))


@pytest.fixture
def gate(tmp_path):
    """A file the wait_gate task waits for; touch it to let the task finish."""
    path = tmp_path / "gate"
    yield path
    path.touch()


# --- run, outputs, status -------------------------------------------------------------------
def test_run_returns_output_and_status_is_successful(wf):
    assert workflow.run(add.bind(1, add.bind(2, 3)), workflow_id="sum") == 6
    assert workflow.get_status("sum") is WorkflowStatus.SUCCESSFUL
    assert workflow.get_output("sum") == 6


def test_run_generates_an_id_when_none_is_given(wf):
    assert workflow.run(add.bind(1, 1)) == 2
    [(workflow_id, status)] = workflow.list_all()
    assert status is WorkflowStatus.SUCCESSFUL and workflow_id


def test_input_node_feeds_run_arguments(wf):
    inp = workflow.InputNode()
    dag = add.bind(inp[0], inp.b)
    assert workflow.run(dag, 10, b=5, workflow_id="inp") == 15


def test_get_output_of_one_task(wf, tmp_path):
    first = add.options(task_id="first").bind(1, 2)
    workflow.run(add.bind(first, 10), workflow_id="w")
    assert workflow.get_output("w", task_id="first") == 3
    with pytest.raises(WorkflowNotFoundError) as info:
        workflow.get_output("w", task_id="nope")
    assert info.value.task_id == "nope" and info.value.workflow_id == "w"


def test_run_async_returns_a_future(wf):
    future = workflow.run_async(add.bind(2, 2), workflow_id="async")
    assert future.result(timeout=30) == 4
    assert workflow.get_output_async("async").result(timeout=30) == 4


def test_run_of_a_stored_successful_id_returns_its_output_without_rerunning(wf, tmp_path):
    log = str(tmp_path / "log")
    assert workflow.run(logged.bind("a", log, 7), workflow_id="once") == 7
    assert workflow.run(logged.bind("a", log, 99), workflow_id="once") == 7
    assert count_lines(Path(log)) == {"a": 1}


def test_metadata_of_workflow_and_task(wf):
    dag = add.options(task_id="t", metadata={"owner": "me"}).bind(1, 2)
    before = time.time()
    workflow.run(dag, workflow_id="meta", metadata={"team": "data"})
    meta = workflow.get_metadata("meta")
    assert meta["status"] == "SUCCESSFUL"
    assert meta["user_metadata"] == {"team": "data"}
    assert before <= meta["stats"]["start_time"] <= meta["stats"]["end_time"] <= time.time()
    task = workflow.get_metadata("meta", task_id="t")
    assert task["user_metadata"] == {"owner": "me"}
    assert task["task_options"]["max_retries"] == 3
    assert task["status"] == "SUCCESSFUL" and task["attempts"] == 1
    assert task["stats"]["start_time"] <= task["stats"]["end_time"]


def test_metadata_must_be_json(wf):
    with pytest.raises(ValueError, match="JSON"):
        workflow.run(add.bind(1, 2), workflow_id="m", metadata={"x": object()})
    with pytest.raises(WorkflowNotFoundError):
        workflow.get_status("m")


# --- failures, retries, resume ----------------------------------------------------------------
def test_failure_is_failed_with_cause_and_resume_reruns_only_the_failed_task(wf, tmp_path):
    log, flag = str(tmp_path / "log"), str(tmp_path / "flag")
    first = logged.bind("first", log, 1)
    dag = add.bind(
        fail_unless.options(max_retries=0).bind(flag, first), logged.bind("third", log, 2)
    )
    with pytest.raises(WorkflowExecutionError) as info:
        workflow.run(dag, workflow_id="f")
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.workflow_id == "f" and "fail_unless" in (info.value.task_id or "")
    assert workflow.get_status("f") is WorkflowStatus.FAILED
    meta = workflow.get_metadata("f")
    assert meta["status"] == "FAILED" and "flag" in meta["error"]["message"]
    with pytest.raises(WorkflowExecutionError):
        workflow.get_output("f")
    Path(flag).touch()
    assert workflow.resume("f") == 3
    assert workflow.get_status("f") is WorkflowStatus.SUCCESSFUL
    assert count_lines(Path(log)) == {"first": 1, "third": 1}


def test_retry_exceptions_retries_and_counts_attempts(wf, tmp_path):
    counter = tmp_path / "attempts"

    @workflow.task(max_retries=2, retry_exceptions=True)
    def flaky() -> str:
        append_line(counter, "x")
        if len(counter.read_text().splitlines()) < 3:
            raise ConnectionError("flaky")
        return "ok"

    assert workflow.run(flaky.bind(), workflow_id="r") == "ok"
    assert count_lines(counter) == {"x": 3}
    assert workflow.get_metadata("r", task_id=flaky.bind().name)["attempts"] == 3


def test_retry_exceptions_by_type(wf, tmp_path):
    counter = tmp_path / "attempts"

    @workflow.task(max_retries=5, retry_exceptions=[KeyError])
    def picky() -> None:
        append_line(counter, "x")
        raise ValueError("not retried")

    with pytest.raises(WorkflowExecutionError):
        workflow.run(picky.bind(), workflow_id="p")
    assert count_lines(counter) == {"x": 1}


def test_application_errors_are_not_retried_by_default(wf, tmp_path):
    counter = tmp_path / "attempts"

    @workflow.task
    def boom() -> None:
        append_line(counter, "x")
        raise RuntimeError("boom")

    with pytest.raises(WorkflowExecutionError):
        workflow.run(boom.bind(), workflow_id="b")
    assert count_lines(counter) == {"x": 1}


def test_catch_exceptions_gives_result_error_pairs(wf):
    @workflow.task(catch_exceptions=True)
    def maybe(fail: bool) -> int:
        if fail:
            raise KeyError("k")
        return 1

    assert workflow.run(maybe.bind(False), workflow_id="c1") == (1, None)
    value, err = workflow.run(maybe.bind(True), workflow_id="c2")
    assert value is None and isinstance(err, KeyError)
    assert workflow.get_status("c2") is WorkflowStatus.SUCCESSFUL


def test_catch_exceptions_covers_errors_in_continuations(wf):
    @workflow.task
    def deep() -> int:
        raise ZeroDivisionError("deep")

    @workflow.task(catch_exceptions=True)
    def outer() -> int:
        return workflow.continuation(deep.bind())

    value, err = workflow.run(outer.bind(), workflow_id="cc")
    assert value is None and isinstance(err, ZeroDivisionError)


def test_checkpoint_false_output_is_recomputed_on_resume(wf, tmp_path):
    log, flag = str(tmp_path / "log"), str(tmp_path / "flag")
    volatile = logged.options(checkpoint=False).bind("volatile", log, 5)
    kept = logged.bind("kept", log, 1)
    dag = add.bind(fail_unless.options(max_retries=0).bind(flag, volatile), kept)
    with pytest.raises(WorkflowExecutionError):
        workflow.run(dag, workflow_id="ck")
    Path(flag).touch()
    assert workflow.resume("ck") == 6
    assert count_lines(Path(log)) == {"volatile": 2, "kept": 1}


# --- dynamic workflows ---------------------------------------------------------------------------
def test_continuation_recursion_checkpoints_each_step(wf):
    assert workflow.run(fact.bind(10), workflow_id="fact") == 3628800
    steps = [tid for tid in workflow.client().store.list_done("fact")]
    assert len(steps) == 10


def test_deep_recursion(wf):
    @workflow.task
    def down(n: int) -> int:
        return n if n == 0 else workflow.continuation(down.bind(n - 1))

    assert workflow.run(down.bind(300), workflow_id="deep") == 0


def test_continuation_with_a_dag(wf):
    @workflow.task
    def expand(n: int) -> int:
        return workflow.continuation(add.bind(add.bind(n, 1), add.bind(n, 2)))

    assert workflow.run(add.bind(expand.bind(1), 100), workflow_id="dyn") == 105


# --- listing --------------------------------------------------------------------------------------
def test_list_all_with_every_filter_form(wf, tmp_path):
    workflow.run(add.bind(1, 1), workflow_id="ok")
    with pytest.raises(WorkflowExecutionError):
        workflow.run(
            fail_unless.options(max_retries=0).bind(str(tmp_path / "no"), 1), workflow_id="bad"
        )
    everything = dict(workflow.list_all())
    assert everything == {"ok": WorkflowStatus.SUCCESSFUL, "bad": WorkflowStatus.FAILED}
    assert workflow.list_all("FAILED") == [("bad", WorkflowStatus.FAILED)]
    assert workflow.list_all(WorkflowStatus.SUCCESSFUL) == [("ok", WorkflowStatus.SUCCESSFUL)]
    assert dict(workflow.list_all({"failed", WorkflowStatus.SUCCESSFUL})) == everything
    assert workflow.list_all(WorkflowStatus.RUNNING) == []


# --- cancel and delete ----------------------------------------------------------------------------
def test_cancel_a_running_workflow(wf, gate):
    future = workflow.run_async(add.bind(wait_gate.bind(1, str(gate)), 1), workflow_id="cx")
    wait_until(lambda: workflow.get_status("cx") is WorkflowStatus.RUNNING)
    assert ("cx", WorkflowStatus.RUNNING) in workflow.list_all(WorkflowStatus.RUNNING)
    workflow.cancel("cx")
    assert workflow.get_status("cx") is WorkflowStatus.CANCELED
    with pytest.raises(WorkflowCancellationError):
        future.result(timeout=30)
    with pytest.raises(WorkflowCancellationError):
        workflow.get_output("cx")
    with pytest.raises(WorkflowNotResumableError):
        workflow.resume("cx")


def test_cancel_a_failed_workflow_and_successful_is_left_alone(wf, tmp_path):
    with pytest.raises(WorkflowExecutionError):
        workflow.run(
            fail_unless.options(max_retries=0).bind(str(tmp_path / "no"), 1), workflow_id="f"
        )
    workflow.cancel("f")
    assert workflow.get_status("f") is WorkflowStatus.CANCELED
    workflow.run(add.bind(1, 1), workflow_id="s")
    workflow.cancel("s")
    assert workflow.get_status("s") is WorkflowStatus.SUCCESSFUL


def test_delete_removes_everything_and_the_id_can_be_reused(wf, storage_url):
    workflow.run(add.bind(1, 1), workflow_id="keep")
    kept = stored_keys(storage_url)
    workflow.run(add.bind(1, 1), workflow_id="d")
    workflow.delete("d")
    with pytest.raises(WorkflowNotFoundError):
        workflow.get_status("d")
    assert workflow.list_all() == [("keep", WorkflowStatus.SUCCESSFUL)]
    assert stored_keys(storage_url) == kept
    assert workflow.run(add.bind(2, 2), workflow_id="d") == 4


def test_delete_refuses_while_running(wf, gate):
    future = workflow.run_async(wait_gate.bind(1, str(gate)), workflow_id="busy")
    wait_until(lambda: workflow.get_status("busy") is WorkflowStatus.RUNNING)
    with pytest.raises(WorkflowStillActiveError) as info:
        workflow.delete("busy")
    assert info.value.workflow_id == "busy"
    gate.touch()
    assert future.result(timeout=30) == 1


def test_run_of_a_running_id_raises(wf, gate):
    future = workflow.run_async(wait_gate.bind(1, str(gate)), workflow_id="twice")
    wait_until(lambda: workflow.get_status("twice") is WorkflowStatus.RUNNING)
    with pytest.raises(WorkflowStillActiveError):
        workflow.run(wait_gate.bind(2, str(gate)), workflow_id="twice")
    with pytest.raises(WorkflowStillActiveError):
        workflow.resume("twice")
    gate.touch()
    assert future.result(timeout=30) == 1


# --- errors for bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call", ["get_status", "get_output", "get_metadata", "resume", "cancel", "delete"]
)
def test_unknown_id_raises_not_found_with_the_id(wf, call):
    with pytest.raises(WorkflowNotFoundError) as info:
        getattr(workflow, call)("typo")
    assert info.value.workflow_id == "typo"
    assert workflow.list_all() == []  # nothing created (Ray's cancel("typo") made an entry)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 257, "a\x07b"])
def test_bad_ids_are_refused_before_anything_is_stored(wf, bad, storage_url):
    with pytest.raises(InvalidWorkflowIdError):
        workflow.run(add.bind(1, 2), workflow_id=bad)
    with pytest.raises(InvalidWorkflowIdError):
        workflow.get_status(bad)
    assert stored_keys(storage_url) == []


def test_unpicklable_argument_names_task_and_argument_and_writes_nothing(wf, storage_url):
    lock = threading.Lock()
    with pytest.raises(SerializationError) as info:
        workflow.run(add.options(task_id="needs_lock").bind(1, lock), workflow_id="unp")
    assert info.value.workflow_id == "unp"
    assert info.value.task_id == "needs_lock"
    assert info.value.argument == "argument 1"
    assert "needs_lock" in str(info.value)
    with pytest.raises(WorkflowNotFoundError):
        workflow.get_status("unp")
    assert stored_keys(storage_url) == []


def test_wrong_arguments_fail_before_storage_is_written(wf, storage_url):
    with pytest.raises(TypeError):
        workflow.run(add.bind(1, 2, 3), workflow_id="args")
    assert stored_keys(storage_url) == []


# --- resume_all, admission control ------------------------------------------------------------------
def test_resume_all_resumes_failed_only_when_asked(wf, tmp_path):
    flag = tmp_path / "flag"
    for i in range(3):
        with pytest.raises(WorkflowExecutionError):
            workflow.run(
                fail_unless.options(max_retries=0).bind(str(flag), i), workflow_id=f"ra{i}"
            )
    assert workflow.resume_all() == []
    flag.touch()
    handles = dict(workflow.resume_all(include_failed=True))
    assert sorted(handles) == ["ra0", "ra1", "ra2"]
    assert {k: f.result(timeout=30) for k, f in handles.items()} == {"ra0": 0, "ra1": 1, "ra2": 2}


def test_max_running_workflows_queues_as_pending_and_full_queue_raises(storage_url, gate):
    with Client(storage_url, max_running_workflows=1, max_pending_workflows=1) as client:
        first = client.run_async(wait_gate.bind(1, str(gate)), workflow_id="slot")
        wait_until(lambda: client.get_status("slot") is WorkflowStatus.RUNNING)
        second = client.run_async(add.bind(2, 2), workflow_id="queued")
        assert client.get_status("queued") is WorkflowStatus.PENDING
        assert client.list_all("PENDING") == [("queued", WorkflowStatus.PENDING)]
        with pytest.raises(WorkflowQueueFullError) as info:
            client.run_async(add.bind(3, 3), workflow_id="overflow")
        assert info.value.workflow_id == "overflow"
        gate.touch()
        assert first.result(timeout=30) == 1
        assert second.result(timeout=30) == 4
        assert client.get_status("queued") is WorkflowStatus.SUCCESSFUL


def test_independent_branches_run_at_the_same_time(wf, tmp_path):
    @workflow.task
    def meet(i: int, folder: str) -> int:
        # Each branch waits until all three have started: only possible if they overlap.
        Path(folder, str(i)).touch()
        wait_until(lambda: len(os.listdir(folder)) == 3)
        return i

    folder = tmp_path / "met"
    folder.mkdir()
    branches = [meet.bind(i, str(folder)) for i in range(3)]
    assert workflow.run(workflow.task(lambda *xs: sum(xs)).bind(*branches), workflow_id="par") == 3


# --- clients, init, storage configuration -----------------------------------------------------------
def test_two_clients_on_two_storages_in_one_process(tmp_path):
    with Client(str(tmp_path / "a")) as a, Client(str(tmp_path / "b")) as b:
        a.run(add.bind(1, 1), workflow_id="same")
        b.run(add.bind(2, 2), workflow_id="same")
        assert a.get_output("same") == 2 and b.get_output("same") == 4


def test_init_twice_with_another_storage_raises(tmp_path):
    workflow.init(str(tmp_path / "one"))
    try:
        workflow.init(str(tmp_path / "one"))  # same storage: fine
        with pytest.raises(ValueError, match="already initialized"):
            workflow.init(str(tmp_path / "two"))
    finally:
        workflow.shutdown()
    workflow.init(str(tmp_path / "two"))
    workflow.shutdown()


def test_storage_from_environment_in_documented_order(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_WORKFLOW_STORAGE", str(tmp_path / "ray"))
    assert Client().storage.url == f"file://{tmp_path / 'ray'}"
    monkeypatch.setenv("DURABLEFLOW_STORAGE", str(tmp_path / "df"))
    assert Client().storage.url == f"file://{tmp_path / 'df'}"


def test_default_storage_is_a_sqlite_file_under_the_user_data_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("DURABLEFLOW_STORAGE", raising=False)
    monkeypatch.delenv("RAY_WORKFLOW_STORAGE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with Client() as client:
        assert client.storage.url == f"sqlite://{tmp_path / 'data'}/durableflow/workflows.db"
        assert client.run(add.bind(1, 2), workflow_id="d") == 3
    assert (tmp_path / "data" / "durableflow" / "workflows.db").is_file()


def test_an_earlier_default_folder_with_a_store_stays_the_default(tmp_path, monkeypatch):
    """Upgrading from a version whose default was a folder finds the workflows where they were."""
    monkeypatch.delenv("DURABLEFLOW_STORAGE", raising=False)
    monkeypatch.delenv("RAY_WORKFLOW_STORAGE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    folder = tmp_path / "data" / "durableflow" / "storage"
    with Client(str(folder)) as old:
        assert old.run(add.bind(2, 3), workflow_id="kept") == 5
    with Client() as client:
        assert client.storage.url == f"file://{folder}"
        assert client.get_output("kept") == 5
    assert not (tmp_path / "data" / "durableflow" / "workflows.db").exists()


def test_bad_storage_urls_raise_clear_errors(tmp_path):
    from durableflow import StorageURLError

    with pytest.raises(StorageURLError, match="unknown storage scheme 'ftp'"):
        Client("ftp://host/x")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageURLError, match="cannot use"):
        Client(str(blocker / "sub"))
    with pytest.raises(StorageURLError, match="fsync"):
        Client(f"file://{tmp_path}/s?fsync=maybe")


def test_memory_storage_url(tmp_path):
    with Client("memory://") as client:
        assert client.run(add.bind(1, 2), workflow_id="m") == 3
        assert client.list_all() == [("m", WorkflowStatus.SUCCESSFUL)]


def test_user_storage_subclass_instance(tmp_path):
    from durableflow.storage.memory import MemoryStorage

    class Counting(MemoryStorage):
        puts = 0

        def put(self, key: str, data: bytes) -> None:
            Counting.puts += 1
            super().put(key, data)

    with Client(Counting()) as client:
        assert client.run(add.bind(1, 2), workflow_id="u") == 3
    assert Counting.puts > 0


def test_process_executor_runs_tasks_in_other_processes(tmp_path):
    @workflow.task
    def pid() -> int:
        return os.getpid()

    with Client(str(tmp_path / "p"), executor="process") as client:
        other = client.run(pid.bind(), workflow_id="proc")
        assert other != os.getpid()
        assert client.run(add.bind(add.bind(1, 2), 3), workflow_id="proc2") == 6


def test_ray_1x_step_style(wf):
    @workflow.step
    def double(x: int) -> int:
        return x * 2

    assert double.step(double.step(3)).run(workflow_id="legacy") == 12
    assert double.step(5).run_async(workflow_id="legacy2").result(timeout=30) == 10


def test_shutdown_without_wait_leaves_running_workflows_resumable(storage_url, gate):
    workflow.init(storage_url)
    future = workflow.run_async(wait_gate.bind(1, str(gate)), workflow_id="sd")
    wait_until(lambda: workflow.get_status("sd") is WorkflowStatus.RUNNING)
    workflow.shutdown(wait=False)
    with pytest.raises(WorkflowIncompleteError):
        future.result(timeout=30)
    gate.touch()
    with Client(storage_url) as client:
        assert client.get_status("sd") is WorkflowStatus.RESUMABLE
        assert client.resume("sd") == 1
