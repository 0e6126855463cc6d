"""The facade's calls added in issue 15/16/logs, end to end: what ``workflow.*`` promises.

``timeout_s`` on run / run_async / submit, ``cancel(wait=...)``, ``get_logs``, the cooperative
checks, the exported errors and the virtual actor names (the drop-in's ``workflow`` module).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import durableflow
from durableflow import Client, WorkflowExecutionError, WorkflowStatus, workflow
from helpers import wait_until


@workflow.task
def patient(seconds: float, started: str = "") -> str:
    if started:
        Path(started).touch()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        workflow.check_cancelled()  # a thread task stops here on a cancel or a timeout
        time.sleep(0.01)
    return "done"


@workflow.task
def chatty(n: int) -> int:
    print(f"line {n}")
    return n


@workflow.task
def then_sleep() -> object:
    return workflow.sleep(0)


def test_run_timeout_fails_the_workflow_with_a_timeout_error(wf: object) -> None:
    start = time.monotonic()
    with pytest.raises(WorkflowExecutionError) as caught:
        workflow.run(patient.bind(30), workflow_id="slow", timeout_s=0.5)
    assert time.monotonic() - start < 20
    assert isinstance(caught.value.__cause__, workflow.WorkflowTimeoutError)
    assert workflow.get_status("slow") is WorkflowStatus.FAILED
    assert workflow.client().store.read_run("slow").extra["timeout_s"] == 0.5


def test_run_async_and_submit_store_the_time_limit(wf: object) -> None:
    future = workflow.run_async(patient.bind(30), workflow_id="slow-async", timeout_s=0.5)
    with pytest.raises(WorkflowExecutionError) as caught:
        future.result(timeout=20)
    assert isinstance(caught.value.__cause__, durableflow.WorkflowTimeoutError)
    workflow.submit(chatty.bind(1), workflow_id="later", timeout_s=7)
    assert workflow.client().store.read_run("later").extra["timeout_s"] == 7.0
    assert workflow.get_status("later") is WorkflowStatus.PENDING
    with pytest.raises(ValueError, match="timeout_s"):
        workflow.run(chatty.bind(1), workflow_id="bad", timeout_s=0)
    with pytest.raises(workflow.WorkflowNotFoundError):
        workflow.get_status("bad")  # nothing stored for a refused limit


def test_cancel_without_wait_returns_at_once_and_with_wait_when_stopped(
    wf: object, tmp_path: Path
) -> None:
    started = tmp_path / "started-1"
    future = workflow.run_async(patient.bind(30, str(started)), workflow_id="c1")
    wait_until(started.exists, timeout=20)
    workflow.cancel("c1", wait=False)
    with pytest.raises(workflow.WorkflowCancellationError):
        future.result(timeout=20)
    wait_until(lambda: workflow.get_status("c1") is WorkflowStatus.CANCELED)
    started = tmp_path / "started-2"
    future = workflow.run_async(patient.bind(30, str(started)), workflow_id="c2")
    wait_until(started.exists, timeout=20)
    workflow.cancel("c2", wait=True, timeout=20)
    assert future.done()  # nothing of it runs when cancel returns
    assert workflow.get_status("c2") is WorkflowStatus.CANCELED


def test_get_logs_through_the_facade(wf: object) -> None:
    assert workflow.run(chatty.options(task_id="talk").bind(3), workflow_id="logs") == 3
    logs = workflow.get_logs("logs")
    assert [entry.text for entry in logs["talk"]] == ["line 3\n"]
    assert workflow.get_logs("logs", "talk")["talk"][0].attempt == 1
    with pytest.raises(workflow.WorkflowNotFoundError):
        workflow.get_logs("nope")


def test_cancelled_outside_a_task_is_false_and_sleep_still_builds_nodes(wf: object) -> None:
    assert workflow.cancelled() is False
    workflow.check_cancelled()  # outside a task: returns
    assert workflow.run(then_sleep.bind(), workflow_id="zz") is None


def test_init_takes_opentelemetry_providers(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from durableflow import telemetry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    workflow.init(str(tmp_path / "store"), tracer_provider=provider)
    try:
        workflow.run(chatty.bind(5), workflow_id="traced")
        assert exporter.get_finished_spans(), "no span reached the provider given to init"
    finally:
        workflow.shutdown()
        telemetry.configure()
    with pytest.raises(TypeError, match="tracer_provider"):
        workflow.init(str(tmp_path / "store"), tracer_provider=object())
    workflow.shutdown()


def test_the_drop_in_module_carries_the_new_names() -> None:
    for name in (
        "virtual_actor",
        "get_actor",
        "list_actors",
        "delete_actor",
        "upgrade_actor",
        "get_logs",
        "cancelled",
        "check_cancelled",
        "WorkflowTimeoutError",
        "RuntimeEnvError",
    ):
        assert name in workflow.__all__ and hasattr(workflow, name), name
    assert Client.get_logs.__doc__ and Client.submit.__doc__
