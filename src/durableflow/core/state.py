"""RunState: the tasks of one run and where each stands, built from a DAG or from storage.

Plain values only (ids, options, counters): no futures, handles or clocks, so every decision
over it can be tested with ``assert``. It is mutable for speed: a 10,000-task run is not copied
on every event.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping

from durableflow.model.dag import FlatDAG, TaskSpec
from durableflow.model.task import TaskOptions

__all__ = ["RunState", "TaskState", "TaskStatus"]


class TaskStatus(enum.Enum):
    """Where a task stands within the current run."""

    WAITING = "waiting"
    """Some upstream task is not done yet."""
    RUNNING = "running"
    """Submitted to the executor."""
    CONTINUED = "continued"
    """Returned a continuation; done when the continuation's root is."""
    DONE = "done"
    """Its output is known (stored, or in memory for checkpoint=False)."""
    FAILED = "failed"
    """Failed after its retries and nobody caught it."""


@dataclasses.dataclass
class TaskState:
    """One task in the run."""

    task_id: str
    name: str
    options: TaskOptions
    upstream: tuple[str, ...]
    status: TaskStatus = TaskStatus.WAITING
    attempts: int = 0
    remaining: int = 0
    """Upstream tasks not done yet."""
    dependents: list[str] = dataclasses.field(default_factory=list)
    continuation: str | None = None
    """Root task of the continuation this task returned."""
    parent: str | None = None
    """The task whose continuation this task is the root of."""
    scope: str | None = None
    """The task whose continuation DAG this task belongs to (root or not): an error here climbs
    to it, so its ``catch_exceptions`` covers every task of the continuation."""
    attempts_before: int = 0
    """Attempts made by earlier runs (crashed or failed ones), so numbering continues."""


class RunState:
    """All tasks of one run that still matter, and the run's outcome so far."""

    def __init__(self, workflow_id: str, root: str) -> None:
        self.workflow_id = workflow_id
        self.root = root
        self.tasks: dict[str, TaskState] = {}
        self.running: set[str] = set()
        self.done: set[str] = set()
        """Tasks done before this run (their outputs are stored): a continuation may read them."""
        self.failure: tuple[str, BaseException, bool] | None = None
        """(task_id, error, system) of the failure that stops the run."""
        self.finished = False

    @classmethod
    def new(cls, workflow_id: str, dag: FlatDAG) -> RunState:
        """State of a run that starts from nothing."""
        state = cls(workflow_id, dag.root)
        state._add(dag.specs, done=())
        return state

    @classmethod
    def from_stored(
        cls,
        workflow_id: str,
        batches: Mapping[str, FlatDAG],
        done: Iterable[str],
        root_batch: str = "root",
        attempts: Mapping[str, int] | None = None,
    ) -> RunState:
        """State of a resumed run.

        Args:
            workflow_id: the workflow.
            batches: the stored spec batches: ``root_batch`` for the submitted DAG, and for
                every task that returned a continuation, that task's id.
            done: ids of tasks whose output is stored.
            root_batch: name of the batch of the submitted DAG.
            attempts: attempts already made per task id (numbering continues after them).

        A task that returned a continuation whose root is already done (a crash between the
        child's checkpoint and the parent's forward record) is CONTINUED with its continuation
        finished: :func:`~durableflow.core.machine.start` completes it at once.
        """
        done_set = set(done)
        root = batches[root_batch].root
        specs: dict[str, TaskSpec] = {}
        for flat in batches.values():
            for spec in flat.specs:
                specs[spec.task_id] = spec
        # Only tasks the root still needs: walk from the root, stopping at finished tasks.
        needed: dict[str, TaskSpec] = {}
        stack = [root]
        while stack:
            task_id = stack.pop()
            if task_id in needed or task_id in done_set:
                continue
            spec = specs[task_id]
            needed[task_id] = spec
            if task_id in batches:
                stack.append(batches[task_id].root)
            else:
                stack.extend(spec.upstream)
        state = cls(workflow_id, root)
        state.done = done_set
        state._add(needed.values(), done=done_set)
        for batch, flat in batches.items():
            if batch == root_batch:
                continue
            for spec in flat.specs:
                if spec.task_id in state.tasks:
                    state.tasks[spec.task_id].scope = batch
        for task_id in needed:
            if task_id in batches:
                child = batches[task_id].root
                state.tasks[task_id].status = TaskStatus.CONTINUED
                state.tasks[task_id].continuation = child
                if child in state.tasks:
                    state.tasks[child].parent = task_id
        for task_id, count in (attempts or {}).items():
            if task_id in state.tasks:
                state.tasks[task_id].attempts = count
                state.tasks[task_id].attempts_before = count
        return state

    def continued_done(self) -> list[str]:
        """CONTINUED tasks whose continuation root is done (no longer in the run)."""
        return [
            t.task_id
            for t in self.tasks.values()
            if t.status is TaskStatus.CONTINUED
            and t.continuation is not None
            and t.continuation not in self.tasks
        ]

    def _add(self, specs: Iterable[TaskSpec], done: set[str] | Iterable[str]) -> list[str]:
        """Add tasks; return those whose inputs are all done.

        Raises:
            ValueError: a task needs a task that is neither in the run, added here, nor done;
                nothing is added then.
        """
        done_set = done if isinstance(done, set) else set(done)
        specs = list(specs)
        new = {spec.task_id for spec in specs}
        for spec in specs:
            for up in spec.upstream:
                if up not in self.tasks and up not in new and up not in done_set:
                    raise ValueError(f"task {spec.task_id!r} needs unknown task {up!r}")
        added = []
        for spec in specs:
            task = TaskState(spec.task_id, spec.name, spec.options, spec.upstream)
            self.tasks[spec.task_id] = task
            added.append(task)
        ready = []
        for task in added:
            for up in task.upstream:
                if up in self.tasks and self.tasks[up].status is not TaskStatus.DONE:
                    task.remaining += 1
                    self.tasks[up].dependents.append(task.task_id)
                elif up not in self.tasks and up not in done_set:
                    raise ValueError(f"task {task.task_id!r} needs unknown task {up!r}")
            if task.remaining == 0:
                ready.append(task.task_id)
        return ready

    def add_continuation(self, parent: str, dag: FlatDAG) -> list[str]:
        """Record that ``parent`` continued into ``dag``; return the tasks ready to run.

        Raises:
            ValueError: the continuation reads a task the workflow does not have, or the output
                of ``parent`` itself (or of a task it continues), which can never be ready;
                nothing is changed then.
        """
        waiting_on = {parent}
        scope = self.tasks[parent].scope
        while scope is not None:
            waiting_on.add(scope)
            scope = self.tasks[scope].scope
        for spec in dag.specs:
            for up in spec.upstream:
                if up in waiting_on:
                    raise ValueError(
                        f"task {spec.task_id!r} of the continuation of {parent!r} reads the "
                        f"output of {up!r}, which waits for this continuation"
                    )
        ready = self._add(dag.specs, done=self.done)
        task = self.tasks[parent]
        task.status = TaskStatus.CONTINUED
        task.continuation = dag.root
        self.tasks[dag.root].parent = parent
        for spec in dag.specs:
            self.tasks[spec.task_id].scope = parent
        return ready

    def ready_tasks(self) -> list[str]:
        """Tasks waiting with every input done, in id order of insertion."""
        return [
            t.task_id
            for t in self.tasks.values()
            if t.status is TaskStatus.WAITING and t.remaining == 0
        ]
