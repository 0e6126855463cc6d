"""SPEC section 2 end to end on the Ray executor: Ray DAGs, run by the cluster's coordinator."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import ray
from ray.dag import InputNode

from durableflow import (
    WorkflowCancellationError,
    WorkflowExecutionError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowStatus,
    WorkflowStillActiveError,
    workflow,
)


def lines(path: str) -> int:
    with open(path) as handle:
        return sum(1 for _ in handle)


def append(path: str, line: str) -> None:
    with open(path, "a") as handle:
        handle.write(line + "\n")


def count(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            counts[line] = counts.get(line, 0) + 1
    return counts


def wait_until(predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return value


@ray.remote
def add(a: int, b: int) -> int:
    return a + b


@ray.remote
def logged(name: str, log: str, value: int = 0) -> int:
    append(log, name)
    return value


@ray.remote
def fail_unless(flag: str, value: int, log: str) -> int:
    append(log, "fail_unless")
    if not os.path.exists(flag):
        raise ValueError(f"flag {flag} missing")
    return value


@ray.remote
def fail_times(times: int, log: str) -> str:
    append(log, "attempt")
    if lines(log) <= times:
        raise ValueError("not yet")
    return "done"


@ray.remote
def die_times(times: int, log: str) -> str:
    append(log, "attempt")
    if lines(log) <= times:
        os._exit(1)  # the worker process dies: a system error
    return "survived"


@ray.remote
def wait_gate(value: int, gate: str, log: str) -> int:
    append(log, "waiting")
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        assert time.monotonic() < deadline, "gate never opened"
        time.sleep(0.01)
    return value


@ray.remote
def fact(n: int, acc: int = 1) -> int:
    if n <= 1:
        return acc
    return workflow.continuation(fact.bind(n - 1, acc * n))


@ray.remote
def barrier(name: str, other: str, folder: str) -> str:
    Path(folder, name).touch()
    deadline = time.monotonic() + 60
    while not Path(folder, other).exists():
        assert time.monotonic() < deadline, f"{other} never ran alongside {name}"
        time.sleep(0.01)
    return name


@workflow.task
def native_pid(x: int) -> tuple[int, int]:
    return x, os.getpid()


def test_run_returns_output_and_every_reader_agrees(wf):
    assert wf.run(add.bind(1, add.bind(2, 3)), workflow_id="sum") == 6
    assert wf.get_status("sum") == WorkflowStatus.SUCCESSFUL
    assert wf.get_output("sum") == 6
    assert wf.get_metadata("sum")["status"] == "SUCCESSFUL"
    assert wf.list_all() == [("sum", WorkflowStatus.SUCCESSFUL)]


def test_run_async_returns_an_object_ref(wf):
    ref = wf.run_async(add.bind(20, 22), workflow_id="async")
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == 42


def test_input_node_feeds_run_arguments(wf):
    with InputNode() as inp:
        dag = add.bind(inp[0], add.bind(inp.x, inp["y"]))
    assert wf.run(dag, 1, x=10, y=100) == 111


def test_get_output_of_a_task_and_get_output_async(wf, log):
    dag = add.bind(logged.options(**workflow.options(task_id="first")).bind("a", str(log), 5), 1)
    assert wf.run(dag, workflow_id="w") == 6
    assert wf.get_output("w", task_id="first") == 5
    ref = wf.get_output_async("w", task_id="first")
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == 5
    assert ray.get(wf.get_output_async("w")) == 6


def test_a_stored_successful_id_returns_its_output_without_rerunning(wf, log):
    dag = logged.bind("once", str(log), 7)
    assert wf.run(dag, workflow_id="again") == 7
    assert wf.run(dag, workflow_id="again") == 7
    assert ray.get(wf.resume_async("again")) == 7
    assert count(log) == {"once": 1}


def test_metadata_of_workflow_and_task(wf):
    options = workflow.options(task_id="meta", metadata={"owner": "me"})
    wf.run(add.options(**options, num_cpus=0.5).bind(1, 2), workflow_id="m", metadata={"k": 1})
    meta = wf.get_metadata("m")
    assert meta["user_metadata"] == {"k": 1}
    assert meta["stats"]["end_time"] >= meta["stats"]["start_time"]
    task = wf.get_metadata("m", "meta")
    assert task["status"] == "SUCCESSFUL"
    assert task["user_metadata"] == {"owner": "me"}
    assert task["task_options"]["executor_options"]["num_cpus"] == "0.5"


def test_failure_is_failed_with_cause_and_resume_reruns_only_the_failed_task(wf, log, tmp_path):
    flag = tmp_path / "flag"
    dag = add.bind(logged.bind("up", str(log), 1), fail_unless.bind(str(flag), 2, str(log)))
    with pytest.raises(WorkflowExecutionError) as info:
        wf.run(dag, workflow_id="f")
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.workflow_id == "f"
    assert wf.get_status("f") == WorkflowStatus.FAILED
    flag.touch()
    assert wf.resume("f") == 3
    assert count(log) == {"up": 1, "fail_unless": 2}


def test_ray_retry_options_drive_the_engine_retries(wf, log):
    options = workflow.options(task_id="ft")
    dag = fail_times.options(max_retries=2, retry_exceptions=True, **options).bind(2, str(log))
    assert wf.run(dag, workflow_id="r") == "done"
    assert count(log) == {"attempt": 3}
    assert wf.get_metadata("r", "ft")["attempts"] == 3


def test_retry_exceptions_by_type(wf, log):
    dag = fail_times.options(max_retries=5, retry_exceptions=[KeyError]).bind(1, str(log))
    with pytest.raises(WorkflowExecutionError):
        wf.run(dag, workflow_id="bytype")
    assert count(log) == {"attempt": 1}


def test_application_errors_are_not_retried_by_default(wf, log):
    with pytest.raises(WorkflowExecutionError):
        wf.run(fail_times.bind(5, str(log)), workflow_id="noretry")
    assert count(log) == {"attempt": 1}


def test_a_dead_worker_is_retried_by_the_engine_and_not_by_ray(wf, log, tmp_path):
    # Ray's own retries (default 3) are off: each attempt below is one of the engine's.
    assert (
        wf.run(die_times.options(max_retries=2).bind(2, str(log)), workflow_id="d1") == "survived"
    )
    assert count(log) == {"attempt": 3}
    other = tmp_path / "other.log"
    with pytest.raises(WorkflowExecutionError):
        wf.run(die_times.options(max_retries=1).bind(5, str(other)), workflow_id="d2")
    assert count(other) == {"attempt": 2}
    # Its worker died on every attempt while the runner lived: FAILED, as in Ray (issue 11.4).
    assert wf.get_status("d2") == WorkflowStatus.FAILED


def test_catch_exceptions_gives_result_error_pairs(wf, tmp_path, log):
    catch = workflow.options(catch_exceptions=True)
    value, error = wf.run(fail_unless.options(**catch).bind(str(tmp_path / "no"), 1, str(log)))
    assert value is None and isinstance(error, ValueError)
    assert wf.run(add.options(**catch).bind(1, 1)) == (2, None)


def test_checkpoint_false_output_is_recomputed_on_resume(wf, log, tmp_path):
    flag = tmp_path / "flag"
    transient = logged.options(**workflow.options(checkpoint=False)).bind("transient", str(log), 4)
    dag = add.bind(transient, fail_unless.bind(str(flag), 1, str(log)))
    with pytest.raises(WorkflowExecutionError):
        wf.run(dag, workflow_id="cp")
    flag.touch()
    assert wf.resume("cp") == 5
    assert count(log)["transient"] == 2


def test_continuation_recursion_matches_plain_ray(wf):
    assert wf.run(fact.bind(7), workflow_id="fact") == 5040 == ray.get(fact.bind(7).execute())


def test_list_all_with_every_filter_form(wf, tmp_path, log):
    wf.run(add.bind(1, 1), workflow_id="ok")
    with pytest.raises(WorkflowExecutionError):
        wf.run(fail_unless.bind(str(tmp_path / "no"), 1, str(log)), workflow_id="bad")
    assert wf.list_all() == [("bad", WorkflowStatus.FAILED), ("ok", WorkflowStatus.SUCCESSFUL)]
    assert wf.list_all("FAILED") == [("bad", WorkflowStatus.FAILED)]
    assert wf.list_all(WorkflowStatus.SUCCESSFUL) == [("ok", WorkflowStatus.SUCCESSFUL)]
    assert wf.list_all({"SUCCESSFUL", WorkflowStatus.FAILED}) == wf.list_all()


def test_cancel_a_running_workflow(wf, tmp_path, log):
    ref = wf.run_async(wait_gate.bind(1, str(tmp_path / "gate"), str(log)), workflow_id="c")
    wait_until(lambda: count(log))
    assert wf.get_status("c") == WorkflowStatus.RUNNING
    wf.cancel("c")
    assert wf.get_status("c") == WorkflowStatus.CANCELED
    with pytest.raises(WorkflowCancellationError):
        ray.get(ref)
    with pytest.raises(WorkflowNotResumableError):
        wf.resume("c")


def test_a_running_id_cannot_be_run_again_nor_deleted(wf, tmp_path, log):
    gate = tmp_path / "gate"
    ref = wf.run_async(wait_gate.bind(1, str(gate), str(log)), workflow_id="busy")
    wait_until(lambda: count(log))
    with pytest.raises(WorkflowStillActiveError):
        wf.run(add.bind(1, 2), workflow_id="busy")
    with pytest.raises(WorkflowStillActiveError):
        wf.delete("busy")
    gate.touch()
    assert ray.get(ref) == 1


def test_delete_removes_everything_and_the_id_can_be_reused(wf):
    wf.run(add.bind(1, 2), workflow_id="del")
    wf.delete("del")
    with pytest.raises(WorkflowNotFoundError):
        wf.get_status("del")
    assert wf.run(add.bind(2, 2), workflow_id="del") == 4


@pytest.mark.parametrize(
    "call",
    [
        "resume",
        "resume_async",
        "get_output",
        "get_output_async",
        "get_status",
        "get_metadata",
        "cancel",
        "delete",
    ],
)
def test_unknown_id_raises_not_found(wf, call):
    with pytest.raises(WorkflowNotFoundError) as info:
        getattr(wf, call)("nope")
    assert info.value.workflow_id == "nope"


def test_resume_all_resumes_failed_only_when_asked(wf, tmp_path, log):
    flag = tmp_path / "flag"
    with pytest.raises(WorkflowExecutionError):
        wf.run(fail_unless.bind(str(flag), 9, str(log)), workflow_id="rf")
    assert wf.resume_all() == []
    flag.touch()
    handles = wf.resume_all(include_failed=True)
    assert [wid for wid, _ in handles] == ["rf"]
    assert ray.get(handles[0][1]) == 9


def test_independent_branches_run_at_the_same_time(wf, tmp_path):
    dag = add.bind(barrier.bind("a", "b", str(tmp_path)), barrier.bind("b", "a", str(tmp_path)))
    assert wf.run(dag) == "ab"


def test_native_tasks_run_as_ray_tasks(wf):
    value, pid = wf.run(native_pid.bind(3))
    assert value == 3 and pid != os.getpid()


def test_memory_storage_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="memory://"):
        workflow.init("memory://", executor="ray")
    workflow.init("memory://")  # no executor chosen: a Ray DAG goes to the cluster, which cannot
    try:
        with pytest.raises(ValueError, match="memory://"):
            workflow.run(add.bind(1, 2))
    finally:
        workflow.shutdown()
