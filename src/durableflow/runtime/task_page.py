"""A workflow page's tasks, reading only what its first screen shows (``Reader.list_tasks_page``).

``Reader.list_tasks`` reads every task's checkpoint header for its times: for a 10,000-task
fan-out that is 10,000 reads and most of the dashboard page's time, while the page shows the
times of its first rows only (the table's first 500 tasks, the timeline's first 300 started
ones). The DAG needs every task's status, and for a task with a checkpoint the checkpoint's
existence is enough: it is SUCCESSFUL.

:func:`task_page` builds the same :class:`~durableflow.model.info.TaskInfo` as
:func:`~durableflow.runtime.inspection.task_infos`, through the same
:class:`~durableflow.runtime.inspection.Observer` (the rules:
:func:`durableflow.model.attempts.observe_task`) and in the same order
(:func:`~durableflow.runtime.inspection.placed_tasks`), from:

1. the spec batches, read once (they also give the DAG's edges);
2. one listing per key family: checkpoints, error records, attempt records;
3. per task, only keys that exist: the error and attempt records of a task without a
   checkpoint (its status needs them), and a checkpoint's header with its records while the
   first screen still needs times: for the first ``full`` tasks, then until ``started`` of
   them have started.

A task past that point that has a checkpoint is a :class:`~durableflow.model.info.BriefTask`:
SUCCESSFUL, with its times, attempts and attempt history not read; the page draws it in the
DAG and counts it, never in a row.
"""

from __future__ import annotations

from durableflow.model.info import BriefTask, TaskInfo, TaskPage
from durableflow.model.records import RunRecord
from durableflow.model.status import WorkflowStatus
from durableflow.runtime.inspection import Observer, placed_tasks, read_batches, task_info
from durableflow.storage.store import WorkflowStore

__all__ = ["task_page"]


def task_page(
    store: WorkflowStore, record: RunRecord, status: WorkflowStatus, *, full: int, started: int
) -> TaskPage:
    """A workflow's tasks, the times of the first screen's only (steps in the module docstring).

    Args:
        store: the workflow store.
        record: the workflow's run record.
        status: its effective status.
        full: read the first this many tasks in full.
        started: and go on reading tasks in full until this many of them have started.
    """
    workflow_id = record.workflow_id
    batches = read_batches(store, workflow_id)  # 1
    observer = Observer(store, record, status, listed=True)  # 2
    shown: list[TaskInfo] = []
    rest: list[TaskInfo | BriefTask] = []
    upstream: dict[str, tuple[str, ...]] = {}
    count = 0
    for task in placed_tasks(batches, observer.known_ids):
        if task.upstream is not None:
            upstream[task.task_id] = task.upstream
        detailing = not rest and (len(shown) < full or count < started)
        if observer.has_checkpoint(task.task_id) and not detailing:  # 3
            rest.append(BriefTask(task.task_id, task.name, task.parent, task.depth))
            count += 1
            continue
        view = observer.observe(task.task_id, task.options, task.task_id in batches)
        found = task_info(
            workflow_id, task.task_id, task.name, view, task.options, task.parent, task.depth
        )
        (shown if detailing else rest).append(found)
        count += view.start_time is not None
    return TaskPage(shown, rest, count, upstream)
