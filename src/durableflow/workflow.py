"""The ``ray.workflow``-shaped facade: module functions over a default Client.

``from durableflow import workflow`` replaces ``from ray import workflow``. Every call below
creates the default Client on first use (storage from ``init``, else the environment, else the
default directory); ``shutdown()`` closes it so ``init`` may choose again.

Like ``ray.workflow``, the module also carries the errors (``workflow.WorkflowError``,
``WorkflowExecutionError``, ``WorkflowCancellationError``, ...), ``WorkflowStatus`` and every
status (``workflow.SUCCESSFUL``, ...), ``WorkflowRef``, and the submodules ``exceptions`` and
``common``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

from durableflow import common, config
from durableflow import errors as exceptions
from durableflow.client import Client
from durableflow.compat import WorkflowOptions, check_limit, resume_not_found_as_not_resumable
from durableflow.errors import (
    WorkflowCancellationError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowStillActiveError,
)
from durableflow.executors.base import Executor
from durableflow.model.dag import (
    Continuation,
    DAGNode,
    InputNode,
    TaskNode,
    WorkflowRef,
    as_node,
    execute,
    register_hook,
)
from durableflow.model.events import EventListener, sleep, wait_for_event
from durableflow.model.status import WorkflowStatus
from durableflow.model.task import TaskFunction, task  # noqa: F401
from durableflow.runtime.context import current_task_id, current_workflow_id, in_task
from durableflow.storage.base import Storage

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
    "WorkflowCancellationError",
    "WorkflowError",
    "WorkflowExecutionError",
    "WorkflowNotFoundError",
    "WorkflowNotResumableError",
    "WorkflowRef",
    "WorkflowStatus",
    "WorkflowStillActiveError",
    "cancel",
    "cancel_all",
    "client",
    "common",
    "continuation",
    "delete",
    "delete_all",
    "exceptions",
    "fork",
    "get_current_task_id",
    "get_current_workflow_id",
    "get_metadata",
    "get_output",
    "get_output_async",
    "get_retention",
    "get_status",
    "init",
    "is_initialized",
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
    "wait_for_event",
]

# Every status as a module attribute, as Ray's ``globals().update(WorkflowStatus.__members__)``.
RUNNING = WorkflowStatus.RUNNING
PENDING = WorkflowStatus.PENDING
SUCCESSFUL = WorkflowStatus.SUCCESSFUL
FAILED = WorkflowStatus.FAILED
RESUMABLE = WorkflowStatus.RESUMABLE
CANCELED = WorkflowStatus.CANCELED

_client: Client | None = None
_lock = threading.Lock()
_executor_chosen = False  # init(executor=...) or $DURABLEFLOW_EXECUTOR: no automatic Ray


def options(**workflow_opts: Any) -> WorkflowOptions:
    """Ray's ``workflow.options``: ``f.options(**workflow.options(...))`` or a decorator.

    Options: ``task_id``, ``metadata``, ``catch_exceptions``, ``checkpoint``, ``max_retries``,
    ``retry_exceptions``. ``@workflow.options(...)`` goes over ``@ray.remote`` or
    ``@workflow.task``. With Ray imported, Ray's ``.options()`` is taught to accept them.

    Raises:
        ValueError: an unknown option, or metadata that is not a JSON-serializable dict.
    """
    if "ray" in sys.modules:
        import importlib

        importlib.import_module("durableflow.ray.dag")
    return WorkflowOptions(**workflow_opts)


step = task  # Ray 1.x: @workflow.step, then f.step(...).run(workflow_id=...)
get_current_workflow_id = current_workflow_id
get_current_task_id = current_task_id


def init(
    storage: str | os.PathLike[str] | Storage | None = None,
    *,
    max_running_workflows: int | None = None,
    max_pending_workflows: int | None = None,
    executor: str | Executor | None = None,
    signing_key: bytes | str | None = None,
    **client_options: Any,
) -> Client:
    """Create the default Client (optional: every call below does it on first use).

    Calling it again with the same (or no) settings returns the same Client.

    Raises:
        TypeError: a limit that is not an int.
        ValueError: a limit out of range (``max_running_workflows`` < 1,
            ``max_pending_workflows`` < 0), or already initialized with a different storage or
            different limits (``workflow.shutdown()`` first).
    """
    global _client, _executor_chosen
    check_limit("max_running_workflows", max_running_workflows, 1)
    check_limit("max_pending_workflows", max_pending_workflows, 0)
    with _lock:
        if _client is not None:
            if storage is not None and not _same_storage(_client, storage):
                raise ValueError(
                    f"durableflow is already initialized with storage {_client.storage.url}; "
                    "call workflow.shutdown() first to use another"
                )
            for name, wanted in (
                ("max_running_workflows", max_running_workflows),
                ("max_pending_workflows", max_pending_workflows),
            ):
                current = getattr(_client, name)
                if wanted is not None and wanted != current:
                    raise ValueError(
                        f"durableflow is already initialized with {name}={current}; "
                        "call workflow.shutdown() first to change it"
                    )
            return _client
        _executor_chosen = executor is not None or bool(os.environ.get(config.ENV_EXECUTOR))
        _client = Client(
            storage,
            executor=executor,
            max_running_workflows=max_running_workflows,
            max_pending_workflows=max_pending_workflows,
            signing_key=signing_key,
            **client_options,
        )
        return _client


def _same_storage(current: Client, storage: str | os.PathLike[str] | Storage) -> bool:
    if isinstance(storage, Storage):
        return storage is current.storage
    text = os.fspath(storage)
    if "://" not in text:
        text = "file://" + os.path.abspath(os.path.expanduser(text))
    return text.rstrip("/") == current.storage.url.split("?")[0].rstrip("/")


def is_initialized() -> bool:
    """Whether the default Client exists."""
    return _client is not None


def client() -> Client:
    """The default Client, created on first use."""
    return _client or init()


def shutdown(wait: bool = True) -> None:
    """Close the default Client: ``wait`` for its workflows, or leave them RESUMABLE."""
    global _client
    with _lock:
        current, _client = _client, None
    if current is not None:
        current.close(wait=wait)


def _prepare(dag: Any) -> Any:
    if not isinstance(dag, DAGNode) and "ray" in sys.modules:
        import importlib

        importlib.import_module("durableflow.ray.dag")
    return dag


def _on_ray(dag: Any = None, *, workflow_id: str | None = None) -> bool:
    """Whether the call goes to the Ray cluster's coordinator (see ``ray_coordinator``)."""
    current = client()
    if current.executor.name != "ray" and ("ray" not in sys.modules or _executor_chosen):
        return False
    from durableflow.ray import coordinator as ray_coordinator

    return ray_coordinator.uses_ray(
        current, executor_chosen=_executor_chosen, dag=dag, workflow_id=workflow_id
    )


def run(
    dag: Any,
    *args: Any,
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Run a DAG durably and return its output; a stored ``workflow_id`` is resumed instead."""
    dag = _prepare(dag)
    if _on_ray(dag):
        from durableflow.ray import coordinator as ray_coordinator

        ref = ray_coordinator.run_async(client(), dag, args, kwargs, workflow_id, metadata)
        return ray_coordinator.result(ref)
    return client().run(dag, *args, workflow_id=workflow_id, metadata=metadata, **kwargs)


def run_async(
    dag: Any,
    *args: Any,
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    detached: bool = False,
    **kwargs: Any,
) -> Any:
    """Start a DAG durably; returns a future of its output (a ``ray.ObjectRef`` on Ray).

    ``detached=True``: store it PENDING for a ``durableflow worker`` and return a future already
    resolved to the workflow id (see :func:`submit`).
    """
    dag = _prepare(dag)
    if not detached and _on_ray(dag):
        from durableflow.ray import coordinator as ray_coordinator

        return ray_coordinator.run_async(client(), dag, args, kwargs, workflow_id, metadata)
    return client().run_async(
        dag, *args, workflow_id=workflow_id, metadata=metadata, detached=detached, **kwargs
    )


def submit(
    dag: Any,
    *args: Any,
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    **kwargs: Any,
) -> str:
    """Store a DAG as a PENDING workflow for a ``durableflow worker``; return its id at once."""
    return client().submit(
        _prepare(dag), *args, workflow_id=workflow_id, metadata=metadata, **kwargs
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
        if _on_ray(workflow_id=workflow_id):
            from durableflow.ray import coordinator as ray_coordinator

            return ray_coordinator.result(ray_coordinator.resume_async(client(), workflow_id))
        return client().resume(workflow_id)


def resume_async(workflow_id: str) -> Any:
    """Like ``resume``, returning a future (a ``ray.ObjectRef`` on Ray)."""
    with resume_not_found_as_not_resumable(workflow_id):
        if _on_ray(workflow_id=workflow_id):
            from durableflow.ray import coordinator as ray_coordinator

            return ray_coordinator.resume_async(client(), workflow_id)
        return client().resume_async(workflow_id)


def resume_all(include_failed: bool = False, **filters: Any) -> list[tuple[str, Any]]:
    """Resume every RESUMABLE (and FAILED if asked) workflow: ``[(workflow_id, future)]``.

    ``filters``: ``status``, ``prefix``, ``name``, ``older_than``. On Ray the handles are
    ``ray.ObjectRef`` s.
    """
    current = client()
    if filters:
        return current.resume_all(include_failed, **filters)
    if current.executor.name == "ray" or ("ray" in sys.modules and not _executor_chosen):
        from durableflow.ray import coordinator as ray_coordinator

        if ray_coordinator.can_auto_route(current, executor_chosen=_executor_chosen):
            only_ray = current.executor.name != "ray"
            return ray_coordinator.resume_all(current, include_failed, only_ray=only_ray)
    return current.resume_all(include_failed)


def restart(workflow_id: str, from_tasks: str | list[str], **kw: Any) -> Any:
    """Set aside tasks' checkpoints and everything downstream (``Client.restart``)."""
    return client().restart(workflow_id, from_tasks, **kw)


def fork(workflow_id: str, new_workflow_id: str, **kw: Any) -> str:
    """A new RESUMABLE workflow from another's checkpoints (``Client.fork``)."""
    return client().fork(workflow_id, new_workflow_id, **kw)


def cancel_all(**filters: Any) -> list[str]:
    """Cancel every workflow the filter matches; the ids acted on (``Client.cancel_all``)."""
    return client().cancel_all(**filters).acted


def delete_all(**filters: Any) -> list[str]:
    """Delete every workflow the filter matches; the ids acted on (``Client.delete_all``)."""
    return client().delete_all(**filters).acted


def set_retention(ages: dict[str, Any] | None = None, keep_last: Any = None) -> Any:
    """Store the retention policy (``Client.set_retention``)."""
    return client().set_retention(ages, keep_last)


def get_retention() -> Any:
    """The stored retention policy."""
    return client().get_retention()


def get_output(
    workflow_id: str, *, task_id: str | None = None, timeout: float | None = None
) -> Any:
    """The output of a workflow or of one of its tasks, waiting while it runs."""
    return client().get_output(workflow_id, task_id=task_id, timeout=timeout)


def get_output_async(workflow_id: str, *, task_id: str | None = None) -> Any:
    """Like ``get_output``, returning a future (a ``ray.ObjectRef`` on Ray)."""
    if _on_ray(workflow_id=workflow_id):
        from durableflow.ray import coordinator as ray_coordinator

        return ray_coordinator.get_output_async(client(), workflow_id, task_id)
    return client().get_output_async(workflow_id, task_id=task_id)


def get_status(workflow_id: str) -> WorkflowStatus:
    """The status of a workflow."""
    return client().get_status(workflow_id)


def get_metadata(workflow_id: str, task_id: str | None = None) -> dict[str, Any]:
    """Metadata of a workflow, or of one of its tasks."""
    return client().get_metadata(workflow_id, task_id)


def list_all(
    status_filter: str | WorkflowStatus | Iterable[str | WorkflowStatus] | None = None,
    **filters: Any,
) -> list[tuple[str, WorkflowStatus]]:
    """``[(workflow_id, status)]`` of the stored workflows, optionally filtered.

    ``filters``: ``prefix``, ``name``, ``older_than``, as the bulk calls take them.
    """
    return client().list_all(status_filter, **filters)


def cancel(workflow_id: str) -> None:
    """Cancel a workflow; its checkpoints are kept, and it cannot be resumed."""
    client().cancel(workflow_id)


def delete(workflow_id: str) -> None:
    """Remove everything stored for a workflow that is not running."""
    client().delete(workflow_id)


def continuation(dag: Any) -> Any:
    """Inside a task: continue the workflow with ``dag``. Outside: run ``dag`` now."""
    node = as_node(_prepare(dag))
    if not isinstance(node, TaskNode):
        raise TypeError(f"continuation() takes a DAG node (from .bind()), got {dag!r}")
    if in_task():
        return Continuation(node)
    if node is not dag and "ray" in sys.modules:  # a Ray DAG: run it on Ray, like Ray did
        from durableflow.ray.dag import execute_ray_dag, is_ray_dag

        if is_ray_dag(dag):
            return execute_ray_dag(dag)
    return execute(node)


register_hook("run", run)
register_hook("run_async", run_async)
