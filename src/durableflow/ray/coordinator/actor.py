"""The coordinator actor: runs workflows inside the cluster, one Client per storage.

A start is two calls, so that ``run_async`` returns only once the workflow is durable:

1. :meth:`Coordinator.start`: the coordinator's Client validates the DAG, stores the specs and
   the run record and claims the lease, then returns. Errors (a bad input, an id running
   elsewhere) are raised to the caller here, as the embedded Client raises them.
2. :meth:`Coordinator.wait`: returns the output once it is there (or raises the run's error);
   its ObjectRef is the handle ``run_async`` gives back.

Errors cross Ray pickled; a WorkflowError keeps its cause (``_cause``) for the driver to restore.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.metadata
import threading
from concurrent.futures import Future
from typing import Any

import cloudpickle

from durableflow.client import Client
from durableflow.errors import WorkflowError
from durableflow.ray.packing import PackedDAG, unpack

__all__ = ["NAME", "NAMESPACE", "Coordinator", "Settings", "version"]

NAME = "durableflow_coordinator"
NAMESPACE = "durableflow"
_KEEP_FINISHED = 256  # finished runs whose outcome (with its cause) a late ``wait`` still gets


def version() -> str:
    """The installed durableflow version."""
    try:
        return importlib.metadata.version("durableflow")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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
        return version()

    def _client(self, settings: Settings) -> Client:
        from durableflow.ray.executor import RayExecutor

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
        if isinstance(dag, PackedDAG):
            dag = unpack(dag)
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
