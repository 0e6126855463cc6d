"""The driver's side: reach the cluster's coordinator and route facade calls to it."""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from concurrent.futures import Future
from typing import Any

from durableflow.client import Client
from durableflow.errors import WorkflowError
from durableflow.model.dag import TaskNode, as_node, map_values
from durableflow.model.ids import new_workflow_id, validate_workflow_id
from durableflow.model.status import WorkflowStatus
from durableflow.ray.coordinator.actor import NAME, NAMESPACE, Coordinator, Settings, version
from durableflow.ray.packing import pack
from durableflow.storage import layout
from durableflow.storage.layout import ROOT_BATCH

__all__ = [
    "can_auto_route",
    "coordinator",
    "get_output_async",
    "is_event_dag",
    "is_ray_workflow",
    "result",
    "resume_all",
    "resume_async",
    "run_async",
    "shutdown_coordinator",
    "uses_ray",
]

log = logging.getLogger("durableflow")

_handle: tuple[Any, Any] | None = None  # (which cluster and job, actor handle)
_handle_lock = threading.Lock()


def _cluster_key() -> tuple[Any, ...]:
    """Which cluster (and job) this process is connected to now.

    The job id alone is not enough: after ``ray.shutdown(); ray.init()`` in one process the new
    cluster's first job has the same id as the old one's. The session name is unique per
    cluster start; the GCS address tells clusters apart on older Rays without it.
    """
    import ray

    context = ray.get_runtime_context()
    session = getattr(context, "get_session_name", None)
    return (
        session() if session is not None else None,
        getattr(context, "gcs_address", None),
        context.get_job_id(),
    )


def coordinator() -> Any:
    """The cluster's coordinator actor, created on first use.

    Raises:
        ImportError: Ray is not installed (with the install hint).
    """
    global _handle
    importlib.import_module("durableflow.ray.executor")  # the install hint if Ray is missing
    import ray

    if not ray.is_initialized():
        ray.init()
    cluster = _cluster_key()
    with _handle_lock:
        if _handle is not None and _handle[0] == cluster:
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
        _handle = (cluster, actor)
        return actor


def _check_version(actor: Any) -> None:
    import ray

    theirs, ours = ray.get(actor.version.remote()), version()
    if theirs != ours:
        log.warning(
            "the cluster's durableflow coordinator runs version %s, this driver %s; "
            "durableflow.ray.coordinator.shutdown_coordinator() replaces it (its running "
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
    ``$DURABLEFLOW_EXECUTOR``) and Ray is initialized in this process: for a Ray DAG, a DAG made
    only of ``workflow.sleep`` / ``wait_for_event`` nodes (it has no task of its own to say
    where it belongs, and Ray users wrote it for Ray), and for a stored workflow of either kind.
    """
    if client.executor.name == "ray":
        return True
    if executor_chosen or not _ray_initialized():
        return False
    from durableflow.ray.dag import is_ray_dag

    if dag is not None:
        return is_ray_dag(dag) or is_event_dag(dag)
    return workflow_id is not None and is_ray_workflow(client, workflow_id)


def _ray_initialized() -> bool:
    import sys

    return "ray" in sys.modules and bool(sys.modules["ray"].is_initialized())


def is_ray_workflow(client: Client, workflow_id: str) -> bool:
    """Whether a stored workflow's DAG was a Ray DAG or an event-only DAG (see :func:`uses_ray`).

    False if there is no such workflow.
    """
    from durableflow.ray.dag import RayFunction

    try:
        key = layout.spec_key(validate_workflow_id(workflow_id), ROOT_BATCH)
        raw = client.storage.get(key)
        flat = client.store.serializer.loads(raw, key=key) if raw is not None else None
    except WorkflowError:
        return False
    if flat is None:
        return False
    if any(isinstance(spec.func, RayFunction) for spec in flat.specs):
        return True
    return all(_is_event_function(spec.func) for spec in flat.specs)


def _is_event_function(func: Any) -> bool:
    """Whether ``func`` is a task of ``sleep`` / ``wait_for_event``.

    Compared by name: stored specs hold copies of the functions.
    """
    from durableflow.model import events

    name = (getattr(func, "__module__", None), getattr(func, "__qualname__", None))
    return name[0] == events.__name__ and name[1] in (
        events.poll_for_event.func.__qualname__,
        events.event_checkpointed.func.__qualname__,
        events.wake_time.func.__qualname__,
    )


def is_event_dag(dag: Any) -> bool:
    """Whether ``dag`` is one of our DAGs made only of ``sleep`` / ``wait_for_event`` nodes."""
    if not isinstance(dag, TaskNode):
        return False
    seen: set[int] = set()
    stack: list[TaskNode] = [dag]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if not _is_event_function(node.func):
            return False
        found: list[TaskNode] = []
        collect = functools.partial(_collect_nodes, found)
        map_values(node.args, collect)
        map_values(node.kwargs, collect)
        stack.extend(found)
    return True


def _collect_nodes(found: list[TaskNode], value: Any) -> Any:
    if isinstance(value, TaskNode):
        found.append(value)
    return value


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
    from durableflow.ray.dag import portable

    actor = coordinator()
    node = as_node(dag) or dag  # converted here, so the cluster needs no converter
    shipped = pack(node) if isinstance(node, TaskNode) else node  # deep DAGs pickle packed
    args = tuple(portable(a, argument=True) for a in args)  # ObjectRefs stored by value
    kwargs = {k: portable(v, argument=True) for k, v in kwargs.items()}
    result(actor.start.remote(settings, shipped, args, kwargs, workflow_id, metadata))
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
