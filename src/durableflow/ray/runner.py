"""The Ray runner: a Client's workflows run by the cluster's coordinator, outliving the driver.

``Client(runner="ray")`` (and the facade on the Ray executor) starts and resumes workflows on
the coordinator actor (:mod:`durableflow.ray.coordinator`), sending it the Client's
:class:`~durableflow.config.ClientSettings` so that it opens a Client like the driver's; the
handles are ``ray.ObjectRef`` s. Under the auto runner (the facade with no executor chosen) it
claims, while Ray is initialized, Ray DAGs, DAGs made only of ``workflow.sleep`` /
``wait_for_event`` nodes (no task of their own says where they belong, and Ray users wrote them
for Ray), and stored workflows of either kind.

Registered by name in :data:`durableflow.client.runners.RUNNERS`, imported when first used.
Ray itself is imported lazily, so importing this module needs no Ray.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from durableflow.client import Client
from durableflow.client.runners import Runner
from durableflow.config import ClientSettings
from durableflow.errors import WorkflowError
from durableflow.model.dag import TaskNode, as_node
from durableflow.ray.coordinator.driver import (
    coordinator,
    is_event_dag,
    is_event_function,
    result,
)
from durableflow.ray.packing import pack

__all__ = ["RayRunner"]

log = logging.getLogger("durableflow")


class RayRunner(Runner):
    """Workflows run by the cluster's coordinator actor; handles are ``ray.ObjectRef`` s.

    Args:
        client: the driver's Client: its settings go to the coordinator, its storage answers
            what the driver reads (status, the stored DAG's kind).
    """

    name = "ray"

    def __init__(self, client: Client) -> None:
        self._client = client

    def _settings(self) -> ClientSettings:
        """The Client's settings, for the coordinator.

        Raises:
            ValueError: the storage is ``memory://``, which other processes cannot open.
        """
        settings = self._client.settings
        if settings.storage_url.startswith("memory:"):
            raise ValueError(
                "memory:// storage cannot be used on Ray: workflows run in the cluster and "
                "reopen the storage from its URL; use a directory (shared by every node) or s3://"
            )
        return settings

    def start(
        self,
        workflow_id: str,
        dag: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        metadata: dict[str, Any] | None,
        timeout_s: float | None = None,
    ) -> Any:
        """Start a workflow on the cluster once it is stored; the ObjectRef of its output."""
        from durableflow.ray.dag import portable

        settings = self._settings()
        actor = coordinator()
        node = as_node(dag) or dag  # converted here, so the cluster needs no converter
        shipped = pack(node) if isinstance(node, TaskNode) else node  # deep DAGs pickle packed
        args = tuple(portable(a, argument=True) for a in args)  # ObjectRefs stored by value
        kwargs = {k: portable(v, argument=True) for k, v in kwargs.items()}
        result(
            actor.start.remote(settings, shipped, args, kwargs, workflow_id, metadata, timeout_s)
        )
        return actor.wait.remote(settings, workflow_id)

    def resume_async(self, workflow_id: str, *, wait: bool = True) -> Any:
        """Resume a workflow on the cluster; the ObjectRef of its output."""
        settings = self._settings()
        actor = coordinator()
        result(actor.resume.remote(settings, workflow_id))
        return actor.wait.remote(settings, workflow_id)

    def resume_many(self, workflow_ids: list[str]) -> list[tuple[str, Any]]:
        """Resume each workflow on the cluster.

        One that cannot be resumed does not stop the others: ``ray.get`` of its handle raises.
        """
        settings = self._settings()
        actor = coordinator()
        handles: list[tuple[str, Any]] = []
        for workflow_id in workflow_ids:
            started = actor.resume.remote(settings, workflow_id)
            try:
                result(started)
            except WorkflowError as err:
                log.warning("resume_all: %s cannot be resumed: %s", workflow_id, err)
                handles.append((workflow_id, started))
                continue
            handles.append((workflow_id, actor.wait.remote(settings, workflow_id)))
        return handles

    def output(self, workflow_id: str, task_id: str | None) -> Any:
        """The ObjectRef of a workflow's (or a task's) output.

        Raises:
            WorkflowNotFoundError: unknown workflow.
        """
        self._client.get_status(workflow_id)
        return coordinator().output.remote(self._settings(), workflow_id, task_id)

    def result(self, handle: Any) -> Any:
        """``ray.get(handle)``, raising the coordinator's errors as themselves."""
        return result(handle)

    def claims(self, *, dag: Any = None, workflow_id: str | None = None) -> bool:
        """While Ray is initialized: a Ray DAG or an event-only DAG, or a stored one of either."""
        ray = sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            return False
        from durableflow.ray.dag import RayFunction, is_ray_dag

        if dag is not None:
            return is_ray_dag(dag) or is_event_dag(dag)
        if workflow_id is None:
            return False
        functions = self._client.root_functions(workflow_id)
        if any(isinstance(func, RayFunction) for func in functions):
            return True
        return bool(functions) and all(is_event_function(func) for func in functions)
