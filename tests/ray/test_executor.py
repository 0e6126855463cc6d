"""The Ray executor itself: options, resources, the object store hand-off, the install hint."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

from durableflow import WorkflowCancellationError, WorkflowStatus, workflow
from durableflow.model.calls import TaskCall
from durableflow.model.dag import TaskRef, flatten
from durableflow.ray.executor import RayExecutor, ray_task_options
from durableflow.ray.packing import pack, unpack
from durableflow.runtime.attempt import execute_task
from durableflow.storage.serializer import Serializer
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage


@ray.remote
def touch_and_report(path: str) -> float:
    Path(path).touch()
    return ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0)


@ray.remote
def env_value(name: str) -> str:
    return os.environ.get(name, "")


def double(x: int) -> int:
    return 2 * x


@workflow.task
def native_add(a: object, b: object) -> object:
    return (a, b)


def test_ray_options_keep_the_tasks_and_switch_ray_retries_off():
    options = {
        "num_cpus": 2,
        "resources": {"gpu_ish": 1},
        "max_retries": 7,
        "retry_exceptions": True,
        "num_returns": 3,
        "max_calls": 1,
    }
    assert ray_task_options(options, "t") == {
        "num_cpus": 2,
        "resources": {"gpu_ish": 1},
        "name": "t",
        "max_retries": 0,
        "retry_exceptions": False,
    }
    assert ray_task_options({"name": "mine"}, "t")["name"] == "mine"


def _call(store_url: str, task_id: str, args: tuple, **fields) -> TaskCall:  # type: ignore[type-arg]
    return TaskCall(
        workflow_id="wid",
        task_id=task_id,
        attempt=1,
        func=double,
        args=args,
        kwargs={},
        inputs={},
        checkpoint=True,
        catch=False,
        store_url=store_url,
        return_value=False,
        **fields,
    )


def test_outputs_travel_through_the_object_store_inside_the_cluster(storage_dir):
    url = f"file://{storage_dir}"
    store = WorkflowStore(open_storage(url), Serializer())
    executor = RayExecutor()
    first = executor.submit(execute_task, _call(url, "a", (21,)), {}).result(timeout=60)
    assert first.kind == "ok" and first.value_ref is not None
    assert not first.has_value  # the value stayed in the cluster: the checkpoint has it too
    assert store.read_output("wid", "a") == 42
    store.storage.delete("v1/workflows/wid/tasks/a/output")  # only the object store has it now
    second = executor.submit(
        execute_task, _call(url, "b", (TaskRef("a"),), input_refs={"a": first.value_ref}), {}
    ).result(timeout=60)
    assert second.kind == "ok", second.error
    assert store.read_output("wid", "b") == 84


def test_without_a_ref_the_consumer_reads_the_checkpoint(storage_dir):
    url = f"file://{storage_dir}"
    executor = RayExecutor()
    executor.submit(execute_task, _call(url, "a", (5,)), {}).result(timeout=60)
    second = executor.submit(execute_task, _call(url, "b", (TaskRef("a"),)), {}).result(timeout=60)
    assert second.kind == "ok"
    store = WorkflowStore(open_storage(url), Serializer())
    assert store.read_output("wid", "b") == 20


def test_a_task_asking_for_more_cpus_than_the_cluster_has_waits(wf, tmp_path):
    too_big, fits = tmp_path / "too_big", tmp_path / "fits"
    waiting = wf.run_async(
        touch_and_report.options(num_cpus=3).bind(str(too_big)), workflow_id="big"
    )
    assert wf.run(touch_and_report.options(num_cpus=2).bind(str(fits)), workflow_id="fits") == 2.0
    assert fits.exists()
    assert not too_big.exists()  # still waiting for 3 CPUs after a 2-CPU task ran and finished
    assert wf.get_status("big") == WorkflowStatus.RUNNING
    wf.cancel("big")
    assert wf.get_status("big") == WorkflowStatus.CANCELED
    with pytest.raises(WorkflowCancellationError):
        ray.get(waiting)
    assert not too_big.exists()


def test_custom_resources_are_requested(wf, tmp_path):
    marker = tmp_path / "ran"
    ref = wf.run_async(touch_and_report.options(resources={"unicorn": 1}).bind(str(marker)))
    assert wf.run(touch_and_report.options(num_cpus=0.5).bind(str(tmp_path / "other"))) == 0.5
    assert not marker.exists()
    wid = next(w for w, s in wf.list_all(WorkflowStatus.RUNNING))
    wf.cancel(wid)
    with pytest.raises(WorkflowCancellationError):
        ray.get(ref)


def test_runtime_env_reaches_the_task(wf):
    dag = env_value.options(runtime_env={"env_vars": {"DF_PROBE": "here"}}).bind("DF_PROBE")
    assert wf.run(dag) == "here"


def test_a_missing_ray_gives_the_install_hint(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from durableflow import Client, workflow\n"
        "for make in (lambda: Client(sys.argv[1], executor='ray'),\n"
        "             lambda: workflow.init(sys.argv[1], executor='ray')):\n"
        "    try:\n"
        "        make()\n"
        "    except ImportError as err:\n"
        "        print('HINT', err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    hints = [line for line in out.stdout.splitlines() if line.startswith("HINT")]
    assert len(hints) == 2, out.stderr
    assert all("pip install '.[ray]'" in line for line in hints)


def test_cancel_stops_a_running_ray_task(wf, tmp_path):
    started = tmp_path / "started"
    ref = wf.run_async(sleeper.bind(str(started)), workflow_id="sleepy")
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    wf.cancel("sleepy")
    with pytest.raises(WorkflowCancellationError):
        ray.get(ref)
    assert wf.get_status("sleepy") == WorkflowStatus.CANCELED
    # The sleeper held one of the two CPUs: a task needing both runs only once it was stopped.
    assert wf.run(touch_and_report.options(num_cpus=2).bind(str(tmp_path / "x"))) == 2.0


@ray.remote
def sleeper(started: str) -> None:
    Path(started).touch()
    time.sleep(300)


@ray.remote
def inc(x: int) -> int:
    return x + 1


def chain(length: int):  # type: ignore[no-untyped-def]
    node = inc.bind(0)
    for _ in range(length - 1):
        node = inc.bind(node)
    return node


@ray.remote
def continue_with_chain(length: int):  # type: ignore[no-untyped-def]
    return workflow.continuation(chain(length))


def test_dags_deeper_than_the_pickle_recursion_limit_run(storage_dir):
    workflow.init(str(storage_dir), executor="ray")
    try:
        assert workflow.run(chain(300), workflow_id="deep") == 300
        assert workflow.run(continue_with_chain.bind(300), workflow_id="deep-continuation") == 300
    finally:
        workflow.shutdown()


def test_packing_keeps_shared_nodes_shared():
    shared = native_add.bind(1, 2)
    root = native_add.bind(shared, {"again": [shared]})
    rebuilt = unpack(pack(root))
    assert rebuilt.args[0] is rebuilt.args[1]["again"][0]
    assert flatten(rebuilt).specs == flatten(root).specs
