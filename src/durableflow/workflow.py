"""The ``ray.workflow``-shaped facade: module functions over a default Client.

``from durableflow import workflow`` replaces ``from ray import workflow``. Every call below
creates the default Client on first use (storage from ``init``, else the environment, else the
default storage); ``shutdown()`` closes it so ``init`` may choose again.

Like ``ray.workflow``, the module also carries the errors (``workflow.WorkflowError``,
``WorkflowExecutionError``, ``WorkflowCancellationError``, ...), ``WorkflowStatus`` and every
status (``workflow.SUCCESSFUL``, ...), ``WorkflowRef``, and the submodules ``exceptions`` and
``common``.

This module is the public face: the running calls are here, with Ray's names; the default
Client (``init``, ``client``, ``shutdown``) is :mod:`durableflow.facade.default` and the calls on
stored workflows (status, listing, cancel, delete, restart, fork, bulk, retention) are
:mod:`durableflow.facade.managing`, both re-exported. Where a workflow runs (here, or on the Ray
cluster's coordinator) is the default Client's runner's choice (:mod:`durableflow.client.runners`).
"""

from __future__ import annotations

import sys
from typing import Any

from durableflow import common
from durableflow import errors as exceptions
from durableflow.actors import delete_actor, get_actor, list_actors, upgrade_actor, virtual_actor
from durableflow.client import Client
from durableflow.client.routing import load_dag_plugins
from durableflow.compat import WorkflowOptions, resume_not_found_as_not_resumable
from durableflow.errors import (
    RuntimeEnvError,
    WorkflowCancellationError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowStillActiveError,
    WorkflowTimeoutError,
)
from durableflow.facade.default import client, init, is_initialized, shutdown
from durableflow.facade.managing import (
    cancel,
    cancel_all,
    delete,
    delete_all,
    fork,
    get_logs,
    get_metadata,
    get_retention,
    get_status,
    list_all,
    restart,
    set_retention,
)
from durableflow.model import events
from durableflow.model.dag import (
    Continuation,
    InputNode,
    TaskNode,
    WorkflowRef,
    as_node,
    execute,
    register_hook,
)
from durableflow.model.events import EventListener
from durableflow.model.status import WorkflowStatus
from durableflow.model.task import TaskFunction, task  # noqa: F401
from durableflow.runtime.context import current_task_id, current_workflow_id, in_task
from durableflow.runtime.gates import cancelled, check_cancelled

__all__ = [
    "CANCELED",
    "FAILED",
    "PENDING",
    "RESUMABLE",
    "RUNNING",
    "SUCCESSFUL",
    "Client",
    "EventListener",
    "InputNode",
    "RuntimeEnvError",
    "WorkflowCancellationError",
    "WorkflowError",
    "WorkflowExecutionError",
    "WorkflowNotFoundError",
    "WorkflowNotResumableError",
    "WorkflowRef",
    "WorkflowStatus",
    "WorkflowStillActiveError",
    "WorkflowTimeoutError",
    "cancel",
    "cancel_all",
    "cancelled",
    "check_cancelled",
    "client",
    "common",
    "continuation",
    "delete",
    "delete_actor",
    "delete_all",
    "exceptions",
    "fork",
    "get_actor",
    "get_current_task_id",
    "get_current_workflow_id",
    "get_logs",
    "get_metadata",
    "get_output",
    "get_output_async",
    "get_retention",
    "get_status",
    "init",
    "is_initialized",
    "list_actors",
    "list_all",
    "options",
    "restart",
    "resume",
    "resume_all",
    "resume_async",
    "run",
    "run_async",
    "schedule",
    "set_retention",
    "shutdown",
    "sleep",
    "step",
    "submit",
    "task",
    "upgrade_actor",
    "virtual_actor",
    "wait_for_event",
]

# Every status as a module attribute, as Ray's ``globals().update(WorkflowStatus.__members__)``.
RUNNING = WorkflowStatus.RUNNING
PENDING = WorkflowStatus.PENDING
SUCCESSFUL = WorkflowStatus.SUCCESSFUL
FAILED = WorkflowStatus.FAILED
RESUMABLE = WorkflowStatus.RESUMABLE
CANCELED = WorkflowStatus.CANCELED


def options(**workflow_opts: Any) -> WorkflowOptions:
    """Ray's ``workflow.options``: ``f.options(**workflow.options(...))`` or a decorator.

    Options: ``task_id``, ``metadata``, ``catch_exceptions``, ``checkpoint``, ``max_retries``,
    ``retry_exceptions``. ``@workflow.options(...)`` goes over ``@ray.remote`` or
    ``@workflow.task``. With Ray imported, Ray's ``.options()`` is taught to accept them.

    Raises:
        ValueError: an unknown option, or metadata that is not a JSON-serializable dict.
    """
    load_dag_plugins(None)
    return WorkflowOptions(**workflow_opts)


step = task  # Ray 1.x: @workflow.step, then f.step(...).run(workflow_id=...)
get_current_workflow_id = current_workflow_id
get_current_task_id = current_task_id


def run(
    dag: Any,
    *args: Any,
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    timeout_s: float | None = None,
    **kwargs: Any,
) -> Any:
    """Run a DAG durably and return its output; a stored ``workflow_id`` is resumed instead.

    ``timeout_s``: the workflow's time limit; each run (a resume too) gets it afresh. Past it
    the workflow is FAILED with ``WorkflowTimeoutError`` (the cause of the error raised here).
    """
    return client().run(
        dag, *args, workflow_id=workflow_id, metadata=metadata, timeout_s=timeout_s, **kwargs
    )


def run_async(
    dag: Any,
    *args: Any,
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    detached: bool = False,
    timeout_s: float | None = None,
    **kwargs: Any,
) -> Any:
    """Start a DAG durably; returns a future of its output (a ``ray.ObjectRef`` on Ray).

    ``detached=True``: store it PENDING for a ``durableflow worker`` and return a future already
    resolved to the workflow id (see :func:`submit`). ``timeout_s``: as in :func:`run`.
    """
    return client().run_async(
        dag,
        *args,
        workflow_id=workflow_id,
        metadata=metadata,
        detached=detached,
        timeout_s=timeout_s,
        **kwargs,
    )


def submit(
    dag: Any,
    *args: Any,
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    timeout_s: float | None = None,
    **kwargs: Any,
) -> str:
    """Store a DAG as a PENDING workflow for a ``durableflow worker``; return its id at once.

    ``timeout_s``: as in :func:`run`, counted from the start of each run on a worker.
    """
    return client().submit(
        dag, *args, workflow_id=workflow_id, metadata=metadata, timeout_s=timeout_s, **kwargs
    )


def schedule(
    name: str,
    dag_factory_or_dag: Any,
    *,
    cron: str | None = None,
    every: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Run a workflow on a schedule (``cron="*/5 * * * *"`` or ``every=timedelta(...)``).

    Workers fire it; each tick runs the workflow ``<name>@<tick in UTC>`` at most once. Options:
    ``timezone``, ``catchup`` (skip, latest, all), ``overlap`` (skip, allow), ``grace``,
    ``max_catchup``, ``metadata``, ``replace`` — see :meth:`Client.schedule`.
    """
    return client().schedule(name, dag_factory_or_dag, cron=cron, every=every, **options)


def resume(workflow_id: str, *, from_task: str | list[str] | None = None, **kw: Any) -> Any:
    """Continue a FAILED or RESUMABLE workflow from its checkpoints; return its output.

    ``from_task``: restart it in place from those tasks first (``Client.restart``).
    """
    if from_task is not None:
        client().restart(workflow_id, from_task, **kw)
    with resume_not_found_as_not_resumable(workflow_id):
        return client().resume(workflow_id)


def resume_async(workflow_id: str) -> Any:
    """Like ``resume``, returning a future (a ``ray.ObjectRef`` on Ray)."""
    with resume_not_found_as_not_resumable(workflow_id):
        return client().resume_async(workflow_id)


def resume_all(include_failed: bool = False, **filters: Any) -> list[tuple[str, Any]]:
    """Resume every RESUMABLE (and FAILED if asked) workflow: ``[(workflow_id, future)]``.

    ``filters``: ``status``, ``prefix``, ``name``, ``older_than``. On Ray the handles are
    ``ray.ObjectRef`` s.
    """
    return client().resume_all(include_failed, **filters)


def get_output(
    workflow_id: str, *, task_id: str | None = None, timeout: float | None = None
) -> Any:
    """The output of a workflow or of one of its tasks, waiting while it runs."""
    return client().get_output(workflow_id, task_id=task_id, timeout=timeout)


def get_output_async(workflow_id: str, *, task_id: str | None = None) -> Any:
    """Like ``get_output``, returning a future (a ``ray.ObjectRef`` on Ray)."""
    return client().get_output_async(workflow_id, task_id=task_id)


def sleep(seconds: float) -> TaskNode:
    """A node that finishes ``seconds`` after it first starts, durably (output None).

    Inside a task of a canceled workflow it raises ``WorkflowCancellationError`` instead.
    """
    check_cancelled()
    return events.sleep(seconds)


def wait_for_event(listener_type: type[EventListener], *args: Any, **kwargs: Any) -> TaskNode:
    """A node whose output is the next event of ``listener_type`` (polled with ``args``).

    Inside a task of a canceled workflow it raises ``WorkflowCancellationError`` instead.
    """
    check_cancelled()
    return events.wait_for_event(listener_type, *args, **kwargs)


def continuation(dag: Any) -> Any:
    """Inside a task: continue the workflow with ``dag``. Outside: run ``dag`` now."""
    node = as_node(load_dag_plugins(dag))
    if not isinstance(node, TaskNode):
        raise TypeError(f"continuation() takes a DAG node (from .bind()), got {dag!r}")
    if in_task():
        check_cancelled()
        return Continuation(node)
    if node is not dag and "ray" in sys.modules:  # a Ray DAG: run it on Ray, like Ray did
        from durableflow.ray.dag import execute_ray_dag, is_ray_dag

        if is_ray_dag(dag):
            return execute_ray_dag(dag)
    return execute(node)


register_hook("run", run)
register_hook("run_async", run_async)
