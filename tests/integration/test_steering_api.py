"""Issue 14 through the public API: the facade and the Client's steering calls, on every backend.

The protocols themselves are pinned in test_restart.py, test_fork.py, test_bulk.py and
test_retention.py; these pin the wiring: ``workflow.resume(id, from_task=)``, ``workflow.fork``,
``get_metadata``'s ``forked_from`` and ``restarts``, the filter shape of ``list_all``,
``cancel_all``, ``delete_all`` and ``resume_all``, and the retention calls.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from durableflow import WorkflowExistsError, WorkflowStatus, workflow
from helpers import append_line, count_lines

LOG: dict[str, str] = {}


@workflow.task
def first(x: int, log: str) -> int:
    append_line(log, "first")
    return x + 1


@workflow.task
def second(x: int, log: str) -> int:
    append_line(log, "second")
    return x * 10


@workflow.task
def broken(log: str) -> int:
    append_line(log, "broken")
    raise ValueError("broken")


def chain(log: str, x: int = 1) -> object:
    return second.options(task_id="second").bind(first.options(task_id="first").bind(x, log), log)


def test_resume_from_a_task_reruns_it_and_what_follows_only(wf, tmp_path: Path):
    log = str(tmp_path / "log")
    assert wf.run(chain(log), workflow_id="w") == 20
    assert wf.resume("w", from_task="second") == 20
    assert count_lines(Path(log)) == {"first": 1, "second": 2}
    meta = wf.get_metadata("w")
    assert meta["status"] == "SUCCESSFUL"
    assert len(meta["restarts"]) == 1
    assert "forked_from" not in meta


def test_fork_copies_checkpoints_and_survives_the_source(wf, tmp_path: Path):
    log = str(tmp_path / "log")
    assert wf.run(chain(log), workflow_id="src") == 20
    assert wf.fork("src", "copy", from_task="second") == "copy"
    assert wf.get_status("copy") is WorkflowStatus.RESUMABLE
    assert wf.get_metadata("copy")["forked_from"] == {"workflow_id": "src", "from_task": "second"}
    wf.delete("src")
    assert wf.resume("copy") == 20
    assert count_lines(Path(log)) == {"first": 1, "second": 2}
    with pytest.raises(WorkflowExistsError):
        wf.fork("copy", "copy")


def test_bulk_calls_act_on_what_the_filter_matches_only(wf, tmp_path: Path):
    log = str(tmp_path / "log")
    for n in range(3):
        wf.run(chain(log, n), workflow_id=f"etl-{n}")
        with pytest.raises(workflow.WorkflowExecutionError):
            wf.run(broken.bind(log), workflow_id=f"etl-bad-{n}")
    with pytest.raises(workflow.WorkflowExecutionError):
        wf.run(broken.bind(log), workflow_id="other-bad")
    assert [w for w, _ in wf.list_all(prefix="etl-bad-")] == ["etl-bad-0", "etl-bad-1", "etl-bad-2"]
    assert wf.list_all("FAILED", prefix="etl-") == [
        (f"etl-bad-{n}", WorkflowStatus.FAILED) for n in range(3)
    ]
    assert sorted(wf.delete_all(status="FAILED", prefix="etl-")) == [
        f"etl-bad-{n}" for n in range(3)
    ]
    assert wf.get_status("other-bad") is WorkflowStatus.FAILED
    assert [w for w, _ in wf.list_all()] == ["etl-0", "etl-1", "etl-2", "other-bad"]
    handles = wf.resume_all(include_failed=True, prefix="other")
    assert [w for w, _ in handles] == ["other-bad"]
    with pytest.raises(workflow.WorkflowExecutionError):
        handles[0][1].result(timeout=60)
    assert wf.cancel_all(status="FAILED") == ["other-bad"]
    assert wf.get_status("other-bad") is WorkflowStatus.CANCELED


def test_retention_is_stored_for_every_process(wf, storage_url: str):
    wf.set_retention({"SUCCESSFUL": "30d", "FAILED": "90d"}, keep_last=5)
    from durableflow import Client

    with Client(storage_url) as other:
        policy = other.get_retention()
    assert not policy.is_empty
    assert policy.to_json() == wf.get_retention().to_json()
