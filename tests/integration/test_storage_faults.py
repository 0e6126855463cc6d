"""Storage failures in the middle of a run: the workflow is left RESUMABLE, never FAILED, never
RUNNING forever, never corrupt; once the storage is back, resume finishes it with nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from durableflow import Client, WorkflowError, WorkflowStatus, workflow
from durableflow.storage.urls import open_storage
from durableflow.testing import FaultyStorage
from helpers import count_lines


@workflow.task
def step(name: str, value: int, log: str) -> int:
    with open(log, "a") as handle:
        handle.write(name + "\n")
    return value + 1


def chain(log: str):
    t1 = step.options(task_id="t1").bind("t1", 0, log)
    t2 = step.options(task_id="t2").bind("t2", t1, log)
    return step.options(task_id="t3").bind("t3", t2, log)


@pytest.fixture
def faulty(storage_url):
    return FaultyStorage(open_storage(storage_url))


def finish_after_heal(faulty: FaultyStorage, storage_url: str, log: str) -> None:
    with Client(storage_url) as other:  # another process's view, through a healthy storage
        assert other.get_status("wf") is WorkflowStatus.RESUMABLE
        assert other.list_all() == [("wf", WorkflowStatus.RESUMABLE)]
    faulty.heal()
    with Client(faulty) as client:
        assert client.resume("wf") == 3
        assert client.get_status("wf") is WorkflowStatus.SUCCESSFUL


def test_a_passing_checkpoint_failure_is_retried_as_a_system_error(faulty, tmp_path):
    log = str(tmp_path / "log")
    faulty.inject("create", key="/outputs/t2", error=True)
    with Client(faulty) as client:
        assert client.run(chain(log), workflow_id="wf") == 3
        assert client.get_metadata("wf", task_id="t2")["attempts"] == 2
    assert count_lines(Path(log)) == {"t1": 1, "t2": 2, "t3": 1}


def test_a_hanging_checkpoint_write_times_out_and_is_retried(faulty, tmp_path):
    log = str(tmp_path / "log")
    faulty.inject("create", key="/outputs/t2", hang=0.2)
    with Client(faulty) as client:
        assert client.run(chain(log), workflow_id="wf") == 3
    assert count_lines(Path(log)) == {"t1": 1, "t2": 2, "t3": 1}


def test_an_outage_of_checkpoint_writes_leaves_the_workflow_resumable(
    faulty, storage_url, tmp_path
):
    log = str(tmp_path / "log")
    faulty.inject("create", key="/outputs/t2", error=True, times=None)
    with Client(faulty) as client:
        with pytest.raises(WorkflowError) as info:
            client.run(chain(log), workflow_id="wf")
        assert info.value.workflow_id == "wf"
        assert client.get_status("wf") is WorkflowStatus.RESUMABLE
    finish_after_heal(faulty, storage_url, log)
    # t1's checkpoint survived the outage; t2 ran its 4 failed attempts, then once more.
    assert count_lines(Path(log)) == {"t1": 1, "t2": 5, "t3": 1}


def test_an_outage_of_every_write_leaves_no_workflow_running_forever(faulty, storage_url, tmp_path):
    log = str(tmp_path / "log")
    # Once the workflow runs, every checkpoint and every later status write fails: its runner
    # cannot even record that it stopped.
    faulty.inject("put", key="/run", error=True, times=None, nth=2)
    faulty.inject("create", key="/outputs/", error=True, times=None, nth=2)
    with Client(faulty) as client:
        with pytest.raises(WorkflowError):
            client.run(chain(log), workflow_id="wf")
    finish_after_heal(faulty, storage_url, log)
    assert count_lines(Path(log))["t1"] == 1
    assert count_lines(Path(log))["t3"] == 1


def test_a_failing_read_of_an_upstream_checkpoint_is_a_system_error(faulty, storage_url, tmp_path):
    log, flag = str(tmp_path / "log"), tmp_path / "flag"
    t1 = step.options(task_id="t1").bind("t1", 0, log)
    t2 = step.options(task_id="t2").bind("t2", t1, log)
    dag = needs_flag.options(task_id="t3").bind("t3", t2, log, str(flag))
    with Client(faulty) as client:
        with pytest.raises(WorkflowError):
            client.run(dag, workflow_id="wf")
        assert client.get_status("wf") is WorkflowStatus.FAILED
        flag.touch()
        # On resume t3 reads t2's checkpoint from storage: those reads fail.
        faulty.inject("get", key="/outputs/t2", error=True, times=None)
        with pytest.raises(WorkflowError) as info:
            client.resume("wf")
        assert info.value.workflow_id == "wf"
    finish_after_heal(faulty, storage_url, log)
    assert count_lines(Path(log)) == {"t1": 1, "t2": 1, "t3": 2}


@workflow.task
def needs_flag(name: str, value: int, log: str, flag: str) -> int:
    with open(log, "a") as handle:
        handle.write(name + "\n")
    if not Path(flag).exists():
        raise RuntimeError("no flag yet")
    return value + 1
