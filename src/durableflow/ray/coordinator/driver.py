"""The driver's side: reach the cluster's coordinator, wait for its answers, tell its DAGs.

The calls themselves are made by :class:`~durableflow.ray.runner.RayRunner`, the runner a
Client on Ray uses.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from typing import Any

from durableflow.model.dag import TaskNode, map_values
from durableflow.ray.coordinator.actor import NAME, NAMESPACE, Coordinator, version

__all__ = ["coordinator", "is_event_dag", "is_event_function", "result", "shutdown_coordinator"]

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


def is_event_function(func: Any) -> bool:
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
        if not is_event_function(node.func):
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
