"""Drive one workflow: load its state, decide, perform commands, wait for outcomes.

The engine owns the workflow's lease while it runs (claimed by the caller). Its loop:

1. build the RunState from storage (every task with a checkpoint is done);
2. write status RUNNING; submit every ready task;
3. take the next outcome from the executor, turn it into an event, ask ``core.decide``,
   perform the commands (store a continuation, record an error, submit, finish);
4. on the way, honour a cancel request (polled in storage, or signalled in-process), a lost
   lease (another runner took over: stop without writing), or a stop request (shutdown);
5. write the final status — SUCCESSFUL, FAILED, CANCELED, or RESUMABLE for a storage fault —
   and release the lease.

Fencing (what a runner paused past its lease does when it wakes): the runner's ownership ends
at its own deadline (its last successful renewal + the lease TTL - a margin, on its own
monotonic clock: :meth:`LeaseKeeper.check`). It checks that deadline before it hands a task to
the executor and before each of its writes (status, task error, continuation specs, a parent's
forward record); past it, it renews once or stops without writing. Its status writes are also
compare-and-swaps on the run record it last wrote (:meth:`WorkflowStore.set_status`), so even a
write already past the check cannot overwrite the record of the runner that took over.
Checkpoints are create-only: of two runners, the first checkpoint wins and both go on with it.

Liveness of the loop itself: "nothing running, nothing ready, nothing queued, not finished" is
a bug, never a silent wait: the run stops RESUMABLE with a :class:`WorkflowStalledError`-like
error naming the tasks that wait, so the next resume starts from the stored state again.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from durableflow import telemetry
from durableflow.core.machine import (
    CatchError,
    Command,
    CompleteParent,
    Event,
    FailWorkflow,
    FinishWorkflow,
    RecordTaskError,
    SubmitTask,
    TaskContinued,
    TaskFailed,
    TaskSucceeded,
    decide,
    start,
)
from durableflow.core.state import RunState
from durableflow.errors import (
    SerializationError,
    StorageError,
    WorkflowIncompleteError,
    WorkflowStillActiveError,
)
from durableflow.executors.base import Executor
from durableflow.model.calls import OutcomeKind, TaskCall, TaskOutcome
from durableflow.model.dag import FlatDAG, IdAllocator, TaskSpec, flatten
from durableflow.model.records import ErrorInfo, RunRecord
from durableflow.model.status import WorkflowStatus
from durableflow.runtime.async_tasks import is_async
from durableflow.runtime.cancellation import WAKE, RunStops
from durableflow.runtime.dispatch import Dispatcher
from durableflow.runtime.fenced import FencedRecord
from durableflow.runtime.lease import LeaseKeeper
from durableflow.runtime.run_writes import RunWrites
from durableflow.runtime.waits import is_wait
from durableflow.storage.layout import ROOT_BATCH
from durableflow.storage.store import WorkflowStore

__all__ = ["WorkflowRun"]

log = logging.getLogger("durableflow.engine")
task_log = logging.getLogger("durableflow.task")


class WorkflowRun(RunStops, RunWrites):
    """One run of one workflow, from its current stored state to a final status.

    Args:
        store: the workflow store.
        executor: where task attempts run.
        leases: the keeper holding this workflow's lease (already claimed).
        record: the run record as stored now.
        signing_key: passed to workers that reopen the storage.
        cancel_poll: seconds between checks for a cancel request in storage.
        timeout_s: the workflow's time limit for this run (None: the one stored with the
            workflow at its start, if any); a resume gets a fresh deadline.
        stop_grace: seconds a cancel or a workflow timeout waits for running attempts to stop
            before it writes the final status (:mod:`durableflow.runtime.cancellation`).
    """

    def __init__(
        self,
        store: WorkflowStore,
        executor: Executor,
        leases: LeaseKeeper,
        record: RunRecord,
        *,
        signing_key: bytes | None = None,
        cancel_poll: float = 0.5,
        dag: FlatDAG | None = None,
        record_raw: bytes | None = None,
        timeout_s: float | None = None,
        stop_grace: float = 30.0,
    ) -> None:
        self.store = store
        self.executor = executor
        self.leases = leases
        self.fenced = FencedRecord(store, record, self._fence)
        """The run record as this runner writes it (every write fenced)."""
        self.fenced.raw = record_raw
        self.workflow_id = record.workflow_id
        self.signing_key = signing_key
        self.cancel_poll = cancel_poll
        self._dag = dag
        self._outcomes: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._dispatch = Dispatcher(
            executor,
            self._outcomes,
            self._build_call,
            self._is_wait,
            self._is_async,
            self._started_at,
        )
        self._specs: dict[str, TaskSpec] = {}
        self._values: dict[str, Any] = {}
        self._refs: dict[str, Any] = {}  # executor handles to outputs (Ray ObjectRefs)
        self._consumers: dict[str, int] = {}
        self._ids = IdAllocator()
        self._result: Any = None
        self._error_infos: dict[str, ErrorInfo] = {}
        self._unsynced = False
        stored_limit = record.extra.get("timeout_s")
        self.timeout_s = timeout_s if timeout_s is not None else stored_limit
        self.stop_grace = stop_grace
        self._deadline: float | None = None
        self._timed_out: dict[str, list[int]] = {}
        """Attempts abandoned past their timeout_s, per task (their late checkpoints lose)."""

    # --- the run ------------------------------------------------------------------------------
    def execute(self) -> Any:
        """Run to a final status and return the workflow's output.

        Raises:
            WorkflowExecutionError: a task failed (status FAILED, or RESUMABLE for a system error).
            WorkflowCancellationError: canceled (status CANCELED).
            StorageError: the storage failed (status RESUMABLE when it could still be written).
        """
        span = None
        try:
            span = telemetry.start_run(self.store, self.record, self.executor.name)
            state = self._load_state()
            if self.fenced.stored is not WorkflowStatus.RUNNING or not self.fenced.claimed:
                self.fenced.mark(WorkflowStatus.RUNNING)
            log.info("workflow %s running (epoch %d)", self.workflow_id, self.record.epoch)
            self._start_clock()
            self._loop(state)
            return self._result
        except StorageError as err:
            self._abandon(err)
            raise
        except WorkflowStillActiveError:
            self._drop_running()  # taken over: write nothing more
            raise
        finally:
            telemetry.end_run(span, self.record)
            self.leases.release(self.workflow_id)

    def _load_state(self) -> RunState:
        if self._dag is not None:
            batches = {ROOT_BATCH: self._dag}
            state = RunState.new(self.workflow_id, self._dag)
        else:
            batches = self.store.read_specs(self.workflow_id)
            if ROOT_BATCH not in batches:
                raise StorageError(
                    f"workflow {self.workflow_id!r} has no stored task specs",
                    workflow_id=self.workflow_id,
                )
            done = self.store.list_done(self.workflow_id)
            # A crashed runner's checkpoints may be unsynced: sync before they feed a task.
            self._unsynced = bool(done) and self.store.storage.ordered
            state = RunState.from_stored(
                self.workflow_id, batches, done, attempts=self._attempts_before()
            )
        for flat in batches.values():
            for spec in flat.specs:
                self._specs[spec.task_id] = spec
        self._ids = IdAllocator(self._specs)
        for task in state.tasks.values():
            for up in task.upstream:
                self._consumers[up] = self._consumers.get(up, 0) + 1
        return state

    def _attempts_before(self) -> dict[str, int]:
        """Attempts earlier runs made (crashed ones too), so numbering continues after them."""
        try:
            from durableflow.storage.attempts import read_attempt_counts
        except ImportError:  # pragma: no cover - until attempt records land
            return {}
        return read_attempt_counts(self.store, self.workflow_id)

    def _fence(self) -> None:
        """Stop, writing nothing, if this runner's ownership ended (see the module docstring)."""
        self.leases.check(self.workflow_id)

    def _loop(self, state: RunState) -> None:
        pending: collections.deque[Event] = collections.deque()
        self._perform(state, start(state), pending)
        next_poll = time.monotonic() + self.cancel_poll
        while not state.finished:
            while pending and not state.finished:
                event = pending.popleft()
                self._perform(state, decide(state, event), pending)
                if isinstance(event, TaskSucceeded):
                    self._release_inputs(event.task_id, state)
            if state.finished:
                break
            self._check_signals()
            if not state.running and not self._dispatch.busy and not pending:
                self._stalled(state)
            try:
                item = self._outcomes.get(timeout=self._next_wake(next_poll))
            except queue.Empty:
                item = WAKE
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self.cancel_poll
                if self.store.cancel_requested(self.workflow_id):
                    self._cancel.set()
            pending.extend(self._timeouts())
            if item is WAKE:
                continue
            next_event = self._to_event(state, *item)
            if next_event is not None:
                pending.append(next_event)

    def _stalled(self, state: RunState) -> None:
        """Nothing runs and nothing can start: a bug. Stop RESUMABLE instead of waiting forever."""
        waiting = sorted(t for t, task in state.tasks.items() if task.status.value != "done")
        error = WorkflowIncompleteError(
            f"workflow {self.workflow_id!r} stalled: no task is running or ready, but it is not "
            f"finished (waiting: {', '.join(waiting[:10])}); this is a durableflow bug, please "
            "report it; the workflow is left RESUMABLE",
            workflow_id=self.workflow_id,
        )
        log.error("%s", error)
        self._set_status(WorkflowStatus.RESUMABLE, error=ErrorInfo.from_exception(error))
        raise error

    def _to_event(
        self, state: RunState, task_id: str, attempt: int, future: Future[TaskOutcome]
    ) -> Event | None:
        task = state.tasks.get(task_id)
        if task is None or task.attempts != attempt or not self._dispatch.take(task_id, future):
            return None  # an outcome nobody waits for any more
        error = future.exception()
        if error is not None:
            # The worker or an input object may be lost: retries read inputs from storage.
            for up in self._specs[task_id].upstream:
                self._refs.pop(up, None)
            telemetry.attempt_lost(self.workflow_id, task_id, attempt, error)
            return TaskFailed(task_id, error, system=True)
        outcome = future.result()
        telemetry.attempt_done(self.workflow_id, outcome)
        task_log.debug(
            "workflow %s task %s attempt %d: %s in %.3f s",
            self.workflow_id,
            task_id,
            attempt,
            outcome.kind,
            outcome.end - outcome.start,
        )
        if outcome.kind is OutcomeKind.OK:
            self._unsynced = self.store.storage.ordered
            if outcome.has_value:
                self._values[task_id] = outcome.value
            if outcome.value_ref is not None:
                self._refs[task_id] = outcome.value_ref
            return TaskSucceeded(task_id)
        if outcome.kind is OutcomeKind.CONTINUATION and outcome.continuation is not None:
            try:
                dag = flatten(outcome.continuation, ids=self._ids)
                self._fence()
                dag = self.store.create_specs(self.workflow_id, task_id, dag)
            except (TypeError, ValueError, SerializationError) as err:
                return TaskFailed(task_id, err)
            for spec in dag.specs:
                self._specs[spec.task_id] = spec
                for up in spec.upstream:
                    self._consumers[up] = self._consumers.get(up, 0) + 1
            return TaskContinued(task_id, dag)
        error = outcome.error or RuntimeError("task failed")
        if outcome.error_info is not None:
            self._error_infos[task_id] = replace(outcome.error_info, task_id=task_id)
        if isinstance(error, StorageError):  # the storage failed, not the task or its worker
            return TaskFailed(task_id, error, resumable=True)
        return TaskFailed(task_id, error, system=outcome.system)

    def _perform(
        self, state: RunState, commands: list[Command], pending: collections.deque[Event]
    ) -> None:
        for command in commands:
            if isinstance(command, SubmitTask):
                self._sync_checkpoints()
                self._dispatch.submit(command)
            elif isinstance(command, RecordTaskError):
                self._record_error(command)
            elif isinstance(command, CatchError):
                value = (None, command.error)
                self._write_output(command.task_id, value)
                pending.append(TaskSucceeded(command.task_id))
            elif isinstance(command, CompleteParent):
                self._complete_parent(command)
                pending.append(TaskSucceeded(command.task_id))
            elif isinstance(command, FinishWorkflow):
                self._result = self._value_of(state.root)
                self._set_status(WorkflowStatus.SUCCESSFUL, end_time=time.time())
            elif isinstance(command, FailWorkflow):
                self._fail(command)

    def _release_inputs(self, task_id: str, state: RunState) -> None:
        """Drop from memory the inputs of ``task_id`` that no other task will read."""
        spec = self._specs.get(task_id)
        if spec is None:
            return
        for up in spec.upstream:
            left = self._consumers.get(up, 0) - 1
            self._consumers[up] = left
            if left <= 0 and up != state.root:
                self._values.pop(up, None)
                self._refs.pop(up, None)

    def _is_wait(self, task_id: str) -> bool:
        """A durable wait the wait service runs (on executors that share memory only)."""
        return self.executor.shares_memory and is_wait(self._specs[task_id].func)

    def _is_async(self, task_id: str) -> bool:
        """An async task the event loop runs (on executors that share memory only)."""
        spec = self._specs[task_id]
        return (
            self.executor.shares_memory
            and is_async(spec.func)
            and "runtime_env" not in spec.options.executor_options  # then in its subprocess
        )

    def _build_call(self, command: SubmitTask) -> tuple[TaskCall, Mapping[str, Any]]:
        """The call of one attempt (checked against this runner's ownership first)."""
        self._fence()
        spec = self._specs[command.task_id]
        task_log.debug(
            "workflow %s task %s attempt %d starts", self.workflow_id, spec.task_id, command.attempt
        )
        shares = self.executor.shares_memory
        inputs = {}
        for up in spec.upstream:
            if up in self._values and (shares or not self._specs[up].options.checkpoint):
                inputs[up] = self._values[up]
        refs = {up: self._refs[up] for up in spec.upstream if up in self._refs and up not in inputs}
        call = TaskCall(
            workflow_id=self.workflow_id,
            task_id=spec.task_id,
            attempt=command.attempt,
            func=spec.func,
            args=spec.args,
            kwargs=spec.kwargs,
            inputs=inputs,
            checkpoint=spec.options.checkpoint,
            catch=spec.options.catch_exceptions,
            store=self.store if shares else None,
            store_url=None if shares else self.store.storage.url,
            signing_key=self.signing_key,
            return_value=shares or not spec.options.checkpoint,
            input_refs=refs,
            epoch=self.record.epoch,
            timeout_s=spec.options.timeout_s,
            runtime_env=None
            if self.executor.handles_runtime_env
            else spec.options.executor_options.get("runtime_env"),
            replaces=tuple(self._timed_out.get(spec.task_id, ())),
            trace_context=telemetry.attempt_submitted(
                self.workflow_id, spec.task_id, command.attempt
            ),
        )
        return call, spec.options.executor_options

    @property
    def epoch(self) -> int:
        """The fencing token of this runner (its run record's epoch)."""
        return self.record.epoch
