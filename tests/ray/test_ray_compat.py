"""Ray Workflows behaviours on a current Ray (issue 11): what Ray's own tests checked.

Each test is the behaviour a ``ray.workflow`` test pinned, written for durableflow: the
``workflow.options`` decorator and its chaining, event-only DAGs on the cluster, restarting Ray
in one process, ObjectRef chains as outputs, ``WorkflowRef``, and the ``ray.workflow`` aliases.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from durableflow import workflow
from durableflow.common import WORKFLOW_OPTIONS, WorkflowRef


@pytest.fixture
def wfs(storage_dir: Path) -> Iterator[Any]:
    """The facade on a fresh directory, no executor chosen: Ray DAGs go to the cluster."""
    workflow.init(str(storage_dir))
    yield workflow
    workflow.shutdown(wait=False)


def restart_ray() -> None:
    """``ray.shutdown(); ray.init(...)`` in this process, with the same job runtime env."""
    runtime_env = dict(ray.get_runtime_context().runtime_env)
    ray.shutdown()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        runtime_env=runtime_env,
    )


# --- item 2: workflow.options as a decorator ------------------------------------------------
def test_options_decorator_keeps_ray_options_and_chained_options_update_it():
    @workflow.options(task_id="old_name", metadata={"k": "v"})
    @ray.remote(num_cpus=2, max_retries=1)
    def f() -> None:
        return None

    chained = f.options(
        num_returns=2, **workflow.options(task_id="new_name", metadata={"extra_k2": "extra_v2"})
    )
    assert chained.bind().get_options() == {
        "num_cpus": 2,
        "num_returns": 2,
        "max_retries": 1,
        "_metadata": {
            WORKFLOW_OPTIONS: {"task_id": "new_name", "metadata": {"extra_k2": "extra_v2"}}
        },
    }
    # Only what the second .options() names changes: the decorator's task id stays.
    kept = f.options(**workflow.options(checkpoint=False)).bind().get_options()
    assert kept["_metadata"][WORKFLOW_OPTIONS] == {
        "task_id": "old_name",
        "metadata": {"k": "v"},
        "checkpoint": False,
    }


def test_a_decorated_function_runs_as_a_workflow_task_with_its_options(wfs):
    @workflow.options(task_id="simple_task", metadata={"k1": "v1"})
    @ray.remote
    def simple() -> int:
        return 0

    assert wfs.run(simple.bind(), workflow_id="simple", metadata={"k2": "v2"}) == 0
    assert wfs.get_metadata("simple")["user_metadata"] == {"k2": "v2"}
    assert wfs.get_metadata("simple", "simple_task")["user_metadata"] == {"k1": "v1"}
    assert wfs.get_output("simple", task_id="simple_task") == 0
    assert ray.get(simple.remote()) == 0  # still a plain Ray remote function


def test_duplicate_task_ids_from_the_decorator_get_suffixes(wfs):
    @workflow.options(task_id="f")
    @ray.remote
    def f(n: int, dep: Any) -> int:
        return n

    assert wfs.run(f.bind(20, f.bind(10, None)), workflow_id="duplicate") == 20
    assert wfs.get_output("duplicate", task_id="f") == 10  # upstream first, as in Ray 2.x
    assert wfs.get_output("duplicate", task_id="f_1") == 20


# --- item 6: default task ids ---------------------------------------------------------------
def test_default_task_ids_of_local_functions_drop_the_angle_brackets(wfs):
    @ray.remote
    def factorial(n: int, r: int = 1) -> Any:
        if n == 1:
            return r
        return workflow.continuation(factorial.bind(n - 1, r * n))

    assert wfs.run(factorial.bind(5), workflow_id="factorial") == 120
    base = f"{__name__}.test_default_task_ids_of_local_functions_drop_the_angle_brackets.locals"
    for i in range(5):
        task_id = f"{base}.factorial" + (f"_{i}" if i else "")
        assert wfs.get_output("factorial", task_id=task_id) == 120


# --- item 8: event and sleep DAGs ----------------------------------------------------------
def test_a_sleep_only_dag_runs_on_the_cluster_and_leaves_no_driver_thread(wfs):
    before = {t.ident for t in threading.enumerate() if not t.daemon}
    ref = wfs.run_async(workflow.sleep(0.2), workflow_id="nap")
    assert isinstance(ref, ray.ObjectRef)
    after = [t for t in threading.enumerate() if not t.daemon and t.ident not in before]
    assert after == []
    assert ray.get(ref) is None
    assert wfs.get_status("nap") == workflow.SUCCESSFUL


class Doorbell(workflow.EventListener):
    async def poll_for_event(self, name: str) -> str:
        return f"ding {name}"


def test_a_sleep_only_dag_outlives_the_drivers_client(storage_dir):
    # Driven by the cluster's coordinator, not by this process: closing the driver's Client
    # without waiting (what exiting does) leaves it running, where a driver thread would have
    # left it RESUMABLE.
    workflow.init(str(storage_dir))
    try:
        ref = workflow.run_async(workflow.sleep(1.0), workflow_id="long-nap")
    finally:
        workflow.shutdown(wait=False)
    assert ray.get(ref) is None
    workflow.init(str(storage_dir))
    try:
        assert workflow.get_status("long-nap") == workflow.SUCCESSFUL
    finally:
        workflow.shutdown()


def test_an_event_only_dag_runs_on_the_cluster_and_resumes_there(wfs):
    ref = wfs.run_async(workflow.wait_for_event(Doorbell, "door"), workflow_id="bell")
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == "ding door"
    assert ray.get(wfs.resume_async("bell")) == "ding door"  # a stored event-only workflow


# --- item 9: restarting Ray in one process --------------------------------------------------
@pytest.mark.skipif(
    not os.environ.get("DURABLEFLOW_SLOW"),
    reason="restarts a local Ray three times, 25-45 s (DURABLEFLOW_SLOW=1)",
)
def test_restarting_ray_three_times_in_one_process(wfs):
    @ray.remote
    def where(i: int) -> tuple[int, str]:
        return i, ray.get_runtime_context().get_session_name()

    @ray.remote
    def nested_ref() -> Any:
        return ray.put(42)

    @ray.remote
    def nested_ref_workflow() -> Any:
        return nested_ref.remote()

    sessions = []
    for i in range(3):
        if i:
            restart_ray()
        ref = wfs.run_async(where.bind(i), workflow_id=f"restart-{i}")
        assert isinstance(ref, ray.ObjectRef)
        value, session = ray.get(ref)
        assert value == i
        sessions.append(session)
        if i == 0:
            single = wfs.run(nested_ref_workflow.bind(), workflow_id="chain")
            assert ray.get(ray.get(single)) == 42
    assert len(set(sessions)) == 3
    # An ObjectRef chain stored on the first cluster comes back as a chain on the third.
    restored = wfs.get_output("chain")
    assert ray.get(ray.get(restored)) == 42


# --- item 10: ObjectRef chains as outputs ---------------------------------------------------
def test_object_ref_chains_and_lists_of_refs_as_outputs(wfs):
    @ray.remote
    def nested_ref() -> Any:
        return ray.put(42)

    @ray.remote
    def nested_ref_workflow() -> Any:
        return nested_ref.remote()

    @ray.remote
    def return_objectrefs() -> list[Any]:
        return [ray.put(x) for x in range(5)]

    single = wfs.run(nested_ref_workflow.bind(), workflow_id="single")
    assert ray.get(ray.get(single)) == 42
    assert ray.get(ray.get(wfs.get_output("single"))) == 42  # read back from the checkpoint
    multi = wfs.run(return_objectrefs.bind(), workflow_id="multi")
    assert ray.get(multi) == list(range(5))


# --- item 12: WorkflowRef ------------------------------------------------------------------
def test_a_workflow_ref_passes_an_earlier_tasks_stored_output(wfs):
    @ray.remote
    def incr(x: int) -> int:
        return x + 1

    @ray.remote
    def add(a: int, b: int) -> int:
        return a + b

    @ray.remote
    def then_double() -> Any:
        return workflow.continuation(add.bind(WorkflowRef("start"), WorkflowRef("start")))

    start = incr.options(**workflow.options(task_id="start")).bind(0)
    assert wfs.run(incr.bind(start), workflow_id="ref") == 2
    # Run again with another DAG: the stored workflow is resumed, as in Ray.
    assert wfs.run(incr.bind(WorkflowRef("start")), workflow_id="ref") == 2

    dag = add.bind(start, then_double.options(**workflow.options(task_id="later")).bind())
    assert wfs.run(dag, workflow_id="ref-continuation") == 1 + 2


# --- item 13: an unmodified Ray Workflows program, in this process ----------------------------
def test_install_ray_workflow_runs_ray_workflows_code_on_the_cluster(wfs):
    from durableflow import install_ray_workflow, uninstall_ray_workflow

    install_ray_workflow()
    try:
        from ray import workflow as ray_workflow
        from ray.workflow.exceptions import WorkflowExecutionError

        assert ray_workflow is workflow

        @ray.remote
        def boom() -> None:
            raise ValueError("boom")

        @ray.remote
        def one() -> int:
            return 1

        ref = ray_workflow.run_async(one.bind(), workflow_id="installed")
        assert isinstance(ref, ray.ObjectRef) and ray.get(ref) == 1
        with pytest.raises(WorkflowExecutionError):
            ray_workflow.run(boom.bind(), workflow_id="installed-boom")
        assert ray_workflow.get_status("installed-boom") == ray_workflow.FAILED
    finally:
        uninstall_ray_workflow()
