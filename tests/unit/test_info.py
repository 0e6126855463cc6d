"""The read model's dataclasses (model/info.py): Ray's dict shapes and the rules on times."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from durableflow.model.attempts import ObservedTaskStatus
from durableflow.model.info import (
    ScheduleInfo,
    TaskInfo,
    WorkflowInfo,
    WorkflowSummary,
    running_duration,
    visible_end_time,
)
from durableflow.model.records import ErrorInfo
from durableflow.model.status import WorkflowStatus
from durableflow.model.task import TaskOptions


def _workflow(**changes: Any) -> WorkflowInfo:
    info = WorkflowInfo(
        workflow_id="w",
        status=WorkflowStatus.SUCCESSFUL,
        name="mod.f",
        root_task_id="mod.f",
        created_at=10.0,
        start_time=11.0,
        end_time=15.0,
        updated_at=15.0,
        user_metadata={"k": 1},
        error=None,
        epoch=1,
        runtime_env={"python": "3.11"},
    )
    return dataclasses.replace(info, **changes)


def test_workflow_metadata_keeps_rays_shape():
    assert _workflow().to_metadata() == {
        "workflow_id": "w",
        "status": "SUCCESSFUL",
        "user_metadata": {"k": 1},
        "stats": {"created_at": 10.0, "start_time": 11.0, "end_time": 15.0, "updated_at": 15.0},
        "error": None,
        "runtime_env": {"python": "3.11"},
    }
    never_ran = _workflow(status=WorkflowStatus.PENDING, start_time=None, end_time=None)
    assert never_ran.stats() == {"created_at": 10.0, "updated_at": 15.0}
    failed = _workflow(status=WorkflowStatus.FAILED, error=ErrorInfo("builtins.ValueError", "x"))
    assert failed.to_metadata()["error"]["type"] == "builtins.ValueError"


def test_end_time_is_shown_only_once_a_workflow_completed():
    for status in (WorkflowStatus.RUNNING, WorkflowStatus.PENDING, WorkflowStatus.CANCELED):
        assert visible_end_time(status, 5.0) is None
    for status in (WorkflowStatus.SUCCESSFUL, WorkflowStatus.FAILED, WorkflowStatus.RESUMABLE):
        assert visible_end_time(status, 5.0) == 5.0
    assert visible_end_time(WorkflowStatus.SUCCESSFUL, None) is None


def test_durations_of_finished_running_and_unstarted_workflows():
    assert running_duration(None, None, "RUNNING") is None
    assert running_duration(10.0, 12.5, "SUCCESSFUL") == 2.5
    assert running_duration(10.0, None, "RUNNING", now=14.0) == 4.0
    assert running_duration(10.0, None, "CANCELED", now=14.0) is None
    row = WorkflowSummary("w", WorkflowStatus.FAILED, 1.0, 2.0, 5.0)
    assert row.to_json() == {
        "workflow_id": "w",
        "status": "FAILED",
        "created_at": 1.0,
        "start_time": 2.0,
        "end_time": 5.0,
        "duration": 3.0,
        "root_task_id": None,
    }
    assert WorkflowSummary("w", WorkflowStatus.SUCCESSFUL).duration is None


def test_the_read_model_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _workflow().status = WorkflowStatus.FAILED  # type: ignore[misc]


def _task(**changes: Any) -> TaskInfo:
    info = TaskInfo(
        workflow_id="w",
        task_id="t",
        name="mod.t",
        status=ObservedTaskStatus.RETRYING,
        attempts=2,
        start_time=3.0,
        end_time=None,
        error=None,
        lost=True,
        last_attempt=None,
        parent="p",
        depth=1,
        options=TaskOptions(max_retries=3, metadata={"m": 1}),
    )
    return dataclasses.replace(info, **changes)


def test_task_row_and_metadata_shapes():
    lost = _task()
    assert lost.to_row() == {
        "task_id": "t",
        "name": "mod.t",
        "status": "RETRYING",
        "attempts": 2,
        "lost": True,
        "last_attempt": None,
        "start_time": 3.0,
        "end_time": None,
        "duration": None,
        "error": "attempt 2 lost: its runner stopped before it ended",
        "parent": "p",
        "depth": 1,
    }
    failed = _task(
        status=ObservedTaskStatus.FAILED, lost=False, end_time=4.0, error=ErrorInfo("a.E", "no")
    )
    assert failed.to_row()["error"] == "E: no" and failed.duration == 1.0
    meta = failed.to_metadata()
    assert meta["stats"] == {"start_time": 3.0, "end_time": 4.0}
    assert meta["user_metadata"] == {"m": 1} and meta["task_options"]["max_retries"] == 3
    assert meta["error"] == ErrorInfo("a.E", "no").to_json()
    assert list(meta) == [
        "workflow_id",
        "task_id",
        "name",
        "task_options",
        "user_metadata",
        "stats",
        "status",
        "attempts",
        "lost",
        "last_attempt",
        "error",
    ]


def test_schedule_info_round_trips_its_dict_and_keeps_unknown_fields():
    data = {
        "name": "s",
        "schedule": "every 1h",
        "cron": None,
        "every": 3600,
        "timezone": "UTC",
        "catchup": "latest",
        "overlap": "skip",
        "grace": 60.0,
        "max_catchup": 100,
        "paused": False,
        "next_tick": "2026-12-01T08:00:00+00:00",
        "last_tick": None,
        "last_workflow_id": None,
        "fired": 0,
        "missed": 0,
        "pending": ["s@1"],
        "last_error": None,
        "metadata": {"team": "x"},
        "created_at": 1.0,
        "added_later": True,
    }
    info = ScheduleInfo.from_json(data)
    assert info.pending == ("s@1",) and info.extra == {"added_later": True}
    assert info.to_json() == data
