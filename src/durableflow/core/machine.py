r"""The transition table of a run: ``decide(state, event) -> commands``.

Events say what happened (past tense); commands say what the runtime must do (imperative).
The runtime performs commands, turns their results into events, and asks again. A task's
life::

    WAITING --inputs done--> RUNNING --TaskSucceeded--> DONE
                                |  \\--TaskContinued--> CONTINUED --continuation DONE--> DONE
                                \\--TaskFailed--> retry (RUNNING) | catch (DONE) | FAILED

The run finishes when its root task is DONE, and fails when a task FAILED and nothing still
running can change that.
"""

from __future__ import annotations

import dataclasses

from durableflow.core.retry import FailureAction, on_failure
from durableflow.core.state import RunState, TaskStatus
from durableflow.model.dag import FlatDAG

__all__ = [
    "CatchError",
    "Command",
    "CompleteParent",
    "Event",
    "FailWorkflow",
    "FinishWorkflow",
    "RecordTaskError",
    "SubmitTask",
    "TaskContinued",
    "TaskFailed",
    "TaskSucceeded",
    "decide",
    "start",
]


# --- events ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TaskSucceeded:
    """The task's output is known (checkpointed, or in memory when checkpoint=False)."""

    task_id: str


@dataclasses.dataclass(frozen=True)
class TaskFailed:
    """An attempt raised ``error``.

    ``system``: the worker, not the function, failed (a crashed worker process, lost inputs):
    retried up to ``max_retries`` whatever ``retry_exceptions`` says, then the task fails
    (FAILED, as in Ray). ``resumable``: the runner or the storage failed (the attempt's
    checkpoint could not be written): retried likewise, then the run stops RESUMABLE.
    """

    task_id: str
    error: BaseException
    system: bool = False
    resumable: bool = False


@dataclasses.dataclass(frozen=True)
class TaskContinued:
    """The task returned a continuation, already stored as a spec batch."""

    task_id: str
    dag: FlatDAG


Event = TaskSucceeded | TaskFailed | TaskContinued


# --- commands -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SubmitTask:
    """Run an attempt of the task (``attempt`` counts from 1)."""

    task_id: str
    attempt: int


@dataclasses.dataclass(frozen=True)
class RecordTaskError:
    """Store the failed attempt for operators (``final``: no attempt of the task follows)."""

    task_id: str
    attempts: int
    error: BaseException
    final: bool = True


@dataclasses.dataclass(frozen=True)
class CatchError:
    """Store ``(None, error)`` as the task's output, then report TaskSucceeded."""

    task_id: str
    error: BaseException


@dataclasses.dataclass(frozen=True)
class CompleteParent:
    """The continuation ``child`` of ``task_id`` is done: store the parent's output.

    The parent's output is the child's (``catch``: wrapped as ``(value, None)``); then
    TaskSucceeded is reported for the parent.
    """

    task_id: str
    child: str
    catch: bool


@dataclasses.dataclass(frozen=True)
class FinishWorkflow:
    """The root task is done: the run is SUCCESSFUL."""


@dataclasses.dataclass(frozen=True)
class FailWorkflow:
    """The run stops: FAILED for an application error, RESUMABLE for a system error."""

    task_id: str
    error: BaseException
    system: bool


Command = SubmitTask | RecordTaskError | CatchError | CompleteParent | FinishWorkflow | FailWorkflow


def start(state: RunState) -> list[Command]:
    """The first commands of a run: finish at once, or submit every ready task.

    A resumed run may hold tasks CONTINUED into a continuation that is already done (the
    process stopped between the child's checkpoint and the parent's): they are completed now,
    or nothing would ever make them ready.
    """
    root = state.tasks.get(state.root)
    if root is None:  # the root's output is already stored
        state.finished = True
        return [FinishWorkflow()]
    commands: list[Command] = []
    for task_id in state.continued_done():
        task = state.tasks[task_id]
        assert task.continuation is not None
        state.running.add(task_id)  # busy until its output is written
        commands.append(CompleteParent(task_id, task.continuation, task.options.catch_exceptions))
    commands.extend(_submit(state, task_id) for task_id in state.ready_tasks())
    return commands


def decide(state: RunState, event: Event) -> list[Command]:
    """Apply ``event`` to ``state`` and return the commands it calls for."""
    task = state.tasks.get(event.task_id)
    if task is None or task.status is TaskStatus.FAILED:
        return []  # a late outcome of a task whose continuation was caught or abandoned
    if isinstance(event, TaskSucceeded):
        return _succeeded(state, event.task_id)
    if isinstance(event, TaskContinued):
        try:
            ready = state.add_continuation(event.task_id, event.dag)
        except ValueError as err:  # a continuation that can never run fails its task
            return _failed(state, TaskFailed(event.task_id, err))
        state.running.discard(event.task_id)
        if state.failure:
            return _maybe_stop(state)
        return [_submit(state, task_id) for task_id in ready]
    return _failed(state, event)


def _submit(state: RunState, task_id: str) -> SubmitTask:
    task = state.tasks[task_id]
    task.status = TaskStatus.RUNNING
    task.attempts += 1
    state.running.add(task_id)
    return SubmitTask(task_id, task.attempts)


def _succeeded(state: RunState, task_id: str) -> list[Command]:
    task = state.tasks[task_id]
    task.status = TaskStatus.DONE
    state.running.discard(task_id)
    commands: list[Command] = []
    if task.parent is not None:
        parent = state.tasks[task.parent]
        state.running.add(parent.task_id)  # busy until its output is written
        commands.append(CompleteParent(parent.task_id, task_id, parent.options.catch_exceptions))
    if task_id == state.root:
        state.finished = True
        return [*commands, FinishWorkflow()]
    for dependent_id in task.dependents:
        dependent = state.tasks[dependent_id]
        dependent.remaining -= 1
        if (
            dependent.remaining == 0
            and dependent.status is TaskStatus.WAITING
            and not state.failure
        ):
            commands.append(_submit(state, dependent_id))
    if state.failure:
        commands.extend(_maybe_stop(state))
    return commands


def _failed(state: RunState, event: TaskFailed) -> list[Command]:
    task = state.tasks[event.task_id]
    action = on_failure(
        task.options,
        task.attempts - task.attempts_before,
        event.error,
        event.system or event.resumable,
        catchable=not event.resumable,
    )
    retry = action is FailureAction.RETRY and not state.failure
    commands: list[Command] = [
        RecordTaskError(task.task_id, task.attempts, event.error, final=not retry)
    ]
    if retry:
        state.running.discard(task.task_id)
        return [*commands, _submit(state, task.task_id)]
    if action is FailureAction.CATCH:
        return [*commands, CatchError(task.task_id, event.error)]
    # Uncaught: the error climbs to the task whose continuation holds the failed task (any
    # task of a continuation DAG, not only its root), and on, until one catches it.
    task.status = TaskStatus.FAILED
    state.running.discard(task.task_id)
    parent_id = task.scope
    while parent_id is not None:
        parent = state.tasks[parent_id]
        if parent.options.catch_exceptions and not event.resumable:
            state.running.add(parent_id)
            _abandon_scope(state, parent_id)
            return [*commands, CatchError(parent_id, event.error)]
        parent.status = TaskStatus.FAILED
        parent_id = parent.scope
    if state.failure is None:
        state.failure = (task.task_id, event.error, event.resumable)
    return [*commands, *_maybe_stop(state)]


def _abandon_scope(state: RunState, parent_id: str) -> None:
    """A caught continuation: its other tasks no longer count as running or waiting."""
    inner = {parent_id}
    changed = True
    while changed:  # nested continuations too
        changed = False
        for task in state.tasks.values():
            if task.scope in inner and task.task_id not in inner:
                inner.add(task.task_id)
                changed = True
    inner.discard(parent_id)
    for task_id in inner:
        task = state.tasks[task_id]
        if task.status is not TaskStatus.DONE:
            task.status = TaskStatus.FAILED
        state.running.discard(task_id)


def _maybe_stop(state: RunState) -> list[Command]:
    if state.running or state.failure is None or state.finished:
        return []
    state.finished = True
    task_id, error, system = state.failure
    return [FailWorkflow(task_id, error, system)]
