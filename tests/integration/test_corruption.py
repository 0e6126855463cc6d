"""Corrupt or foreign stored values give clear errors and lose nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from durableflow import (
    CheckpointCorruptError,
    Client,
    WorkflowExecutionError,
    WorkflowStatus,
    workflow,
)
from durableflow.storage import layout
from helpers import count_lines


@workflow.task
def step(name: str, value: int, log: str, flag: str | None = None) -> int:
    with open(log, "a") as handle:
        handle.write(name + "\n")
    if flag is not None and not os.path.exists(flag):
        raise RuntimeError("not yet")
    return value + 1


def build(log: str, flag: str):
    t1 = step.options(task_id="t1").bind("t1", 0, log)
    t2 = step.options(task_id="t2").bind("t2", t1, log)
    return step.options(task_id="t3", max_retries=0).bind("t3", t2, log, flag)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "foreign-pickle"])
def test_corrupt_checkpoint_names_workflow_and_task_then_resumes_after_removal(
    storage_url, tmp_path, damage
):
    import pickle

    log, flag = str(tmp_path / "log"), str(tmp_path / "flag")
    with Client(storage_url) as client:
        with pytest.raises(WorkflowExecutionError):
            client.run(build(log, flag), workflow_id="wf")
        assert client.get_status("wf") is WorkflowStatus.FAILED
        key = layout.output_key("wf", "t2")
        data = client.storage.get(key)
        assert data is not None
        client.storage.put(
            key,
            {
                "truncate": data[: len(data) // 2],
                "garbage": os.urandom(len(data)),
                "empty": b"",
                "foreign-pickle": pickle.dumps(1),
            }[damage],
        )

        with pytest.raises(CheckpointCorruptError) as info:
            client.get_output("wf", task_id="t2")
        err = info.value
        assert (err.workflow_id, err.task_id) == ("wf", "t2")
        assert err.key == layout.output_key("wf", "t2")
        assert "'wf'" in str(err) and "'t2'" in str(err)

        Path(flag).touch()
        with pytest.raises(WorkflowExecutionError) as info:
            client.resume("wf")
        cause = info.value.__cause__
        assert isinstance(cause, CheckpointCorruptError), repr(cause)
        assert (cause.workflow_id, cause.task_id) == ("wf", "t2")
        # A storage fault is a system error: the workflow is resumable, not failed.
        assert client.get_status("wf") is WorkflowStatus.RESUMABLE
        assert count_lines(Path(log))["t2"] == 1

        client.storage.delete(key)
        assert client.resume("wf") == 3
        assert count_lines(Path(log)) == {"t1": 1, "t2": 2, "t3": 2}


def test_corrupt_run_record_is_a_clear_error(storage_url, tmp_path):
    with Client(storage_url) as client:
        client.run(step.bind("a", 1, str(tmp_path / "log")), workflow_id="rec")
        client.storage.put(layout.run_key("rec"), b"{not json")
        with pytest.raises(CheckpointCorruptError) as info:
            client.get_status("rec")
        assert info.value.workflow_id == "rec"
        # Other workflows are unaffected.
        client.run(step.bind("b", 1, str(tmp_path / "log")), workflow_id="other")
        assert client.get_status("other") is WorkflowStatus.SUCCESSFUL


def test_corrupt_specs_are_a_clear_error_on_resume(storage_url, tmp_path):
    log, flag = str(tmp_path / "log"), str(tmp_path / "flag")
    with Client(storage_url) as client:
        with pytest.raises(WorkflowExecutionError):
            client.run(build(log, flag), workflow_id="sp")
        client.storage.put(layout.spec_key("sp", "root"), b"DFL1 garbage")
        with pytest.raises(CheckpointCorruptError) as info:
            client.resume("sp")
        assert info.value.workflow_id == "sp"
        assert client.get_status("sp") is WorkflowStatus.RESUMABLE
