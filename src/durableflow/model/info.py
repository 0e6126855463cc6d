"""The read model: what readers are told about workflows, tasks and schedules, typed.

Frozen dataclasses built from storage alone by :class:`durableflow.client.Reader` (and the
Client, which reads through one): the CLI, the dashboard and scripts get these instead of
``dict[str, Any]``. ``get_metadata`` keeps Ray's dict shape: it is
:meth:`WorkflowInfo.to_metadata` / :meth:`TaskInfo.to_metadata`.

What each costs to build, in storage reads:

- :class:`WorkflowSummary` (a row of ``list_workflows``): nothing beyond the status index for a
  workflow at rest; its run record when times are asked for (or it is active: RUNNING and
  PENDING entries are always checked against the run record and the lease);
- :class:`WorkflowInfo`: the run record, the lease when the record says RUNNING or PENDING,
  and on ``get_workflow`` the spec batches (``name``, ``tasks_total``) and one listing of the
  checkpoints (``tasks_done``);
- :class:`TaskInfo`: see :func:`durableflow.model.attempts.observe_task`; a whole task table
  lists the checkpoints, attempt and error records once;
- :class:`TaskPage` (``list_tasks_page``): as a whole task table, but only the first tasks'
  checkpoint headers; a later task with a checkpoint is a :class:`BriefTask`, read no further.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

from durableflow.model.attempts import AttemptRecord, ObservedTaskStatus
from durableflow.model.records import ErrorInfo
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.model.task import TaskOptions

__all__ = [
    "BriefTask",
    "ScheduleInfo",
    "TaskInfo",
    "TaskPage",
    "WorkflowInfo",
    "WorkflowSummary",
    "running_duration",
    "visible_end_time",
]


def running_duration(
    start: float | None, end: float | None, status: str, now: float | None = None
) -> float | None:
    """``end - start``; for a RUNNING one without an end, how long it has run so far."""
    if start is None:
        return None
    if end is None:
        if status != WorkflowStatus.RUNNING.value:
            return None
        return (time.time() if now is None else now) - start
    return end - start


@dataclasses.dataclass(frozen=True)
class WorkflowSummary:
    """One row of ``list_workflows``: an id, its status, and its times when they were read."""

    workflow_id: str
    """The workflow's id."""
    status: WorkflowStatus
    """Its effective status (RESUMABLE when its runner is gone)."""
    created_at: float | None = None
    """When it was submitted; None when the listing did not read the run record."""
    start_time: float | None = None
    """When its current (or last) run started; None before that, or when not read."""
    end_time: float | None = None
    """When it completed (as :attr:`WorkflowInfo.end_time`); None otherwise or when not read."""
    root_task_id: str | None = None
    """The id of its root task (by default the module-qualified name of the root task's
    function); None when the listing did not read the run record."""

    @property
    def duration(self) -> float | None:
        """``end_time - start_time``; for a RUNNING workflow, how long it has run so far."""
        return running_duration(self.start_time, self.end_time, self.status.value)

    def to_json(self) -> dict[str, Any]:
        """The row as ``durableflow list --json`` prints it."""
        return {
            "workflow_id": self.workflow_id,
            "status": self.status.value,
            "created_at": self.created_at,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration": self.duration,
            "root_task_id": self.root_task_id,
        }


@dataclasses.dataclass(frozen=True)
class WorkflowInfo:
    """What is known about one workflow."""

    workflow_id: str
    """The workflow's id."""
    status: WorkflowStatus
    """Its effective status: the run record checked against the lease (RESUMABLE when its
    runner is gone)."""
    name: str | None
    """The root task's name; None when the specs were not read (``get_metadata``) or cannot be
    loaded in this process (their functions do not import, or they are signed with a key this
    reader does not have)."""
    root_task_id: str
    """The task whose output is the workflow's output."""
    created_at: float
    """When the workflow was first submitted (Unix time)."""
    start_time: float | None
    """When its current (or last) run started; None before its first run."""
    end_time: float | None
    """When it completed (SUCCESSFUL, FAILED, RESUMABLE after a failure), as Ray reported it;
    None while it is RUNNING or PENDING and for a CANCELED one (``updated_at`` says when that
    one stopped)."""
    updated_at: float
    """When its run record was last written."""
    user_metadata: dict[str, Any]
    """The ``metadata`` given to ``run`` (a copy)."""
    error: ErrorInfo | None
    """Why it is FAILED or RESUMABLE, when known."""
    epoch: int
    """The fencing token of its latest runner (0: never run)."""
    tasks_done: int | None = None
    """Tasks with a checkpoint; None when not counted (``get_metadata``, listings)."""
    tasks_total: int | None = None
    """Tasks in its spec batches, continuations included; None when not counted or the specs
    cannot be loaded here."""
    runtime_env: dict[str, Any] | None = None
    """The environment recorded at submission with its packages read back (``get_metadata``);
    None when not read."""
    forked_from: dict[str, Any] | None = None
    """``{"workflow_id", "from_task"}`` of the workflow this one was forked from, if any."""
    restarts: tuple[dict[str, Any], ...] = ()
    """The in-place restarts of this workflow: when, from which tasks, what was set aside."""

    @property
    def duration(self) -> float | None:
        """``end_time - start_time``; for a RUNNING workflow, how long it has run so far."""
        return running_duration(self.start_time, self.end_time, self.status.value)

    def stats(self) -> dict[str, Any]:
        """Ray's ``stats``: only the times that exist (see :attr:`end_time`)."""
        stats: dict[str, Any] = {"created_at": self.created_at}
        if self.start_time is not None:
            stats["start_time"] = self.start_time
        if self.end_time is not None:
            stats["end_time"] = self.end_time
        stats["updated_at"] = self.updated_at
        return stats

    def to_metadata(self) -> dict[str, Any]:
        """``get_metadata(workflow_id)``: Ray's dict shape."""
        return {
            "workflow_id": self.workflow_id,
            "status": self.status.value,
            "user_metadata": dict(self.user_metadata),
            "stats": self.stats(),
            "error": self.error.to_json() if self.error else None,
            "runtime_env": dict(self.runtime_env or {}),
            **({"forked_from": dict(self.forked_from)} if self.forked_from else {}),
            **({"restarts": [dict(r) for r in self.restarts]} if self.restarts else {}),
        }


def visible_end_time(status: WorkflowStatus, end_time: float | None) -> float | None:
    """The end time readers are shown: none while active, none for a CANCELED workflow."""
    if end_time is None or status in ACTIVE or status is WorkflowStatus.CANCELED:
        return None
    return end_time


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """What is known about one task of a workflow (the rules: ``observe_task``)."""

    workflow_id: str
    """The workflow it belongs to."""
    task_id: str
    """The task's id."""
    name: str
    """The task's name (``?`` when its spec cannot be loaded here)."""
    status: ObservedTaskStatus
    """PENDING, RUNNING, RETRYING, CONTINUED, SUCCESSFUL, FAILED, CANCELED, SKIPPED or
    NOT_CHECKPOINTED."""
    attempts: int
    """Attempts made, lost ones included (0: never started)."""
    start_time: float | None
    """Start of the latest attempt (of the successful one; for a task that returned a
    continuation, of its own run); None before it starts."""
    end_time: float | None
    """Its end; None while it runs or when it was lost."""
    error: ErrorInfo | None
    """The latest failure, if the latest attempt failed."""
    lost: bool
    """The latest attempt has no outcome and nobody waits for it (its runner was lost)."""
    last_attempt: AttemptRecord | None
    """The latest attempt record (number, state, host, pid, times), if any."""
    parent: str | None
    """The task whose continuation it belongs to (None: a task of the submitted DAG)."""
    depth: int
    """How many continuations deep it is (0: the submitted DAG)."""
    options: TaskOptions | None
    """Its options (None when its spec cannot be loaded here)."""
    history: tuple[dict[str, Any], ...] = ()
    """Its earlier attempts, oldest first (``attempt, start, end, state, host, pid, error``):
    the attempt record's ``previous``, plus the record's own attempt when a later one left no
    record. With :attr:`last_attempt`, every attempt up to the 20 before the latest."""

    @property
    def duration(self) -> float | None:
        """``end_time - start_time`` when both are known."""
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time

    @property
    def error_summary(self) -> str | None:
        """One line on the latest failure, or on a lost attempt."""
        if self.error is not None:
            return self.error.summary()
        if self.lost:
            return f"attempt {self.attempts} lost: its runner stopped before it ended"
        return None

    def _shared(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "attempts": self.attempts,
            "lost": self.lost,
            "last_attempt": self.last_attempt.to_json() if self.last_attempt else None,
        }

    def to_row(self) -> dict[str, Any]:
        """A row of ``list_tasks`` (``durableflow show``)."""
        return {
            "task_id": self.task_id,
            "name": self.name,
            **self._shared(),
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration": self.duration,
            "error": self.error_summary,
            "parent": self.parent,
            "depth": self.depth,
        }

    def to_metadata(self) -> dict[str, Any]:
        """``get_metadata(workflow_id, task_id)``: Ray's dict shape."""
        options = self.options or TaskOptions()
        stats: dict[str, Any] = {}
        if self.start_time is not None:
            stats["start_time"] = self.start_time
        if self.end_time is not None:
            stats["end_time"] = self.end_time
        return {
            "workflow_id": self.workflow_id,
            "task_id": self.task_id,
            "name": self.name,
            "task_options": options.to_json(),
            "user_metadata": dict(options.metadata),
            "stats": stats,
            **self._shared(),
            "error": self.error.to_json() if self.error else None,
        }


class BriefTask(NamedTuple):
    """A task with a checkpoint whose keys were not read: all a DAG drawing needs of it."""

    task_id: str
    """The task's id."""
    name: str
    """The task's name."""
    parent: str | None
    """The task whose continuation it belongs to (None: a task of the submitted DAG)."""
    depth: int
    """How many continuations deep it is (0: the submitted DAG)."""
    status: ObservedTaskStatus = ObservedTaskStatus.SUCCESSFUL
    """SUCCESSFUL: it has a checkpoint."""


@dataclasses.dataclass(frozen=True)
class TaskPage:
    """A workflow's tasks as its page needs them (``Reader.list_tasks_page``)."""

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


@dataclasses.dataclass(frozen=True)
class ScheduleInfo:
    """A schedule and where it stands (``durableflow schedule show``)."""

    name: str
    """The schedule's name."""
    schedule: str
    """Its rule in words (``every 5m``, ``cron 0 * * * * (UTC)``)."""
    cron: str | None
    """Its cron expression, if it has one."""
    every: int | None
    """Its interval in seconds, if it has one."""
    timezone: str
    """The timezone of its cron expression."""
    catchup: str
    """What to do with ticks missed while no worker ran (a ``MissedTicks`` value)."""
    overlap: str
    """What to do when a tick comes while the previous workflow runs (an ``Overlap`` value)."""
    grace: float
    """Seconds a tick may be late and still run."""
    max_catchup: int
    """The most missed ticks run at once when catching up."""
    paused: bool
    """Paused schedules fire nothing."""
    next_tick: str | None
    """The next tick (ISO time); None while paused."""
    last_tick: str | None
    """The latest tick handled (fired or missed), if any."""
    last_workflow_id: str | None
    """The workflow its latest fired tick started."""
    fired: int
    """Ticks that started a workflow."""
    missed: int
    """Ticks skipped (catch-up or overlap policy)."""
    pending: tuple[str, ...]
    """Workflows it started that have not ended (its overlap policy looks at them)."""
    last_error: str | None
    """Why the latest tick could not fire, if it could not."""
    metadata: dict[str, Any]
    """The ``metadata`` each workflow it starts is given."""
    created_at: float
    """When the schedule was added."""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Fields of later versions (schedule options added since), kept as they were."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleInfo:
        """Build from the dict ``Client.get_schedule`` returns."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in fields}
        values.setdefault("grace", 0.0)
        values.setdefault("max_catchup", 1)
        values["pending"] = tuple(values.get("pending") or ())
        values["metadata"] = dict(values.get("metadata") or {})
        extra = {k: v for k, v in data.items() if k not in fields}
        return cls(**values, extra=extra)

    def to_json(self) -> dict[str, Any]:
        """The dict ``Client.get_schedule`` returns."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del data["extra"]
        data["pending"] = list(self.pending)
        data["metadata"] = dict(self.metadata)
        return {**data, **self.extra}
