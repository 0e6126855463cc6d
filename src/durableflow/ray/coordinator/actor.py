"""The coordinator actor: runs workflows inside the cluster, one Client per storage.

Its Clients open like the driver's, from the driver's :class:`~durableflow.config.ClientSettings`
(``Client.settings``), on the embedded runner and the Ray executor.

A start is two calls, so that ``run_async`` returns only once the workflow is durable:

1. :meth:`Coordinator.start`: the coordinator's Client validates the DAG, stores the specs and
   the run record and claims the lease, then returns. Errors (a bad input, an id running
   elsewhere) are raised to the caller here, as the embedded Client raises them.
2. :meth:`Coordinator.wait`: returns the output once it is there (or raises the run's error);
   its ObjectRef is the handle ``run_async`` gives back.

Errors cross Ray pickled; a WorkflowError keeps its cause (``_cause``) for the driver to restore.

Virtual actors (:mod:`durableflow.ray.actors`): :meth:`Coordinator.actor_call` sees a call a
driver stored through to its result (this process is the actor's writer when it can be), and
every storage the coordinator serves has its marked mailboxes drained here, as a worker does
(every second, and at once on :meth:`Coordinator.actor_drain`).
"""

from __future__ import annotations

import collections
import importlib.metadata
import threading
from concurrent.futures import Future
from typing import Any

import cloudpickle

from durableflow.client import Client
from durableflow.config import ClientSettings
from durableflow.errors import WorkflowError
from durableflow.ray.packing import PackedDAG, unpack

__all__ = ["NAME", "NAMESPACE", "Coordinator", "version"]

NAME = "durableflow_coordinator"
NAMESPACE = "durableflow"
_KEEP_FINISHED = 256  # finished runs whose outcome (with its cause) a late ``wait`` still gets


def version() -> str:
    """The installed durableflow version."""
    try:
        return importlib.metadata.version("durableflow")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _key(settings: ClientSettings) -> tuple[str, bytes | None]:
    """Which of the coordinator's Clients serves these settings."""
    return settings.storage_url, settings.signing_key


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
        self._mailboxes: dict[tuple[str, bytes | None], Any] = {}
        self._executors: dict[tuple[str, bytes | None], Any] = {}

    def version(self) -> str:
        """The durableflow version the coordinator runs."""
        return version()

    def _client(self, settings: ClientSettings) -> Client:
        from durableflow.ray.actors import CoordinatorMailboxes
        from durableflow.ray.executor import RayExecutor

        with self._lock:
            client = self._clients.get(_key(settings))
            if client is None:
                executor = RayExecutor()
                client = Client(  # embedded: the coordinator runs the workflows
                    settings.storage_url, executor=executor, **settings.client_options()
                )
                executor.fence = client.leases.check  # early writes: this Client's leases
                self._clients[_key(settings)] = client
                self._executors[_key(settings)] = executor
                self._mailboxes[_key(settings)] = CoordinatorMailboxes(client)
            return client

    def _track(self, settings: ClientSettings, workflow_id: str, future: Future[Any]) -> None:
        key = (*_key(settings), workflow_id)
        with self._lock:
            self._runs[key] = future

        def finished(_: Future[Any]) -> None:
            executor = self._executors.get(_key(settings))
            if executor is not None:
                executor.forget(workflow_id)  # its speculative attempts nobody adopted stop
            with self._lock:
                self._finished.append(key)
                while len(self._finished) > _KEEP_FINISHED:
                    run = self._runs.get(old := self._finished.popleft())
                    if run is not None and run.done():
                        del self._runs[old]

        future.add_done_callback(finished)

    def start(
        self,
        settings: ClientSettings,
        dag: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        workflow_id: str,
        metadata: dict[str, Any] | None,
        timeout_s: float | None = None,
    ) -> None:
        """Store and claim a new workflow (or resume a stored one) and start running it.

        ``timeout_s``: the workflow's time limit (``Client.run``'s).
        """
        if isinstance(dag, PackedDAG):
            dag = unpack(dag)
        try:
            future = self._client(settings).run_async(
                dag,
                *args,
                workflow_id=workflow_id,
                metadata=metadata,
                timeout_s=timeout_s,
                **kwargs,
            )
        except BaseException as err:
            raise _portable(err) from err.__cause__
        self._track(settings, workflow_id, future)

    def resume(self, settings: ClientSettings, workflow_id: str) -> None:
        """Claim a stopped workflow and start running it from its checkpoints."""
        try:
            future = self._client(settings).resume_async(workflow_id)
        except BaseException as err:
            raise _portable(err) from err.__cause__
        self._track(settings, workflow_id, future)

    def wait(self, settings: ClientSettings, workflow_id: str) -> Any:
        """The output of a workflow this coordinator started, once it is there."""
        with self._lock:
            future = self._runs.get((*_key(settings), workflow_id))
        try:
            if future is not None:
                return future.result()
            return self._client(settings).get_output(workflow_id)
        except BaseException as err:
            raise _portable(err) from err.__cause__

    def output(self, settings: ClientSettings, workflow_id: str, task_id: str | None) -> Any:
        """The output of a workflow or one of its tasks, waiting while it runs."""
        if task_id is None:
            return self.wait(settings, workflow_id)
        return self._client(settings).get_output(workflow_id, task_id=task_id)

    def actor_call(
        self, settings: ClientSettings, actor_class: Any, actor_id: str, seq: int
    ) -> Any:
        """The result of a virtual actor's stored call ``seq``, applied here or by its writer."""
        from durableflow.ray.actors import apply_call

        try:
            return apply_call(self._client(settings), actor_class, actor_id, seq)
        except BaseException as err:
            raise _portable(err) from err.__cause__

    def actor_drain(self, settings: ClientSettings) -> None:
        """Drain the storage's marked actor mailboxes now (a call was sent)."""
        self._client(settings)
        with self._lock:
            mailboxes = self._mailboxes[_key(settings)]
        mailboxes.poke()
