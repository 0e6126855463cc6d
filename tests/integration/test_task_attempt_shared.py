"""execute_task and the wait service write an attempt one way: both through TaskAttempt.

Steps 1-2 (attempt record, inputs) and 4-6 (continuation, checkpoint, failure) are
:class:`~durableflow.runtime.attempt.TaskAttempt`'s; only step 3 differs (a function called,
a listener awaited). These tests pin that both paths take those steps from it, and that the
same result ends an attempt the same way on either path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durableflow import workflow
from durableflow.model.calls import OutcomeKind, TaskCall, TaskOutcome
from durableflow.model.dag import TaskRef
from durableflow.model.events import poll_for_event
from durableflow.runtime.attempt import TaskAttempt, execute_task
from durableflow.runtime.waits import WaitService
from durableflow.storage.filesystem import FileStorage
from durableflow.storage.serializer import Serializer
from durableflow.storage.store import WorkflowStore


class ReturnListener(workflow.EventListener):
    async def poll_for_event(self, value: Any) -> Any:
        return value


@pytest.fixture
def store(tmp_path: Path) -> WorkflowStore:
    return WorkflowStore(FileStorage(tmp_path / "store"), Serializer(None))


@pytest.fixture
def service() -> Iterator[WaitService]:
    svc = WaitService(listener_threads=1, storage_threads=1)
    yield svc
    svc.close()


def task_call(store: WorkflowStore, task_id: str, func: Any, *args: Any) -> TaskCall:
    fields: dict[str, Any] = {"inputs": {}, "checkpoint": True, "catch": False, "store": store}
    return TaskCall("wf", task_id, 1, func, args, {}, **fields)


def wait_call(store: WorkflowStore, task_id: str, value: Any) -> TaskCall:
    return task_call(store, task_id, poll_for_event.func, ReturnListener, value)


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """``(step, task id)`` for every TaskAttempt step either path takes."""
    seen: list[tuple[str, str]] = []
    for name in ("begin", "finish", "failed"):
        original = getattr(TaskAttempt, name)

        def spy(self: TaskAttempt, *args: Any, _name: str = name, _f: Any = original, **kw: Any):
            seen.append((_name, self.call.task_id))
            return _f(self, *args, **kw)

        monkeypatch.setattr(TaskAttempt, name, spy)
    return seen


def test_both_paths_take_their_storage_steps_from_task_attempt(
    service: WaitService, store: WorkflowStore, steps: list[tuple[str, str]]
) -> None:
    store.write_output("wf", "up", 20)
    task = execute_task(task_call(store, "task", lambda x: x + 1, TaskRef("up")))
    wait = service.submit(wait_call(store, "wait", TaskRef("up"))).result(timeout=30)
    assert (task.kind, wait.kind) == (OutcomeKind.OK, OutcomeKind.OK)
    assert (store.read_output("wf", "task"), store.read_output("wf", "wait")) == (21, 20)
    assert steps == [("begin", "task"), ("finish", "task"), ("begin", "wait"), ("finish", "wait")]


def test_a_value_that_does_not_serialize_fails_either_attempt_alike(
    service: WaitService, store: WorkflowStore, steps: list[tuple[str, str]]
) -> None:
    lock = threading.Lock()  # not picklable: step 5's checkpoint fails
    task = execute_task(task_call(store, "task", lambda: lock))
    wait = service.submit(wait_call(store, "wait", lock)).result(timeout=30)
    assert (
        _shape(task)
        == _shape(wait)
        == (
            OutcomeKind.ERROR,
            False,
            "durableflow.errors.SerializationError",
        )
    )
    assert store.read_output_header("wf", "task") is None
    assert store.read_output_header("wf", "wait") is None
    assert ("failed", "task") in steps and ("failed", "wait") in steps


def _shape(outcome: TaskOutcome) -> tuple[Any, bool, str | None]:
    info = outcome.error_info
    return outcome.kind, outcome.system, info.type if info is not None else None
