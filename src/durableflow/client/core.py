"""Client: the hub every caller goes through (the facade, the CLI, workers).

A Client is bound to one storage. It starts, resumes, inspects, cancels and deletes workflows;
it runs the ones it starts on its executor, at most ``max_running_workflows`` at a time.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from durableflow import config
from durableflow.client.executors import make_executor
from durableflow.client.scheduling import SchedulingMixin
from durableflow.client.stopping import StoppingMixin
from durableflow.errors import (
    WorkflowError,
    WorkflowExecutionError,
    WorkflowIncompleteError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowQueueFullError,
    WorkflowStillActiveError,
)
from durableflow.executors.base import Executor
from durableflow.model.dag import FlatDAG, flatten
from durableflow.model.environment import EnvironmentDiff, validate_env_policy
from durableflow.model.ids import new_workflow_id, validate_workflow_id
from durableflow.model.records import RunRecord
from durableflow.model.status import ACTIVE, WorkflowStatus, parse_status_filter
from durableflow.runtime.engine import WorkflowRun
from durableflow.runtime.environment import (
    capture_environment,
    check_environment,
    environment_diff,
)
from durableflow.runtime.inspection import task_rows
from durableflow.runtime.lease import DEFAULT_TTL, LeaseKeeper
from durableflow.runtime.status import (
    effective_status,
    find_task_spec,
    list_statuses,
    stopped_error,
    task_metadata,
    workflow_metadata,
)
from durableflow.runtime.submission import submit_detached
from durableflow.storage.base import Storage
from durableflow.storage.serializer import Serializer
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage

__all__ = ["Client"]

log = logging.getLogger("durableflow")

StatusFilter = str | WorkflowStatus | Iterable[str | WorkflowStatus] | None


class Client(SchedulingMixin, StoppingMixin):
    """Runs and manages the workflows of one storage.

    Args:
        storage: a URL, a path, or a Storage; None reads ``$DURABLEFLOW_STORAGE``, then
            ``$RAY_WORKFLOW_STORAGE``, then uses the default directory.
        executor: "thread" (default), "process", "ray", or an Executor.
        max_running_workflows: workflows this Client runs at once; more wait as PENDING.
        max_pending_workflows: PENDING workflows allowed before ``run`` raises
            WorkflowQueueFullError.
        signing_key: sign stored values with HMAC and refuse unsigned ones
            (default ``$DURABLEFLOW_SIGNING_KEY``).
        lease_ttl: seconds before a silent runner's workflow reads RESUMABLE on other hosts.
        cancel_poll: seconds between a runner's checks for cancel requests in storage.
        env_policy: on resume, what to do when the environment differs from the one recorded
            at submission: "ignore", "warn" (default; ``$DURABLEFLOW_ENV_POLICY``) or "error".
        bulk_workers: workflows ``resume_all`` runs at once (default: max_running_workflows,
            else 8).
    """

    def __init__(
        self,
        storage: str | os.PathLike[str] | Storage | None = None,
        *,
        executor: str | Executor | None = None,
        max_running_workflows: int | None = None,
        max_pending_workflows: int | None = None,
        signing_key: bytes | str | None = None,
        lease_ttl: float = DEFAULT_TTL,
        cancel_poll: float = 0.5,
        env_policy: str | None = None,
        bulk_workers: int | None = None,
    ) -> None:
        for name, value in (
            ("max_running_workflows", max_running_workflows),
            ("max_pending_workflows", max_pending_workflows),
        ):
            if value is not None and (
                not isinstance(value, int) or value < (1 if "running" in name else 0)
            ):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        self.storage = open_storage(storage if storage is not None else config.storage_from_env())
        self._owns_storage = self.storage is not storage  # a Storage handed in stays open
        key = signing_key if signing_key is not None else config.signing_key_from_env()
        self._signing_key = key.encode() if isinstance(key, str) else key
        self.store = WorkflowStore(self.storage, Serializer(self._signing_key))
        self.executor = make_executor(executor)
        if not self.executor.shares_memory and self.storage.url.startswith("memory://"):
            raise ValueError(
                f"the {self.executor.name} executor runs tasks in other processes, which cannot "
                "see memory:// storage; use file, sqlite or s3 storage"
            )
        self.leases = LeaseKeeper(self.store, lease_ttl)
        self.max_running_workflows = max_running_workflows
        self.max_pending_workflows = max_pending_workflows
        self.cancel_poll = cancel_poll
        self.bulk_workers = bulk_workers
        self.env_policy = validate_env_policy(env_policy or config.env_policy_from_env())
        self._lock = threading.Lock()
        self._active: dict[str, tuple[WorkflowRun, Future[Any]]] = {}
        self._queue: collections.deque[tuple[WorkflowRun, Future[Any]]] = collections.deque()
        self._running = 0
        self._closed = False
        log.info("durableflow storage: %s", self.storage.url)

    @property
    def signing_key(self) -> bytes | None:
        """The key stored values are signed with, or None."""
        return self._signing_key

    # --- running ----------------------------------------------------------------------------
    def run(
        self,
        dag: Any,
        *args: Any,
        workflow_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run a DAG to the end and return its output (resumes a stored ``workflow_id``).

        Raises:
            WorkflowExecutionError: a task failed; its exception is the cause.
            WorkflowStillActiveError: the id is running elsewhere now.
        """
        return self._start(dag, args, kwargs, workflow_id, metadata, inline=True).result()

    def run_async(
        self,
        dag: Any,
        *args: Any,
        workflow_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        detached: bool = False,
        **kwargs: Any,
    ) -> Future[Any]:
        """Start a DAG and return a future of its output.

        With ``detached=True`` nothing runs here: the workflow is stored PENDING for a worker
        (see :meth:`submit`) and the future is already resolved to the workflow id.
        """
        if detached:
            submitted: Future[Any] = Future()
            submitted.set_result(
                self.submit(dag, *args, workflow_id=workflow_id, metadata=metadata, **kwargs)
            )
            return submitted
        return self._start(dag, args, kwargs, workflow_id, metadata, inline=False)

    def resume(self, workflow_id: str) -> Any:
        """Continue a FAILED or RESUMABLE workflow and return its output.

        Raises:
            WorkflowNotFoundError: unknown id.
            WorkflowNotResumableError: the workflow was canceled.
            WorkflowStillActiveError: it runs now.
        """
        return self._resume(workflow_id, inline=True).result()

    def resume_async(self, workflow_id: str) -> Future[Any]:
        """Like :meth:`resume`, returning a future."""
        return self._resume(workflow_id, inline=False)

    def resume_all(self, include_failed: bool = False) -> list[tuple[str, Future[Any]]]:
        """Resume every RESUMABLE (and FAILED if asked) workflow.

        Returns at once with a future per workflow; the workflows run on a bounded pool of
        ``bulk_workers`` threads (default: ``max_running_workflows``, else 8), not a thread
        each. One that cannot be resumed does not stop the others: its future holds the error.
        Progress is logged (logger ``durableflow``) every 10 %.
        """
        wanted = {WorkflowStatus.RESUMABLE} | ({WorkflowStatus.FAILED} if include_failed else set())
        handles: list[tuple[str, Future[Any]]] = [
            (workflow_id, Future()) for workflow_id, _ in self.list_all(wanted)
        ]
        if handles:
            self._bulk_resume(handles)
        return handles

    def _bulk_resume(self, handles: list[tuple[str, Future[Any]]]) -> None:
        todo: queue.SimpleQueue[tuple[str, Future[Any]]] = queue.SimpleQueue()
        for handle in handles:
            todo.put(handle)
        total = len(handles)
        done = [0]
        step = max(1, total // 10)
        lock = threading.Lock()

        def work() -> None:
            while True:
                try:
                    workflow_id, future = todo.get_nowait()
                except queue.Empty:
                    return
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(self.resume(workflow_id))
                    except BaseException as err:
                        if isinstance(err, WorkflowError) and not isinstance(
                            err, WorkflowExecutionError
                        ):
                            log.warning("resume_all: %s cannot be resumed: %s", workflow_id, err)
                        future.set_exception(err)
                with lock:
                    done[0] += 1
                    if done[0] % step == 0 or done[0] == total:
                        log.info("resume_all: %d of %d workflows done", done[0], total)

        size = self.bulk_workers or self.max_running_workflows or 8
        for n in range(min(size, total)):
            threading.Thread(target=work, daemon=True, name=f"durableflow-resume-all-{n}").start()

    def _start(
        self,
        dag: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        workflow_id: str | None,
        metadata: dict[str, Any] | None,
        *,
        inline: bool,
    ) -> Future[Any]:
        """Start a new workflow, or resume the stored one of that id.

        Protocol (a crash after any step leaves a state the next run of the id handles):

        1. read the run record: an existing workflow is resumed (:meth:`_resume`) instead;
        2. encode the specs (an unpicklable input fails here, with nothing written) and take a
           running slot of this Client or a place in its queue;
        3. claim the workflow's lease (WorkflowStillActiveError if a live runner holds it);
        4. re-read the run record under the lease: if another caller stored the workflow since
           step 1 (and maybe finished it), release the lease and resume it instead;
        5. clear leftovers under the id (an interrupted delete's, or an interrupted first
           write's): a new run never adopts an old checkpoint;
        6. store specs, index entry and run record (path A of the status index; the record is
           written create-only: the fence of a new workflow) as RUNNING, or PENDING when queued;
        7. run it (here or in a thread); the engine releases the lease at the end.
        """
        self._check_open()
        workflow_id = (
            validate_workflow_id(workflow_id) if workflow_id is not None else new_workflow_id()
        )
        metadata = _check_metadata(metadata, workflow_id)
        flat = flatten(dag, inputs=(args, kwargs))
        record = self.store.read_run(workflow_id)  # 1
        if record is not None:
            _warn_if_other_dag(record, flat)
            return self._resume(workflow_id, inline=inline, record=record)
        data = self.store.encode_specs(workflow_id, flat)  # 2
        record = self._new_record(workflow_id, flat, metadata)
        run = self._new_run(record, flat)
        run.stored_status = None
        queued = self._admit(workflow_id)
        claimed = False
        try:
            self._claim(run)  # 3
            claimed = True
            if self.store.read_run(workflow_id) is not None:  # 4
                self.leases.release(workflow_id)
                claimed = False
                self._release_slot(queued)
                return self._resume(workflow_id, inline=inline)
            if self.store.clear_leftovers(workflow_id):  # 5
                log.warning("cleared what an interrupted delete left under %s", workflow_id)
            # 6: specs and record stored before this returns (the record last): the id is known
            # to every caller.
            run.mark(WorkflowStatus.PENDING if queued else WorkflowStatus.RUNNING, specs=data)
        except BaseException:
            if claimed:
                self.leases.release(workflow_id)
            self._release_slot(queued)
            raise
        return self._launch(run, queued, inline)  # 7

    def _resume(
        self, workflow_id: str, *, inline: bool, record: RunRecord | None = None
    ) -> Future[Any]:
        """Resume a stored workflow (or answer at once for a finished one).

        Protocol:

        1. read the run record and its effective status: SUCCESSFUL returns the output,
           CANCELED and active (a live runner) raise;
        2. check the recorded environment (the env policy);
        3. take a slot or a queue place, and claim the lease;
        4. re-read the record under the lease: a delete in progress (tombstone) is finished and
           the id reported unknown; a record that changed since step 1 (another runner moved it
           on) means release and decide again from step 1;
        5. store RUNNING (or PENDING) as a compare-and-swap on the record read in step 4, with
           a new fencing token (the record's epoch + 1);
        6. run it.
        """
        self._check_open()
        validate_workflow_id(workflow_id)
        record = record or self._record(workflow_id)  # 1
        status = self._effective_status(record)
        if status is WorkflowStatus.SUCCESSFUL:
            done: Future[Any] = Future()
            done.set_result(self.store.read_output(workflow_id, record.root_task_id))
            return done
        if status is WorkflowStatus.CANCELED:
            raise WorkflowNotResumableError(
                f"workflow {workflow_id!r} was canceled and cannot be resumed",
                workflow_id=workflow_id,
            )
        if status in ACTIVE and not (
            status is WorkflowStatus.PENDING and self._unowned(workflow_id)
        ):
            raise WorkflowStillActiveError(
                f"workflow {workflow_id!r} is {status.value} now", workflow_id=workflow_id
            )
        check_environment(self.store, record, self.env_policy)  # 2
        run = self._new_run(record, None)
        queued = self._admit(workflow_id)  # 3
        claimed = False
        deleting = False
        try:
            self._claim(run)
            claimed = True
            fresh, raw = self.store.read_run_raw(workflow_id)  # 4
            deleting = self.store.is_deleting(workflow_id)
            if deleting:
                self.store.delete_workflow(workflow_id)
            stale = fresh is None or (fresh.status, fresh.updated_at) != (
                record.status,
                record.updated_at,
            )
            if not stale and not deleting and fresh is not None:
                run.record, run.record_raw = fresh, raw
                run.mark(WorkflowStatus.PENDING if queued else WorkflowStatus.RUNNING)  # 5
        except BaseException:
            if claimed:
                self.leases.release(workflow_id)
            self._release_slot(queued)
            raise
        if deleting or stale:
            self.leases.release(workflow_id)
            self._release_slot(queued)
            if deleting:
                raise WorkflowNotFoundError(
                    f"no workflow {workflow_id!r} in {self.storage.url} (it was being deleted)",
                    workflow_id=workflow_id,
                )
            # another runner moved it on between our read and our claim: decide again
            return self._resume(workflow_id, inline=inline)
        return self._launch(run, queued, inline)  # 6

    def _new_run(self, record: RunRecord, dag: FlatDAG | None) -> WorkflowRun:
        return WorkflowRun(
            self.store,
            self.executor,
            self.leases,
            record,
            signing_key=self._signing_key,
            cancel_poll=self.cancel_poll,
            dag=dag,
        )

    def _claim(self, run: WorkflowRun) -> None:
        self.leases.claim(run.workflow_id, run.lease_lost)

    def _admit(self, workflow_id: str) -> bool:
        """Take a running slot (False) or a place in the queue (True)."""
        with self._lock:
            if self.max_running_workflows is None or self._running < self.max_running_workflows:
                self._running += 1
                return False
            if (
                self.max_pending_workflows is not None
                and len(self._queue) >= self.max_pending_workflows
            ):
                raise WorkflowQueueFullError(
                    f"cannot queue workflow {workflow_id!r}: {len(self._queue)} workflows already "
                    f"pending (max_pending_workflows={self.max_pending_workflows})",
                    workflow_id=workflow_id,
                )
            return True

    def _release_slot(self, queued: bool) -> None:
        if not queued:
            with self._lock:
                self._running -= 1

    def _launch(self, run: WorkflowRun, queued: bool, inline: bool) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            self._active[run.workflow_id] = (run, future)
            if queued:
                self._queue.append((run, future))
                return future
        if inline:
            self._drive(run, future)
        else:
            threading.Thread(
                target=self._drive,
                args=(run, future),
                daemon=True,
                name=f"durableflow-run-{run.workflow_id[:32]}",
            ).start()
        return future

    def _drive(self, run: WorkflowRun, future: Future[Any]) -> None:
        try:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(run.execute())
                except BaseException as err:
                    future.set_exception(err)
        finally:
            with self._lock:
                self._active.pop(run.workflow_id, None)
                self._running -= 1
                nxt = self._queue.popleft() if self._queue else None
                if nxt is not None:
                    self._running += 1
            if nxt is not None:
                threading.Thread(
                    target=self._drive,
                    args=nxt,
                    daemon=True,
                    name=f"durableflow-run-{nxt[0].workflow_id[:32]}",
                ).start()

    # --- inspecting -------------------------------------------------------------------------
    def _record(self, workflow_id: str) -> RunRecord:
        validate_workflow_id(workflow_id)
        record = self.store.read_run(workflow_id)
        if record is None:
            raise WorkflowNotFoundError(
                f"no workflow {workflow_id!r} in {self.storage.url}", workflow_id=workflow_id
            )
        return record

    def _unowned(self, workflow_id: str) -> bool:
        _, raw = self.store.read_lease(workflow_id)
        return raw is None

    def _effective_status(self, record: RunRecord) -> WorkflowStatus:
        return effective_status(self.store, record)

    def get_status(self, workflow_id: str) -> WorkflowStatus:
        """The workflow's status; a workflow whose runner is gone reads RESUMABLE."""
        return self._effective_status(self._record(workflow_id))

    def get_output(
        self, workflow_id: str, *, task_id: str | None = None, timeout: float | None = None
    ) -> Any:
        """The workflow's output (or one task's), waiting while it runs.

        Raises:
            WorkflowNotFoundError: unknown workflow (or task).
            WorkflowExecutionError: it FAILED.
            WorkflowCancellationError: it was CANCELED.
            WorkflowIncompleteError: it stopped unfinished and nobody runs it.
        """
        return self._output_waiter(workflow_id, task_id, timeout)()

    def get_output_async(self, workflow_id: str, *, task_id: str | None = None) -> Future[Any]:
        """Like :meth:`get_output`, returning a future."""
        wait = self._output_waiter(workflow_id, task_id, None)
        future: Future[Any] = Future()

        def fill() -> None:
            try:
                future.set_result(wait())
            except BaseException as err:
                future.set_exception(err)

        threading.Thread(target=fill, daemon=True).start()
        return future

    def _output_waiter(
        self, workflow_id: str, task_id: str | None, timeout: float | None
    ) -> Callable[[], Any]:
        """A call that waits for the output, polling storage with a growing delay.

        A task that does not exist yet (a continuation a running workflow has not created) is
        waited for while the workflow is active, as Ray did; once it stopped, an unknown task
        raises WorkflowNotFoundError.
        """
        record = self._record(workflow_id)
        if task_id is not None and self._effective_status(record) not in ACTIVE:
            self._task_spec(workflow_id, task_id)
        deadline = None if timeout is None else time.monotonic() + timeout

        def wait() -> Any:
            delay = 0.01
            while True:
                current = self.store.read_run(workflow_id) or record
                if task_id is not None:
                    try:
                        return self.store.read_output(workflow_id, task_id)
                    except KeyError:
                        pass
                status = self._effective_status(current)
                if task_id is None and status is WorkflowStatus.SUCCESSFUL:
                    return self.store.read_output(workflow_id, current.root_task_id)
                if status not in ACTIVE:
                    if task_id is not None:
                        self._task_spec(workflow_id, task_id)  # unknown task: not found
                    raise stopped_error(current, status, task_id)
                with self._lock:
                    active = self._active.get(workflow_id)
                if active is not None and task_id is None:
                    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                    try:
                        return active[1].result(remaining)
                    except TimeoutError:
                        raise
                    except WorkflowError:
                        pass  # re-read the stored status for the error to raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"workflow {workflow_id!r} did not finish in {timeout} s")
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

        return wait

    def _task_spec(self, workflow_id: str, task_id: str) -> Any:
        return find_task_spec(self.store, workflow_id, task_id)

    def get_metadata(self, workflow_id: str, task_id: str | None = None) -> dict[str, Any]:
        """Status, user metadata and stats of a workflow, or of one of its tasks."""
        record = self._record(workflow_id)
        if task_id is None:
            return workflow_metadata(self.store, record)
        return task_metadata(self.store, workflow_id, task_id)

    def list_all(self, status_filter: StatusFilter = None) -> list[tuple[str, WorkflowStatus]]:
        """``[(workflow_id, status), ...]`` sorted by id, for the statuses asked for."""
        return list_statuses(self.store, parse_status_filter(status_filter))

    def close(self, wait: bool = True) -> None:
        """Stop this Client: ``wait`` for its workflows, or leave them RESUMABLE."""
        with self._lock:
            self._closed = True
        if wait:  # queued workflows start as slots free, so wait until none is left
            while True:
                with self._lock:
                    futures = [future for _, future in self._active.values()]
                if not futures:
                    break
                concurrent.futures.wait(futures)
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
            active = list(self._active.values())
        for run, future in queued:
            try:
                run.leave_resumable()
            finally:
                self.leases.release(run.workflow_id)
            future.set_exception(
                WorkflowIncompleteError(
                    f"workflow {run.workflow_id!r} was still queued at shutdown; resume it",
                    workflow_id=run.workflow_id,
                )
            )
        for run, future in active:
            if (run, future) in queued:
                continue
            run.request_stop()
            concurrent.futures.wait([future])  # its outcome is its caller's business
        self.leases.close()
        self.executor.close(wait=wait)
        if self._owns_storage:
            self.storage.close()

    # --- operating: detached runs, schedules, environments (durableflow worker, CLI) ----------
    def submit(
        self,
        dag: Any,
        *args: Any,
        workflow_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """Store a DAG as a PENDING workflow for a worker to run, and return its id at once.

        Nothing runs in this process (start one with ``durableflow worker``). Task functions
        travel pickled: by reference when importable (the worker must import the same module),
        by value when defined in ``__main__`` or a notebook. An id already stored is left as it is.

        Raises:
            WorkflowStillActiveError: another process submits or runs this id right now.
        """
        self._check_open()
        workflow_id = (
            validate_workflow_id(workflow_id) if workflow_id is not None else new_workflow_id()
        )
        metadata = _check_metadata(metadata, workflow_id)
        self._submit_flat(workflow_id, flatten(dag, inputs=(args, kwargs)), metadata)
        return workflow_id

    def _new_record(self, workflow_id: str, flat: FlatDAG, metadata: dict[str, Any]) -> RunRecord:
        """The run record of a workflow about to be stored, with its runtime environment."""
        now = time.time()
        return RunRecord(
            workflow_id,
            WorkflowStatus.PENDING,
            flat.root,
            now,
            now,
            user_metadata=metadata,
            runtime_env=capture_environment(flat, self.store),
            extra={"dag_digest": dag_digest(flat)},
        )

    def _submit_flat(self, workflow_id: str, flat: FlatDAG, metadata: dict[str, Any]) -> bool:
        data = self.store.encode_specs(workflow_id, flat)
        record = self._new_record(workflow_id, flat, metadata)
        return submit_detached(self.store, self.leases, record, data)

    def stop(self, workflow_id: str) -> bool:
        """Stop a workflow this Client runs, leaving it RESUMABLE; False if it does not run here."""
        with self._lock:
            active = self._active.get(workflow_id)
        if active is None:
            return False
        active[0].request_stop()
        return True

    def list_tasks(self, workflow_id: str) -> list[dict[str, Any]]:
        """The task table of a workflow: status, attempts, times and error of every task.

        Continuation tasks follow the task that returned them, with ``parent`` and ``depth``.
        """
        status = self.get_status(workflow_id)
        return task_rows(
            self.store,
            workflow_id,
            active=status in ACTIVE,
            successful=status is WorkflowStatus.SUCCESSFUL,
        )

    def environment_diff(self, workflow_id: str) -> EnvironmentDiff:
        """What differs between a workflow's recorded environment and this process's."""
        return environment_diff(self.store, workflow_id, self._record(workflow_id).runtime_env)

    def _check_open(self) -> None:
        if self._closed:
            raise WorkflowError("this durableflow Client is closed")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dag_digest(flat: FlatDAG) -> str:
    """A fingerprint of a DAG's shape: task ids, names, edges and literal arguments."""
    parts = []
    for spec in flat.specs:
        literal = [repr(a)[:200] for a in spec.args if not hasattr(a, "task_id")]
        literal += [f"{k}={v!r}"[:200] for k, v in sorted(spec.kwargs.items())]
        parts.append([spec.task_id, spec.name, list(spec.upstream), literal])
    encoded = json.dumps([flat.root, parts], separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


_WARNED_OTHER_DAG: set[str] = set()


def _warn_if_other_dag(record: RunRecord, flat: FlatDAG) -> None:
    """Reusing an id with another DAG returns the stored workflow (Ray's rule): say so once."""
    stored = record.extra.get("dag_digest")
    if not stored or stored == dag_digest(flat) or record.workflow_id in _WARNED_OTHER_DAG:
        return
    _WARNED_OTHER_DAG.add(record.workflow_id)
    log.warning(
        "workflow %r is already stored with a different DAG: run() resumes the stored workflow "
        "and returns its output; use a new workflow_id (or delete %r) to run the new DAG",
        record.workflow_id,
        record.workflow_id,
    )


def _check_metadata(metadata: dict[str, Any] | None, workflow_id: str) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata of workflow {workflow_id!r} must be a dict")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"metadata of workflow {workflow_id!r} must be JSON-serializable: {err}"
        ) from None
    return metadata
