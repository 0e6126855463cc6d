"""Ray Workflows programs and their ``except`` clauses keep working (issue 11, embedded).

The behaviours of Ray's own workflow tests, without a cluster: the module's exports, the errors
in the places Ray raised them (each also what Ray raised), ``init``'s checks, ``WorkflowRef``,
and an unmodified ``from ray import workflow`` program run by ``python -m durableflow run``.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durableflow import (
    ResumeNotFoundError,
    WorkflowError,
    WorkflowIncompleteError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowQueueFullError,
    WorkflowStatus,
    WorkflowStillActiveError,
    workflow,
)


@workflow.task
def blocked(x: int, gate: str) -> int:
    """Return ``x`` once the file ``gate`` exists."""
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        assert time.monotonic() < deadline, "the test never opened the gate"
        time.sleep(0.005)
    return x


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[str]:
    """A closed gate for :func:`blocked`; open it with ``Path(gate).touch()``."""
    path = tmp_path / "gate"
    yield str(path)
    path.touch()


@workflow.task
def simple() -> int:
    return 0


@workflow.task
def incr(x: int) -> int:
    return x + 1


@pytest.fixture
def wf(storage_dir: Path, gate: str) -> Iterator[Any]:
    workflow.init(str(storage_dir))
    yield workflow
    Path(gate).touch()
    workflow.shutdown(wait=False)


# --- item 1: the module carries what ray.workflow carried -----------------------------------
def test_the_module_exports_errors_status_and_every_status():
    for name in ("WorkflowError", "WorkflowExecutionError", "WorkflowCancellationError"):
        assert issubclass(getattr(workflow, name), WorkflowError)
    assert workflow.WorkflowStatus is WorkflowStatus
    for status in WorkflowStatus:
        assert getattr(workflow, status.name) is status
    assert workflow.exceptions.WorkflowNotFoundError is WorkflowNotFoundError
    assert workflow.common.WorkflowRef is workflow.WorkflowRef
    assert set(workflow.__all__) >= {s.name for s in WorkflowStatus}


def test_statuses_as_attributes_filter_list_all(wf):
    wf.run(simple.bind(), workflow_id="done")
    assert wf.list_all({wf.SUCCESSFUL}) == [("done", wf.SUCCESSFUL)]
    assert wf.get_status("done") == wf.SUCCESSFUL


# --- item 3: errors where Ray raised them ---------------------------------------------------
def test_run_or_resume_of_a_running_id_is_also_a_runtime_error(wf, gate):
    wf.run_async(blocked.bind(1, gate), workflow_id="busy")
    with pytest.raises(RuntimeError) as excinfo:
        wf.run(blocked.bind(1, gate), workflow_id="busy")
    assert isinstance(excinfo.value, WorkflowStillActiveError)
    with pytest.raises(RuntimeError):
        wf.resume("busy")
    Path(gate).touch()
    assert wf.get_output("busy") == 1


def test_unknown_workflow_or_task_ids_are_also_value_errors(wf):
    wf.run(simple.options(task_id="simple_task").bind(), workflow_id="simple")
    with pytest.raises(ValueError) as excinfo:
        wf.get_metadata("simple1")
    assert isinstance(excinfo.value, WorkflowNotFoundError)
    assert excinfo.value.workflow_id == "simple1"
    with pytest.raises(ValueError):
        wf.get_metadata("simple1", "simple_task")
    with pytest.raises(ValueError) as excinfo:
        wf.get_metadata("simple", "simple_task1")
    assert excinfo.value.task_id == "simple_task1"  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        wf.get_output("simple", task_id="simple_task1")


def test_a_full_queue_is_also_queue_full(storage_dir, gate):
    workflow.init(str(storage_dir), max_running_workflows=1, max_pending_workflows=1)
    try:
        first = workflow.run_async(blocked.bind(0, gate), workflow_id="w0")
        second = workflow.run_async(blocked.bind(1, gate), workflow_id="w1")
        assert workflow.get_status("w1") == workflow.PENDING
        with pytest.raises(queue.Full) as excinfo:
            workflow.run(blocked.bind(2, gate), workflow_id="w2")
        assert isinstance(excinfo.value, WorkflowQueueFullError)
        Path(gate).touch()
        assert (first.result(60), second.result(60)) == (0, 1)
        assert workflow.run(blocked.bind(2, gate), workflow_id="w2") == 2
    finally:
        Path(gate).touch()
        workflow.shutdown(wait=False)


def test_resume_of_an_unknown_id_is_not_found_and_not_resumable(wf):
    for call in (wf.resume, wf.resume_async):
        with pytest.raises(WorkflowNotResumableError) as excinfo:
            call("never-stored")
        assert isinstance(excinfo.value, WorkflowNotFoundError)
        assert isinstance(excinfo.value, ResumeNotFoundError)
        assert excinfo.value.workflow_id == "never-stored"


def test_output_of_a_resumable_workflow_is_a_value_error_saying_to_resume(storage_dir, gate):
    workflow.init(str(storage_dir))
    try:
        workflow.run_async(blocked.bind(7, gate), workflow_id="stopped")
    finally:
        workflow.shutdown(wait=False)  # its runner is gone: RESUMABLE
    workflow.init(str(storage_dir))
    try:
        assert workflow.get_status("stopped") == workflow.RESUMABLE
        with pytest.raises(ValueError, match="resume") as excinfo:
            workflow.get_output("stopped")
        assert isinstance(excinfo.value, WorkflowIncompleteError)
        Path(gate).touch()
        assert workflow.resume("stopped") == 7
    finally:
        Path(gate).touch()
        workflow.shutdown(wait=False)


# --- item 3: init's checks ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_running_workflows": 1.7}, TypeError),
        ({"max_pending_workflows": 1.7}, TypeError),
        ({"max_running_workflows": True}, TypeError),
        ({"max_running_workflows": -2}, ValueError),
        ({"max_running_workflows": 0}, ValueError),
        ({"max_pending_workflows": -2}, ValueError),
    ],
)
def test_init_checks_its_limits(storage_dir, kwargs, error):
    with pytest.raises(error):
        workflow.init(str(storage_dir), **kwargs)
    assert not workflow.is_initialized()


def test_init_again_with_other_limits_is_refused(storage_dir):
    workflow.init(str(storage_dir), max_running_workflows=5, max_pending_workflows=6)
    try:
        first = workflow.client()
        workflow.init(max_running_workflows=5, max_pending_workflows=6)
        with pytest.raises(ValueError, match="max_running_workflows"):
            workflow.init(max_running_workflows=7, max_pending_workflows=8)
        with pytest.raises(ValueError, match="max_pending_workflows"):
            workflow.init(str(storage_dir), max_pending_workflows=8)
        assert workflow.init() is first
        assert workflow.init(max_running_workflows=None, max_pending_workflows=None) is first
        assert (first.max_running_workflows, first.max_pending_workflows) == (5, 6)
    finally:
        workflow.shutdown()


# --- item 12: WorkflowRef -------------------------------------------------------------------
def test_a_workflow_ref_reads_an_earlier_task_of_the_workflow(wf):
    start = incr.options(task_id="start").bind(0)
    assert wf.run(incr.bind(start), workflow_id="dynamic") == 2
    # As in Ray: a stored id is resumed (here: finished), whatever DAG is given.
    assert wf.run(incr.bind(workflow.WorkflowRef("start")), workflow_id="dynamic") == 2


def test_a_continuation_naming_a_task_its_workflow_lacks_fails_its_parent(wf):
    @workflow.task
    def dangling() -> Any:
        return workflow.continuation(incr.bind(workflow.WorkflowRef("start")))

    with pytest.raises(workflow.WorkflowExecutionError) as excinfo:
        wf.run(dangling.bind(), workflow_id="dangling")
    assert isinstance(excinfo.value.__cause__, ValueError)
    assert "WorkflowRef('start')" in str(excinfo.value.__cause__)
    assert wf.get_status("dangling") == wf.FAILED


def test_a_continuation_reads_a_task_finished_before_it(wf):
    @workflow.task
    def later(_: int) -> Any:
        return workflow.continuation(incr.bind(workflow.WorkflowRef("start")))

    start = incr.options(task_id="start").bind(10)
    assert wf.run(later.bind(start), workflow_id="continued") == 12


# --- item 13: an unmodified Ray Workflows program -------------------------------------------
RAY_PROGRAM = """
import sys
import ray
from ray import workflow
from ray.workflow.common import WorkflowRef
from ray.workflow.exceptions import WorkflowExecutionError, WorkflowNotFoundError

@workflow.options(task_id="one", metadata={"stage": "first"})
@ray.remote
def one():
    return 1

@ray.remote
def add(a, b):
    return a + b

@ray.remote
def fail():
    raise ValueError("boom")

workflow.init(max_running_workflows=2)
assert workflow.run(add.bind(one.bind(), 41), workflow_id="sum") == 42
assert workflow.get_metadata("sum", "one")["user_metadata"] == {"stage": "first"}
assert workflow.get_status("sum") == workflow.SUCCESSFUL
try:
    workflow.run(fail.bind(), workflow_id="fails")
except WorkflowExecutionError:
    print("caught the failure")
try:
    workflow.get_metadata("nope")
except ValueError:
    print("caught ValueError")
assert WorkflowRef("one").task_id == "one"
print("argv", sys.argv[1:], "name", __name__)
"""


def test_python_m_durableflow_run_runs_an_unmodified_ray_workflows_program(tmp_path, storage_dir):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'durableflow[ray]')")
    script = tmp_path / "ray_program.py"
    script.write_text(textwrap.dedent(RAY_PROGRAM))
    env = {**os.environ, "DURABLEFLOW_STORAGE": str(storage_dir), "RAY_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, "-m", "durableflow", "run", str(script), "--flag", "x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines == [
        "caught the failure",
        "caught ValueError",
        "argv ['--flag', 'x'] name __main__",
    ]
    # Without the aliases the same program fails on this Ray at its first line.
    plain = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=110
    )
    assert plain.returncode != 0


def test_python_m_durableflow_run_dash_m_runs_a_module(tmp_path, storage_dir):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'durableflow[ray]')")
    (tmp_path / "ray_module.py").write_text(textwrap.dedent(RAY_PROGRAM))
    env = {**os.environ, "DURABLEFLOW_STORAGE": str(storage_dir), "RAY_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, "-m", "durableflow", "run", "-m", "ray_module", "a"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "argv ['a'] name __main__"


def test_python_m_durableflow_without_run_is_the_cli(storage_dir):
    done = subprocess.run(
        [sys.executable, "-m", "durableflow", "--storage", str(storage_dir), "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "durableflow", "run"], capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2 and "usage" in usage.stderr
