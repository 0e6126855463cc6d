"""Client: the hub every caller goes through (the facade, the CLI, workers).

A Client is bound to one storage. It starts, resumes, inspects, cancels and deletes workflows;
it runs the ones it starts on its executor, at most ``max_running_workflows`` at a time.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future
from typing import Any

from durableflow import config
from durableflow.client._forward import forward
from durableflow.client.executors import make_executor
from durableflow.client.routing import choose_runner, load_dag_plugins
from durableflow.client.runners import EmbeddedRunner, Handle
from durableflow.client.scheduling import Scheduling
from durableflow.client.steering import Steering
from durableflow.client.stopping import Stopping
from durableflow.client.submitting import Submitting
from durableflow.errors import WorkflowError
from durableflow.executors.base import Executor
from durableflow.model.environment import validate_env_policy
from durableflow.model.ids import new_workflow_id, validate_workflow_id
from durableflow.model.status import WorkflowStatus
from durableflow.runtime.lease import DEFAULT_TTL, LeaseKeeper
from durableflow.runtime.reader import Reader, StatusFilter
from durableflow.runtime.run_queue import RunQueue
from durableflow.runtime.scheduler import Scheduler
from durableflow.runtime.starting import Launcher
from durableflow.storage import layout
from durableflow.storage.base import Storage
from durableflow.storage.serializer import Serializer
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage

__all__ = ["Client", "Reader"]  # Reader: re-exported for the faces, which import only client/

log = logging.getLogger("durableflow")


class Client:
    """Runs and manages the workflows of one storage.

    Args:
        storage: a URL, a path, or a Storage; None reads ``$DURABLEFLOW_STORAGE``, then
            ``$RAY_WORKFLOW_STORAGE``, then uses the default storage (config.default_storage).
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
        runner: where the workflows it starts and resumes run (:mod:`.runners`): "embedded"
            (default: here, on ``executor``), "ray" (on the cluster's coordinator), "auto"
            (the facade's: Ray DAGs on the cluster while Ray is initialized and no executor was
            chosen), or a registered runner's name.
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
        runner: str | None = None,
    ) -> None:
        config.check_limits(max_running_workflows, max_pending_workflows)
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
        self._runs = RunQueue(max_running_workflows, max_pending_workflows)
        self.reader = Reader(self.store, runs=self._runs)
        """Read-only answers over this Client's store, typed: ``get_workflow``, ``list_tasks``,
        ``list_workflows`` (paged), ``get_schedule``... (:class:`Reader`)."""
        self._launcher = Launcher(
            self.store,
            self.executor,
            self.leases,
            self._runs,
            signing_key=self._signing_key,
            cancel_poll=cancel_poll,
            env_policy=self.env_policy,
        )
        self.settings = config.ClientSettings(
            self.storage.url,
            self._signing_key,
            max_running_workflows,
            max_pending_workflows,
            lease_ttl,
            cancel_poll,
            self.env_policy,
        )
        """What opens a Client like this one (the Ray runner's coordinator does)."""
        self._embedded = EmbeddedRunner(self._launcher, self.reader, self._bulk_size())
        self.runner = choose_runner(
            self,
            runner or "embedded",
            self._embedded,
            executor_chosen=executor is not None or config.executor_named_in_env(),
        )
        """Where the workflows this Client starts and resumes run (:mod:`.runners`)."""
        self._stopping = Stopping(self.store, self.leases, self._runs)
        self._steering = Steering(self.store, self.leases, self, self._bulk_size())
        self._submitting = Submitting(self.store, self.leases, self._check_open)
        self._scheduling = Scheduling(self.storage, self.store, self._submitting.submit_flat)
        self._closed = False
        log.info("durableflow storage: %s", self.storage.url)

    # The calls its parts answer (each part's module documents its protocols); reads: Reader.
    submit = forward("_submitting", Submitting.submit)
    waiting_workflows = forward("_submitting", Submitting.waiting_workflows)
    cancel = forward("_stopping", Stopping.cancel)
    delete = forward("_stopping", Stopping.delete)
    restart = forward("_steering", Steering.restart)
    fork = forward("_steering", Steering.fork)
    cancel_all = forward("_steering", Steering.cancel_all)
    delete_all = forward("_steering", Steering.delete_all)
    prune = forward("_steering", Steering.prune)
    set_retention = forward("_steering", Steering.set_retention)
    get_retention = forward("_steering", Steering.get_retention)
    schedule = forward("_scheduling", Scheduling.schedule)
    get_schedule = forward("_scheduling", Scheduling.get_schedule)
    list_schedules = forward("_scheduling", Scheduling.list_schedules)
    pause_schedule = forward("_scheduling", Scheduling.pause_schedule)
    resume_schedule = forward("_scheduling", Scheduling.resume_schedule)
    remove_schedule = forward("_scheduling", Scheduling.remove_schedule)
    fire_schedules = forward("_scheduling", Scheduling.fire_schedules)
    get_status = forward("reader", Reader.get_status)
    get_output = forward("reader", Reader.get_output)
    get_metadata = forward("reader", Reader.get_metadata)
    environment_diff = forward("reader", Reader.environment_diff)
    get_logs = forward("reader", Reader.get_logs)

    @property
    def scheduler(self) -> Scheduler:
        """The schedules stored on this Client's storage."""
        return self._scheduling.scheduler

    def _bulk_size(self) -> int:
        return self.bulk_workers or self.max_running_workflows or 8

    @property
    def signing_key(self) -> bytes | None:
        """The key stored values are signed with, or None."""
        return self._signing_key

    @property
    def lease_ttl(self) -> float:
        """Seconds before a silent runner's workflow reads RESUMABLE on other hosts."""
        return self.settings.lease_ttl

    # --- running ----------------------------------------------------------------------------
    def run(
        self,
        dag: Any,
        *args: Any,
        workflow_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run a DAG to the end and return its output (resumes a stored ``workflow_id``).

        ``timeout_s``: the workflow's time limit, stored with it; each run (a resume too) gets
        it afresh from its own start. Past it no task starts, running ones are stopped and the
        workflow is FAILED with a ``WorkflowTimeoutError``.

        Raises:
            WorkflowExecutionError: a task failed (or the time limit passed); the cause says.
            WorkflowStillActiveError: the id is running elsewhere now.
        """
        self._check_open()
        return self.runner.run(
            self._new_id(workflow_id), load_dag_plugins(dag), args, kwargs, metadata, timeout_s
        )

    def run_async(
        self,
        dag: Any,
        *args: Any,
        workflow_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        detached: bool = False,
        timeout_s: float | None = None,
        **kwargs: Any,
    ) -> Handle:
        """Start a DAG and return a future of its output (a ``ray.ObjectRef`` on Ray's runner).

        With ``detached=True`` nothing runs here: the workflow is stored PENDING for a worker
        (see :meth:`submit`) and the future is already resolved to the workflow id.
        """
        if detached:
            submitted: Future[Any] = Future()
            submitted.set_result(
                self.submit(
                    dag,
                    *args,
                    workflow_id=workflow_id,
                    metadata=metadata,
                    timeout_s=timeout_s,
                    **kwargs,
                )
            )
            return submitted
        self._check_open()
        wid = self._new_id(workflow_id)
        return self.runner.start(wid, load_dag_plugins(dag), args, kwargs, metadata, timeout_s)

    def resume(
        self,
        workflow_id: str,
        *,
        from_task: str | list[str] | None = None,
        allow_canceled: bool = False,
    ) -> Any:
        """Continue a FAILED or RESUMABLE workflow and return its output.

        ``from_task``: first restart it in place from those tasks (:meth:`restart`), which
        also works on a SUCCESSFUL workflow (and a CANCELED one with ``allow_canceled``).

        Raises:
            WorkflowNotFoundError: unknown id.
            WorkflowNotResumableError: the workflow was canceled.
            WorkflowStillActiveError: it runs now.
        """
        if from_task is not None:
            self.restart(workflow_id, from_task, allow_canceled=allow_canceled)
        self._check_open()
        return self.runner.resume(validate_workflow_id(workflow_id))

    def resume_async(self, workflow_id: str, *, wait: bool = True) -> Handle:
        """Like :meth:`resume`, returning a future.

        ``wait=False`` (workers polling in a loop): a lease of another machine that looks
        expired is not waited on for the observation a takeover needs (a lease TTL seen on this
        machine's clock); WorkflowStillActiveError now, and a later call takes it over.
        """
        self._check_open()
        return self.runner.resume_async(validate_workflow_id(workflow_id), wait=wait)

    def resume_all(self, include_failed: bool = False, **filters: Any) -> list[tuple[str, Handle]]:
        """Resume every RESUMABLE (and FAILED if asked) workflow that matches ``filters``.

        ``filters``: ``status``, ``prefix``, ``name``, ``older_than`` (see
        :mod:`durableflow.client.steering`). Returns at once with a future per workflow; the
        workflows run on a bounded pool of ``bulk_workers`` threads (default:
        ``max_running_workflows``, else 8), not a thread each. One that cannot be resumed does
        not stop the others: its future holds the error. Progress is logged every 10 %.
        """
        wanted = {WorkflowStatus.RESUMABLE} | ({WorkflowStatus.FAILED} if include_failed else set())
        if filters:
            ids = self.reader.select(wanted, **filters)
        else:
            ids = [workflow_id for workflow_id, _ in self.list_all(wanted)]
        self._check_open()
        return self.runner.resume_many(ids)

    @staticmethod
    def _new_id(workflow_id: str | None) -> str:
        return validate_workflow_id(workflow_id) if workflow_id is not None else new_workflow_id()

    # --- inspecting -------------------------------------------------------------------------
    def get_output_async(self, workflow_id: str, *, task_id: str | None = None) -> Handle:
        """Like :meth:`get_output`, returning a future (a ``ray.ObjectRef`` on Ray's runner)."""
        return self.runner.output(validate_workflow_id(workflow_id), task_id)

    def root_functions(self, workflow_id: str) -> list[Any]:
        """The task functions of a stored workflow's root DAG; empty if it cannot be read here.

        Runners tell workflows apart by them (the auto runner sends Ray's to the cluster).
        """
        try:
            key = layout.spec_key(validate_workflow_id(workflow_id), layout.ROOT_BATCH)
            raw = self.storage.get(key)
            flat = self.store.serializer.loads(raw, key=key) if raw is not None else None
        except WorkflowError:
            return []
        return [] if flat is None else [spec.func for spec in flat.specs]

    def list_all(
        self,
        status_filter: StatusFilter = None,
        *,
        prefix: str | None = None,
        name: str | None = None,
        older_than: Any = None,
    ) -> list[tuple[str, WorkflowStatus]]:
        """``[(workflow_id, status), ...]`` sorted by id, for the statuses asked for.

        ``prefix``, ``name`` (the root task's), ``older_than`` narrow it (the filter shape of
        the bulk calls); without them this is one pass over the status index.
        """
        if prefix is None and name is None and older_than is None:
            return self.reader.list_all(status_filter)
        return self.reader.list_filtered(
            status_filter, prefix=prefix, name=name, older_than=older_than
        )

    def close(self, wait: bool = True) -> None:
        """Stop this Client: ``wait`` for its workflows, or leave them RESUMABLE."""
        self._closed = True
        self._embedded.close(wait)
        if self.runner is not self._embedded:
            self.runner.close(wait)
        self.leases.close()
        self.executor.close(wait=wait)
        if self._owns_storage:
            self.storage.close()

    # --- operating ---------------------------------------------------------------------------
    def stop(self, workflow_id: str) -> bool:
        """Stop a workflow this Client runs, leaving it RESUMABLE; False if it does not run here."""
        active = self._runs.active(workflow_id)
        if active is None:
            return False
        active[0].request_stop()
        return True

    def list_tasks(self, workflow_id: str) -> list[dict[str, Any]]:
        """The task table of a workflow: status, attempts, times and error of every task.

        Continuation tasks follow the task that returned them, with ``parent`` and ``depth``
        (:meth:`TaskInfo.to_row` of :meth:`Reader.list_tasks`).
        """
        return [info.to_row() for info in self.reader.list_tasks(workflow_id)]

    def _check_open(self) -> None:
        if self._closed:
            raise WorkflowError("this durableflow Client is closed")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
