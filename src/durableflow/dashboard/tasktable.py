"""The workflow page's tasks, reading only what its first screen shows (``PAGE TABLE HOOK``).

``Reader.list_tasks`` reads every task's checkpoint header for its times: for a 10,000-task
fan-out that is 10,000 reads and most of the page's time, while the page shows the times of
its first rows only (the table's first 500 tasks, the timeline's first 300 started ones). The
DAG needs every task's status, and for a task with a checkpoint the checkpoint's existence is
enough: it is SUCCESSFUL.

:func:`page_tasks` builds the same :class:`~durableflow.model.info.TaskInfo` as the Reader, by
the same rules (:func:`durableflow.model.attempts.observe_task`), from:

1. the spec batches, read once (they also give the DAG's edges);
2. one listing per key family: checkpoints, error records, attempt records;
3. per task, only keys that exist: the error and attempt records of a task without a
   checkpoint (its status needs them), and a checkpoint's header with its records while the
   first screen still needs times: for the first ``table`` tasks, then until ``timeline`` of
   them have started.

A task past that point that has a checkpoint is a :class:`BriefTask`: SUCCESSFUL, with its
times, attempts and attempt history not read; the page draws it in the DAG and counts it,
never in a row.
Until the Reader can list a workflow's tasks with the times of some of them only, the attempt
records are read by their storage layout (v1), through the Reader's ``store``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from durableflow.client import Reader
from durableflow.errors import SerializationError
from durableflow.model.attempts import AttemptRecord, ObservedTaskStatus, observe_task
from durableflow.model.dag import FlatDAG
from durableflow.model.info import TaskInfo, WorkflowInfo
from durableflow.model.task import TaskOptions

__all__ = ["BriefTask", "PageTasks", "page_tasks"]

_ROOT_BATCH = "root"  # storage layout v1: the submitted DAG's spec batch (PAGE TABLE HOOK)
_ATTEMPTS = "v1/workflows/{wid}/attempts/"  # storage layout v1: attempt records (PAGE TABLE HOOK)


class BriefTask(NamedTuple):
    """A task with a checkpoint whose keys were not read: all the DAG needs of it."""

    task_id: str
    name: str
    parent: str | None
    depth: int
    status: ObservedTaskStatus = ObservedTaskStatus.SUCCESSFUL


@dataclasses.dataclass(frozen=True)
class PageTasks:
    """A workflow's tasks as its page needs them."""

    shown: list[TaskInfo]
    """The first tasks, read in full: the same as the start of ``Reader.list_tasks``."""
    rest: list[TaskInfo | BriefTask]
    """The tasks after them, a task with a checkpoint as a :class:`BriefTask`."""
    started: int
    """Tasks that started (the brief ones included: a checkpoint means a run)."""
    upstream: dict[str, tuple[str, ...]]
    """Each task's upstream task ids, from the specs."""

    @property
    def tasks(self) -> list[TaskInfo | BriefTask]:
        """Every task, in the order of ``Reader.list_tasks``."""
        return [*self.shown, *self.rest]


def page_tasks(reader: Reader, info: WorkflowInfo, *, table: int, timeline: int) -> PageTasks:
    """The tasks of ``info``'s workflow, times of the first screen's only.

    The times of the first ``table`` tasks and of the first ``timeline`` started ones are read
    (steps in the module docstring).

    Raises:
        WorkflowNotFoundError: the workflow is gone.
    """
    store, wid = reader.store, info.workflow_id
    try:  # 1
        batches = store.read_specs(wid)
    except SerializationError:
        batches = {}
    done = store.list_done(wid)  # 2
    errors = set(store.list_task_errors(wid))
    prefix = _ATTEMPTS.format(wid=wid)
    attempts = {key[len(prefix) :] for key in reader.storage.list(prefix)}
    shown: list[TaskInfo] = []
    rest: list[TaskInfo | BriefTask] = []
    upstream: dict[str, tuple[str, ...]] = {}
    started = 0

    def add(
        task_id: str, name: str, options: TaskOptions | None, parent: str | None, depth: int
    ) -> None:
        nonlocal started
        detailing = not rest and (len(shown) < table or started < timeline)
        if task_id in done and not detailing:  # 3
            rest.append(BriefTask(task_id, name, parent, depth))
            started += 1
            return
        attempt = None
        if task_id in attempts:
            raw = reader.storage.get(prefix + task_id)
            attempt = None if raw is None else _attempt(raw)
        view = observe_task(
            workflow=info.status,
            epoch=info.epoch,
            options=options,
            header=store.read_output_header(wid, task_id) if task_id in done else None,
            continued=task_id in batches,
            attempt=attempt,
            error=store.read_task_error(wid, task_id) if task_id in errors else None,
        )
        found = TaskInfo(
            workflow_id=wid,
            task_id=task_id,
            name=name,
            status=view.status,
            attempts=view.attempts,
            start_time=view.start_time,
            end_time=view.end_time,
            error=view.error,
            lost=view.lost,
            last_attempt=view.last_attempt,
            parent=parent,
            depth=depth,
            options=options,
            history=view.history,
        )
        (shown if detailing else rest).append(found)
        started += view.start_time is not None

    def walk(flat: FlatDAG, parent: str | None, depth: int) -> None:
        for spec in flat.specs:
            upstream[spec.task_id] = tuple(spec.upstream)
            add(spec.task_id, spec.name, spec.options, parent, depth)
            if spec.task_id in batches and depth < 100:
                walk(batches[spec.task_id], spec.task_id, depth + 1)

    if _ROOT_BATCH in batches:
        walk(batches[_ROOT_BATCH], None, 0)
    else:  # the specs cannot be loaded here: every task that left something, named "?"
        for task_id in sorted(done | errors | attempts):
            add(task_id, "?", None, None, 0)
    return PageTasks(shown, rest, started, upstream)


def _attempt(raw: bytes) -> AttemptRecord | None:
    try:
        return AttemptRecord.from_bytes(raw)
    except (ValueError, KeyError, TypeError):  # informational: garbled reads as none
        return None
