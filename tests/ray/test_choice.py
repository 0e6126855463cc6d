"""Choosing the executor: init(executor=...), $DURABLEFLOW_EXECUTOR, or Ray DAG + initialized Ray."""

from __future__ import annotations

import os
from concurrent.futures import Future

import pytest
import ray

from durableflow import WorkflowExecutionError, workflow


@ray.remote
def ray_pid(x: int) -> tuple[int, int]:
    return x, os.getpid()


@workflow.task
def native_pid(x: int) -> tuple[int, int]:
    return x, os.getpid()


def run_async_kind_and_pid(dag):  # type: ignore[no-untyped-def]
    handle = workflow.run_async(dag)
    if isinstance(handle, ray.ObjectRef):
        return "ray", ray.get(handle)[1]
    assert isinstance(handle, Future)
    return "embedded", handle.result(timeout=60)[1]


def test_init_with_executor_ray_runs_every_dag_on_the_cluster(storage_dir):
    workflow.init(str(storage_dir), executor="ray")
    try:
        for dag in (ray_pid.bind(1), native_pid.bind(1)):
            kind, pid = run_async_kind_and_pid(dag)
            assert kind == "ray" and pid != os.getpid()
    finally:
        workflow.shutdown()


def test_the_environment_variable_chooses_ray(storage_dir, monkeypatch):
    monkeypatch.setenv("DURABLEFLOW_EXECUTOR", "ray")
    workflow.init(str(storage_dir))
    try:
        kind, pid = run_async_kind_and_pid(native_pid.bind(2))
        assert kind == "ray" and pid != os.getpid()
    finally:
        workflow.shutdown()


def test_with_ray_initialized_a_ray_dag_goes_to_ray_without_configuration(storage_dir):
    workflow.init(str(storage_dir))
    try:
        kind, pid = run_async_kind_and_pid(ray_pid.bind(3))
        assert kind == "ray" and pid != os.getpid()
        kind, pid = run_async_kind_and_pid(native_pid.bind(3))  # our own DAG stays embedded
        assert kind == "embedded" and pid == os.getpid()
    finally:
        workflow.shutdown()


def test_an_explicit_embedded_executor_keeps_ray_dags_in_this_process(storage_dir):
    workflow.init(str(storage_dir), executor="thread")
    try:
        kind, pid = run_async_kind_and_pid(ray_pid.bind(4))
        assert kind == "embedded" and pid == os.getpid()
        assert workflow.run(ray_pid.bind(5))[0] == 5
    finally:
        workflow.shutdown()


@ray.remote
def ray_flag(flag: str) -> str:
    if not os.path.exists(flag):
        raise ValueError("no flag")
    return "ray"


@workflow.task
def native_flag(flag: str) -> str:
    if not os.path.exists(flag):
        raise ValueError("no flag")
    return "native"


def test_without_configuration_each_stored_workflow_resumes_where_its_kind_runs(
    storage_dir, tmp_path
):
    flag = tmp_path / "flag"
    workflow.init(str(storage_dir))
    try:
        for wid, dag in (
            ("r1", ray_flag),
            ("r2", ray_flag),
            ("n1", native_flag),
            ("n2", native_flag),
        ):
            with pytest.raises(WorkflowExecutionError):
                workflow.run(dag.bind(str(flag)), workflow_id=wid)
        flag.touch()
        assert isinstance(workflow.resume_async("r1"), ray.ObjectRef)
        assert isinstance(workflow.resume_async("n1"), Future)
        handles = dict(workflow.resume_all(include_failed=True))
        assert sorted(handles) == ["n2", "r2"]
        assert isinstance(handles["r2"], ray.ObjectRef) and ray.get(handles["r2"]) == "ray"
        assert isinstance(handles["n2"], Future) and handles["n2"].result(60) == "native"
        assert ray.get(workflow.get_output_async("r1")) == "ray"
        assert workflow.get_output_async("n1").result(60) == "native"
    finally:
        workflow.shutdown()


def test_a_client_on_the_ray_runner_runs_on_the_cluster_whatever_its_executor(storage_dir):
    from durableflow import Client

    with Client(str(storage_dir), runner="ray") as client:  # its own executor: thread
        handle = client.run_async(native_pid.bind(6), workflow_id="on-ray")
        assert isinstance(handle, ray.ObjectRef)
        value, pid = ray.get(handle)
        assert value == 6 and pid != os.getpid()
        assert client.run(native_pid.bind(7), workflow_id="on-ray-2")[0] == 7
        assert isinstance(client.get_output_async("on-ray"), ray.ObjectRef)
    with Client(str(storage_dir)) as embedded:  # the default runner: here
        assert isinstance(embedded.run_async(native_pid.bind(8)), Future)
