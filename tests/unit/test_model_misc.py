"""Ids, statuses, records and the public names."""

from __future__ import annotations

import pytest

import durableflow
from durableflow import InvalidWorkflowIdError, WorkflowStatus
from durableflow.model.ids import validate_workflow_id
from durableflow.model.records import ErrorInfo, RunRecord
from durableflow.model.status import parse_status_filter


@pytest.mark.parametrize(
    "bad", ["", "../x", "a/b", "a\\b", "x" * 256, "a\x00b", "a\nb", "..", ".hidden", 5]
)
def test_bad_workflow_ids_are_refused(bad):
    with pytest.raises(InvalidWorkflowIdError):
        validate_workflow_id(bad)


@pytest.mark.parametrize("good", ["a", "my-flow_1.2", "x" * 255, "täglich@2026-01-01T00:00", "a b"])
def test_good_workflow_ids_pass(good):
    assert validate_workflow_id(good) == good


def test_invalid_id_error_is_also_a_value_error_and_carries_the_id():
    with pytest.raises(ValueError) as info:
        validate_workflow_id("a/b")
    assert info.value.workflow_id == "a/b"


def test_status_filter_forms():
    assert parse_status_filter(None) is None
    assert parse_status_filter("failed") == {WorkflowStatus.FAILED}
    assert parse_status_filter(WorkflowStatus.RUNNING) == {WorkflowStatus.RUNNING}
    assert parse_status_filter({"FAILED", WorkflowStatus.CANCELED}) == {
        WorkflowStatus.FAILED,
        WorkflowStatus.CANCELED,
    }
    with pytest.raises(ValueError, match="unknown workflow status"):
        parse_status_filter("DONE")


def test_status_is_a_str_enum_with_helpers():
    assert WorkflowStatus.RUNNING == "RUNNING"
    assert WorkflowStatus.PENDING.is_active and not WorkflowStatus.FAILED.is_active
    assert WorkflowStatus.CANCELED.is_terminal and not WorkflowStatus.RESUMABLE.is_terminal


def test_run_record_round_trip_keeps_unknown_fields():
    record = RunRecord(
        "w",
        WorkflowStatus.FAILED,
        "root",
        1.0,
        2.0,
        user_metadata={"a": 1},
        error=ErrorInfo.from_exception(ValueError("boom"), "t"),
    )
    raw = record.to_bytes()
    back = RunRecord.from_bytes(raw)
    assert back == record
    import json

    data = json.loads(raw)
    data["future_field"] = 7
    assert RunRecord.from_bytes(json.dumps(data).encode()).extra == {"future_field": 7}


def test_public_names_are_pinned():
    assert set(durableflow.__all__) == {
        "CheckpointCorruptError",
        "CheckpointSignatureError",
        "Client",
        "EnvironmentMismatchError",
        "InputNode",
        "InvalidWorkflowIdError",
        "ResumeNotFoundError",
        "RuntimeEnvError",
        "SerializationError",
        "Storage",
        "StorageError",
        "StorageFullError",
        "StorageURLError",
        "StorageUnavailableError",
        "TaskFunction",
        "TaskOptions",
        "WorkflowCancellationError",
        "WorkflowError",
        "WorkflowExecutionError",
        "WorkflowExistsError",
        "WorkflowIncompleteError",
        "WorkflowNotFoundError",
        "WorkflowNotResumableError",
        "WorkflowQueueFullError",
        "WorkflowRef",
        "WorkflowStatus",
        "WorkflowStillActiveError",
        "WorkflowTimeoutError",
        "__version__",
        "install_ray_workflow",
        "task",
        "uninstall_ray_workflow",
        "workflow",
    }
    for name in durableflow.__all__:
        assert hasattr(durableflow, name)


def test_every_error_has_one_root_and_pickles_with_its_ids():
    import pickle

    for name in durableflow.__all__:
        obj = getattr(durableflow, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, durableflow.WorkflowError)
            err = obj("msg", workflow_id="w", task_id="t")
            back = pickle.loads(pickle.dumps(err))
            assert (type(back), str(back), back.workflow_id, back.task_id) == (obj, "msg", "w", "t")


def test_import_durableflow_does_not_import_ray_boto3_or_web_libraries():
    import subprocess
    import sys

    code = (
        "import sys, durableflow; from durableflow import workflow; "
        "bad = [m for m in ('ray', 'boto3', 'botocore', 'starlette', 'fastapi', 'aiohttp', 'flask') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- task kinds that cannot be tasks (issue 10.10; async def tasks run since issue 15) -----------


def _gen_numbers(n: int):
    yield from range(n)


async def _async_gen_numbers(n: int):
    for i in range(n):
        yield i


@pytest.mark.parametrize(
    ("func", "words"),
    [
        (_gen_numbers, "generator function"),
        (_async_gen_numbers, "async generator"),
    ],
    ids=["generator", "async-generator"],
)
def test_generator_functions_are_refused_at_decoration(func, words):
    from durableflow import workflow

    for decorate in (workflow.task, workflow.task(max_retries=1), workflow.step):
        with pytest.raises(TypeError) as caught:
            decorate(func)
        message = str(caught.value)
        assert words in message, message
        assert "not supported" in message or "cannot be checkpointed" in message, message
    name = getattr(func, "__qualname__", None) or repr(func)
    assert name in message


# --- calling a task directly (issue 10.11: kept, warned once per function) -----------------------


def test_calling_a_task_directly_runs_it_warns_once_and_checkpoints_nothing(tmp_path, caplog):
    import logging

    from durableflow import Client, workflow

    @workflow.task
    def add(a: int, b: int) -> int:
        return a + b

    @workflow.task
    def mul(a: int, b: int) -> int:
        return a * b

    client = Client(str(tmp_path / "store"))
    try:
        with caplog.at_level(logging.WARNING, logger="durableflow"):
            assert add(1, 2) == 3
            assert add(2, 2) == 4
            assert add.options(max_retries=0)(3, 3) == 6  # same function: no second warning
            assert mul(2, 3) == 6
        warned = [r for r in caplog.records if "called directly" in r.getMessage()]
        assert [r.levelname for r in warned] == ["WARNING", "WARNING"]
        assert "add" in warned[0].getMessage() and ".bind(" in warned[0].getMessage()
        assert "mul" in warned[1].getMessage()
        assert all(r.name == "durableflow" for r in warned)
        assert client.list_all() == []  # nothing was stored
    finally:
        client.close()


def test_a_workflow_run_logs_no_direct_call_warning(tmp_path, caplog):
    import logging

    from durableflow import Client, workflow

    @workflow.task
    def double(x: int) -> int:
        return 2 * x

    client = Client(str(tmp_path / "store"))
    try:
        with caplog.at_level(logging.WARNING, logger="durableflow"):
            assert client.run(double.bind(double.bind(2)), workflow_id="w") == 8
        assert not [r for r in caplog.records if "called directly" in r.getMessage()]
    finally:
        client.close()
