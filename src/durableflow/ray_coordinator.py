"""Workflows on Ray, driven from inside the cluster so that they outlive the driver.

On Ray, the ``workflow`` facade does not drive workflows from the driver process: it asks the
cluster's coordinator, a detached actor (``durableflow_coordinator`` in the Ray namespace
``durableflow``, pinned to the head node, no CPU), to run them. The coordinator keeps one
:class:`~durableflow.client.Client` per storage, on the Ray executor. Hence:

- a driver that exits or is killed does not stop its workflows;
- ``run_async`` / ``resume_async`` / ``get_output_async`` return ``ray.ObjectRef`` s, so
  ``ray.get(workflow.run_async(dag))`` works;
- the coordinator owns the workflows' leases; when the cluster dies its leases die with it, so
  ``get_status`` / ``list_all`` read RESUMABLE (at once on the same host, after the lease TTL
  elsewhere) and ``resume`` / ``resume_all`` from a new cluster on the same storage finish them.

Everything else (status, metadata, listing, cancel, delete, a blocking ``get_output``) reads and
writes the storage from the driver, as without Ray.

A start (``run_async``) is two calls:

1. ``start``: the coordinator's Client validates the DAG, stores the specs and the run record
   and claims the lease, then returns. Errors (a bad input, an id running elsewhere) are raised
   to the caller here, as the embedded Client raises them.
2. So when ``run_async`` returns, the workflow is durable and owned by the cluster; the handle
   is the ObjectRef of ``wait``, a second call that returns the output (or raises its error).

Ray is imported lazily here: :mod:`durableflow.executors.ray` is where it is imported.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import importlib.metadata
import logging
import threading
from concurrent.futures import Future
from typing import Any

import cloudpickle

from durableflow.client import Client
from durableflow.errors import WorkflowError
from durableflow.model.dag import as_node
from durableflow.model.ids import new_workflow_id, validate_workflow_id
from durableflow.model.status import WorkflowStatus
from durableflow.storage import layout
from durableflow.storage.layout import ROOT_BATCH

__all__ = [
    "NAME",
    "NAMESPACE",
    "Coordinator",
    "Settings",
    "coordinator",
    "get_output_async",
    "result",
    "resume_all",
    "resume_async",
    "run_async",
    "shutdown_coordinator",
    "uses_ray",
]

log = logging.getLogger("durableflow")

NAME = "durableflow_coordinator"
NAMESPACE = "durableflow"
_KEEP_FINISHED = 256  # finished runs whose outcome (with its cause) a late ``wait`` still gets


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the coordinator needs to open a Client like the driver's."""

    storage_url: str
    signing_key: bytes | None
    max_running_workflows: int | None
    max_pending_workflows: int | None
    lease_ttl: float
    cancel_poll: float
    env_policy: str

    @classmethod
    def of(cls, client: Client) -> Settings:
        """The settings of the driver's Client.

        Raises:
            ValueError: its storage is ``memory://``, which other processes cannot open.
        """
        url = client.storage.url
        if url.startswith("memory:"):
            raise ValueError(
                "memory:// storage cannot be used on Ray: workflows run in the cluster and "
                "reopen the storage from its URL; use a directory (shared by every node) or s3://"
            )
        return cls(
            url,
            client.signing_key,
            client.max_running_workflows,
            client.max_pending_workflows,
            client.leases.ttl,
            client.cancel_poll,
            client.env_policy,
        )

    @property
    def key(self) -> tuple[str, bytes | None]:
        """Which of the coordinator's Clients serves these settings."""
        return self.storage_url, self.signing_key


def _portable(err: BaseException) -> BaseException:
    """``err`` made to keep its cause through pickling (Ray sends it to the caller)."""
    cause = err.__cause__
    if isinstance(err, WorkflowError) and cause is not None:
        try:
            cloudpickle.dumps(cause)
        except Exception:
            cause = WorkflowError(f"{type(cause).__name__}: {cause}")
        err.__dict__["_cause"] = cause
    return err


class Coordinator:
    """The coordinator actor's body: runs workflows with one Client per storage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, bytes | None], Client] = {}
        self._runs: dict[tuple[str, bytes | None, str], Future[Any]] = {}
        self._finished: collections.deque[tuple[str, bytes | None, str]] = collections.deque()

    def version(self) -> str:
        """The durableflow version the coordinator runs."""
        return _version()

    def _client(self, settings: Settings) -> Client:
        from durableflow.executors.ray import RayExecutor

        with self._lock:
            client = self._clients.get(settings.key)
            if client is None:
                client = Client(
                    settings.storage_url,
                    executor=RayExecutor(),
                    signing_key=settings.signing_key,
                    max_running_workflows=settings.max_running_workflows,
                    max_pending_workflows=settings.max_pending_workflows,
                    lease_ttl=settings.lease_ttl,
                    cancel_poll=settings.cancel_poll,
                    env_policy=settings.env_policy,
                )
                self._clients[settings.key] = client
            return client

    def _track(self, settings: Settings, workflow_id: str, future: Future[Any]) -> None:
        key = (*settings.key, workflow_id)
        with self._lock:
            self._runs[key] = future

        def finished(_: Future[Any]) -> None:
            with self._lock:
                self._finished.append(key)
                while len(self._finished) > _KEEP_FINISHED:
                    run = self._runs.get(old := self._finished.popleft())
                    if run is not None and run.done():
                        del self._runs[old]

        future.add_done_callback(finished)

    def start(
        self,
        settings: Settings,
        dag: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        workflow_id: str,
        metadata: dict[str, Any] | None,
    ) -> None:
        """Store and claim a new workflow (or resume a stored one) and start running it."""
        try:
            future = self._client(settings).run_async(
                dag, *args, workflow_id=workflow_id, metadata=metadata, **kwargs
            )
        except BaseException as err:
            raise _portable(err) from err.__cause__
        self._track(settings, workflow_id, future)

    def resume(self, settings: Settings, workflow_id: str) -> None:
        """Claim a stopped workflow and start running it from its checkpoints."""
        try:
            future = self._client(settings).resume_async(workflow_id)
        except BaseException as err:
            raise _portable(err) from err.__cause__
        self._track(settings, workflow_id, future)

    def wait(self, settings: Settings, workflow_id: str) -> Any:
        """The output of a workflow this coordinator started, once it is there."""
        with self._lock:
            future = self._runs.get((*settings.key, workflow_id))
        try:
            if future is not None:
                return future.result()
            return self._client(settings).get_output(workflow_id)
        except BaseException as err:
            raise _portable(err) from err.__cause__

    def output(self, settings: Settings, workflow_id: str, task_id: str | None) -> Any:
        """The output of a workflow or one of its tasks, waiting while it runs."""
        if task_id is None:
            return self.wait(settings, workflow_id)
        return self._client(settings).get_output(workflow_id, task_id=task_id)


# --- the driver's side ----------------------------------------------------------------------
_handle: tuple[Any, Any] | None = None  # (Ray job id, actor handle)
_handle_lock = threading.Lock()


def coordinator() -> Any:
    """The cluster's coordinator actor, created on first use.

    Raises:
        ImportError: Ray is not installed (with the install hint).
    """
    global _handle
    importlib.import_module("durableflow.executors.ray")  # the install hint if Ray is missing
    import ray

    if not ray.is_initialized():
        ray.init()
    job = ray.get_runtime_context().get_job_id()
    with _handle_lock:
        if _handle is not None and _handle[0] == job:
            return _handle[1]
        options: dict[str, Any] = {
            "name": NAME,
            "namespace": NAMESPACE,
            "lifetime": "detached",
            "get_if_exists": True,
            "num_cpus": 0,
            "max_concurrency": 1000,
            "max_restarts": -1,
        }
        if "node:__internal_head__" in ray.cluster_resources():  # type: ignore[no-untyped-call]
            options["resources"] = {"node:__internal_head__": 0.001}
        actor = ray.remote(Coordinator).options(**options).remote()
        _check_version(actor)
        _handle = (job, actor)
        return actor


def _version() -> str:
    try:
        return importlib.metadata.version("durableflow")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _check_version(actor: Any) -> None:
    import ray

    theirs, ours = ray.get(actor.version.remote()), _version()
    if theirs != ours:
        log.warning(
            "the cluster's durableflow coordinator runs version %s, this driver %s; "
            "durableflow.ray_coordinator.shutdown_coordinator() replaces it (its running "
            "workflows become RESUMABLE)",
            theirs,
            ours,
        )


def shutdown_coordinator() -> None:
    """Kill the cluster's coordinator; workflows it runs stop and read RESUMABLE."""
    global _handle
    import ray

    try:
        actor = ray.get_actor(NAME, namespace=NAMESPACE)
    except ValueError:
        return
    ray.kill(actor)
    with _handle_lock:
        _handle = None


def uses_ray(
    client: Client,
    *,
    executor_chosen: bool,
    dag: Any = None,
    workflow_id: str | None = None,
) -> bool:
    """Whether a facade call goes to the coordinator.

    Yes when the Client's executor is Ray. Else, when no executor was chosen (by ``init`` or
    ``$DURABLEFLOW_EXECUTOR``) and Ray is initialized in this process: for a Ray DAG, and for a
    stored workflow made of Ray functions.
    """
    if client.executor.name == "ray":
        return True
    if executor_chosen or not _ray_initialized():
        return False
    from durableflow.executors.ray_dag import is_ray_dag

    if dag is not None:
        return is_ray_dag(dag)
    return workflow_id is not None and is_ray_workflow(client, workflow_id)


def _ray_initialized() -> bool:
    import sys

    return "ray" in sys.modules and bool(sys.modules["ray"].is_initialized())


def is_ray_workflow(client: Client, workflow_id: str) -> bool:
    """Whether a stored workflow's DAG was a Ray DAG (False if there is no such workflow)."""
    from durableflow.executors.ray_dag import RayFunction

    try:
        raw = client.storage.get(layout.spec_key(validate_workflow_id(workflow_id), ROOT_BATCH))
        flat = client.store.serializer.loads(raw) if raw is not None else None
    except WorkflowError:
        return False
    return flat is not None and any(isinstance(spec.func, RayFunction) for spec in flat.specs)


def result(ref: Any) -> Any:
    """``ray.get(ref)``, raising the coordinator's errors as themselves, causes attached."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if not isinstance(cause, BaseException):
            raise
        inner = cause.__dict__.pop("_cause", None)
        raise cause from inner


def run_async(
    client: Client,
    dag: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    workflow_id: str | None,
    metadata: dict[str, Any] | None,
) -> Any:
    """Start a workflow on the cluster; returns the ObjectRef of its output."""
    settings = Settings.of(client)
    workflow_id = new_workflow_id() if workflow_id is None else validate_workflow_id(workflow_id)
    from durableflow.executors.ray_dag import portable

    actor = coordinator()
    node = as_node(dag) or dag  # converted here, so the cluster needs no converter
    args = tuple(portable(a, argument=True) for a in args)  # ObjectRefs stored by value
    kwargs = {k: portable(v, argument=True) for k, v in kwargs.items()}
    result(actor.start.remote(settings, node, args, kwargs, workflow_id, metadata))
    return actor.wait.remote(settings, workflow_id)


def resume_async(client: Client, workflow_id: str) -> Any:
    """Resume a workflow on the cluster; returns the ObjectRef of its output."""
    settings = Settings.of(client)
    actor = coordinator()
    result(actor.resume.remote(settings, workflow_id))
    return actor.wait.remote(settings, workflow_id)


def resume_all(
    client: Client, include_failed: bool, *, only_ray: bool = False
) -> list[tuple[str, Any]]:
    """Resume every RESUMABLE (and FAILED if asked) workflow on the cluster.

    One that cannot be resumed does not stop the others: ``ray.get`` of its handle raises.
    With ``only_ray``, workflows not made of Ray functions resume in this process instead
    (their handles are futures).
    """
    settings = Settings.of(client)
    actor = coordinator()
    wanted = {WorkflowStatus.RESUMABLE} | ({WorkflowStatus.FAILED} if include_failed else set())
    handles: list[tuple[str, Any]] = []
    for workflow_id, _ in client.list_all(wanted):
        if only_ray and not is_ray_workflow(client, workflow_id):
            handles.extend(_resume_here(client, workflow_id))
            continue
        started = actor.resume.remote(settings, workflow_id)
        try:
            result(started)
        except WorkflowError as err:
            log.warning("resume_all: %s cannot be resumed: %s", workflow_id, err)
            handles.append((workflow_id, started))
            continue
        handles.append((workflow_id, actor.wait.remote(settings, workflow_id)))
    return handles


def _resume_here(client: Client, workflow_id: str) -> list[tuple[str, Any]]:
    try:
        return [(workflow_id, client.resume_async(workflow_id))]
    except WorkflowError as err:
        log.warning("resume_all: %s cannot be resumed: %s", workflow_id, err)
        failed: Future[Any] = Future()
        failed.set_exception(err)
        return [(workflow_id, failed)]


def can_auto_route(client: Client, *, executor_chosen: bool) -> bool:
    """Whether calls without a DAG may go to Ray: the executor is Ray, or may be chosen so."""
    return client.executor.name == "ray" or (not executor_chosen and _ray_initialized())


def get_output_async(client: Client, workflow_id: str, task_id: str | None) -> Any:
    """The ObjectRef of a workflow's (or a task's) output.

    Raises:
        WorkflowNotFoundError: unknown workflow.
    """
    client.get_status(workflow_id)
    return coordinator().output.remote(Settings.of(client), workflow_id, task_id)
