"""Choosing the executor: init(executor=...), $DURABLEFLOW_EXECUTOR, or Ray DAG + initialized Ray."""

from __future__ import annotations

import os
from concurrent.futures import Future

import ray

from durableflow import workflow


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
