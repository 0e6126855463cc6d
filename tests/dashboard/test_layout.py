"""The drawings' layouts and attempt lists, from hand-made tasks (no storage)."""

from __future__ import annotations

from durableflow.dashboard.layout import attempts_of, layout_timeline
from durableflow.model.attempts import (
    AttemptRecord,
    AttemptState,
    ObservedTaskStatus,
    observe_task,
)
from durableflow.model.info import TaskInfo
from durableflow.model.status import WorkflowStatus


def _task(attempts: int, record: AttemptRecord | None, **fields: object) -> TaskInfo:
    """A SUCCESSFUL task whose latest attempt ``attempts`` ran 30.0 - 31.0.

    ``record`` is the stored attempt record: the read model (``observe_task``) decides what
    becomes ``last_attempt`` and ``history``, as the Reader does.
    """
    header = {"attempt": attempts, "start": 30.0, "end": 31.0} if attempts else None
    view = observe_task(
        workflow=WorkflowStatus.SUCCESSFUL,
        epoch=None,
        options=None,
        header=header,
        continued=False,
        attempt=record,
        error=None,
    )
    values: dict[str, object] = {
        "workflow_id": "w",
        "task_id": "t",
        "name": "m.t",
        "status": ObservedTaskStatus.SUCCESSFUL,
        "attempts": attempts,
        "start_time": 30.0,
        "end_time": 31.0,
        "error": None,
        "lost": False,
        "last_attempt": view.last_attempt,
        "parent": None,
        "depth": 0,
        "options": None,
        "history": view.history,
    }
    values.update(fields)
    return TaskInfo(**values)  # type: ignore[arg-type]


def _failed(attempt: int, previous: tuple[AttemptRecord, ...] = ()) -> AttemptRecord:
    start = 10.0 * attempt
    return AttemptRecord(
        "t",
        attempt,
        start,
        "h",
        1,
        state=AttemptState.FAILED,
        end=start + 1,
        previous=tuple(p.summary() for p in previous),
    )


def _outcomes(found: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(a["attempt"], a["outcome"]) for a in found]


def test_record_of_an_earlier_attempt_gives_it_and_its_history() -> None:
    """Attempt 3 ended with a checkpoint and wrote no record: attempt 2's record has 1 and 2."""
    record = _failed(2, previous=(_failed(1),))
    task = _task(3, record)
    assert task.last_attempt is None  # the read model drops the record older than the checkpoint
    found = attempts_of(task)
    assert _outcomes(found) == [(1, "FAILED"), (2, "FAILED"), (3, "SUCCESSFUL")]
    assert [a["start"] for a in found] == [10.0, 20.0, 30.0]
    assert found[2]["host"] is None  # the record is not the latest attempt's
    bars = layout_timeline([task], now=40.0).bars
    assert [(b.attempt, b.outcome) for b in bars] == _outcomes(found)


def test_latest_attempt_listed_once_with_the_task_outcome() -> None:
    """The record is the latest attempt's (RUNNING when its checkpoint ended it): one entry."""
    running = AttemptRecord(
        "t", 3, 30.0, "h", 7, previous=(_failed(1).summary(), _failed(2).summary())
    )
    found = attempts_of(_task(3, running))
    assert _outcomes(found) == [(1, "FAILED"), (2, "FAILED"), (3, "SUCCESSFUL")]
    assert (found[2]["host"], found[2]["pid"]) == ("h", 7)


def test_earlier_attempt_left_running_is_lost() -> None:
    lost = AttemptRecord("t", 1, 10.0, "h", 1)  # its worker died: no outcome recorded
    record = _failed(2).after(lost)
    found = attempts_of(_task(3, record))
    assert _outcomes(found) == [(1, "LOST"), (2, "FAILED"), (3, "SUCCESSFUL")]


def test_single_attempt_without_record() -> None:
    assert _outcomes(attempts_of(_task(1, None))) == [(1, "SUCCESSFUL")]
    assert attempts_of(_task(0, None, start_time=None, end_time=None)) == []


def test_public_names_stay_importable_after_the_split() -> None:
    import durableflow.dashboard as dashboard
    from durableflow.dashboard import app, source

    assert dashboard.__all__ == ["create_app", "serve"]
    assert app.__all__ == ["POLL_SECONDS", "Settings", "create_app"]
    assert all(hasattr(app, name) for name in app.__all__)
    assert source.__all__ == ["PREVIEW_MAX_BYTES", "ActionRefused", "Source"]
    assert all(hasattr(source, name) for name in source.__all__)
    assert source.PREVIEW_MAX_BYTES == 1 << 20
