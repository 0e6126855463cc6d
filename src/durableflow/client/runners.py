"""Runners: where a Client runs the workflows it starts and resumes, chosen at construction.

The Client checks a call (open, ids) and hands it to its runner, so the facade, the CLI, workers
and the dashboard behave the same for the same runner. A runner starts, resumes, resumes many
and waits for outputs, and gives back handles:

- ``"embedded"`` (the default): in this process, on the Client's executor; the start and resume
  protocols are :class:`~durableflow.runtime.starting.Launcher`'s, the admission queue the
  Client's :class:`~durableflow.runtime.run_queue.RunQueue`. Handles are
  :class:`concurrent.futures.Future` s.
- ``"ray"``: on the Ray cluster's coordinator actor, so that workflows outlive the driver
  (``durableflow.ray.runner:RayRunner``, imported when first used: ``client/`` never imports
  Ray). Handles are ``ray.ObjectRef`` s.
- ``"auto"`` (the facade's, the choice ``ray.workflow`` users expect): ``"ray"`` when the
  executor is Ray; embedded when an executor was chosen (``executor=`` or
  ``$DURABLEFLOW_EXECUTOR``); else embedded, except the calls a registered runner *claims*
  while its library is imported (on Ray: Ray DAGs, event-only DAGs, and stored workflows of
  either kind, while Ray is initialized).

Runners are plugins, like executors (:func:`~durableflow.client.executors.register_executor`):
:func:`~durableflow.client.routing.register_runner` maps a name to a factory taking the
Client; :mod:`durableflow.client.routing` chooses a Client's runner and routes the auto
runner's calls.
"""

from __future__ import annotations

import abc
import concurrent.futures
import threading
from concurrent.futures import Future
from typing import Any

from durableflow.errors import WorkflowIncompleteError
from durableflow.model.dag import flatten
from durableflow.model.records import check_metadata
from durableflow.runtime.reader import Reader
from durableflow.runtime.run_queue import run_bounded
from durableflow.runtime.starting import Launcher

__all__ = ["EmbeddedRunner", "Handle", "Runner"]

Handle = Any
"""What a runner's asynchronous call returns: a :class:`~concurrent.futures.Future` on the
embedded runner, the runner's own handle elsewhere (a ``ray.ObjectRef`` on Ray)."""


class Runner(abc.ABC):
    """Where a Client's workflows run: the running calls of :class:`~durableflow.client.Client`.

    Ids reach a runner checked (and generated for a start without one); the Client is open.
    """

    name: str = ""

    @abc.abstractmethod
    def start(
        self,
        workflow_id: str,
        dag: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        metadata: dict[str, Any] | None,
        timeout_s: float | None = None,
    ) -> Handle:
        """Store and claim a new workflow (a stored id is resumed) and start it.

        ``timeout_s``: the workflow's time limit (stored with it, each run from its start).
        Returns once the workflow is durable (its errors, such as a bad input or an id running
        elsewhere, are raised here), with the handle of its output.
        """

    def run(
        self,
        workflow_id: str,
        dag: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        metadata: dict[str, Any] | None,
        timeout_s: float | None = None,
    ) -> Any:
        """:meth:`start`, then wait for the output."""
        return self.result(self.start(workflow_id, dag, args, kwargs, metadata, timeout_s))

    @abc.abstractmethod
    def resume_async(self, workflow_id: str, *, wait: bool = True) -> Handle:
        """Claim a stopped workflow and run it from its checkpoints; the handle of its output.

        ``wait=False``: do not wait to observe a foreign lease that looks expired.
        """

    def resume(self, workflow_id: str) -> Any:
        """:meth:`resume_async`, then wait for the output."""
        return self.result(self.resume_async(workflow_id))

    @abc.abstractmethod
    def resume_many(self, workflow_ids: list[str]) -> list[tuple[str, Handle]]:
        """Resume each workflow; one that cannot be resumed does not stop the others."""

    @abc.abstractmethod
    def output(self, workflow_id: str, task_id: str | None) -> Handle:
        """The handle of a workflow's (or a task's) output, waiting while it runs."""

    @abc.abstractmethod
    def result(self, handle: Handle) -> Any:
        """Wait for a handle: its value, or the run's error raised as itself."""

    def claims(self, *, dag: Any = None, workflow_id: str | None = None) -> bool:
        """Under the auto runner: whether this call (a DAG to start, or a stored id) is ours."""
        return True

    def close(self, wait: bool) -> None:  # noqa: B027 - most runners hold nothing
        """Let go of what the runner holds (the Client closes its executor and storage)."""


class EmbeddedRunner(Runner):
    """Workflows run in this process, on the Client's executor, queued by its RunQueue.

    Args:
        launcher: the start and resume protocols, over the Client's store, executor and leases.
        reader: the Client's reader (output waiters).
        bulk_size: how many workflows :meth:`resume_many` runs at once.
    """

    name = "embedded"

    def __init__(self, launcher: Launcher, reader: Reader, bulk_size: int) -> None:
        self._launcher = launcher
        self._reader = reader
        self._bulk_size = bulk_size

    def start(
        self,
        workflow_id: str,
        dag: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        metadata: dict[str, Any] | None,
        timeout_s: float | None = None,
    ) -> Future[Any]:
        """Flatten the DAG with its inputs and start it in a thread (:meth:`Launcher.start`)."""
        return self._launch(workflow_id, dag, args, kwargs, metadata, timeout_s, inline=False)

    def run(
        self,
        workflow_id: str,
        dag: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        metadata: dict[str, Any] | None,
        timeout_s: float | None = None,
    ) -> Any:
        """Like :meth:`start`, driving the workflow in the calling thread."""
        return self._launch(
            workflow_id, dag, args, kwargs, metadata, timeout_s, inline=True
        ).result()

    def _launch(
        self,
        workflow_id: str,
        dag: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        metadata: dict[str, Any] | None,
        timeout_s: float | None,
        *,
        inline: bool,
    ) -> Future[Any]:
        metadata = check_metadata(metadata, workflow_id)
        flat = flatten(dag, inputs=(args, kwargs))
        return self._launcher.start(workflow_id, flat, metadata, inline=inline, timeout_s=timeout_s)

    def resume_async(self, workflow_id: str, *, wait: bool = True) -> Future[Any]:
        """:meth:`Launcher.resume` in a thread."""
        return self._launcher.resume(workflow_id, inline=False, wait=wait)

    def resume(self, workflow_id: str) -> Any:
        """:meth:`Launcher.resume` in the calling thread."""
        return self._launcher.resume(workflow_id, inline=True).result()

    def resume_many(self, workflow_ids: list[str]) -> list[tuple[str, Future[Any]]]:
        """Futures at once; the workflows run on ``bulk_size`` threads, not a thread each."""
        handles: list[tuple[str, Future[Any]]] = [(wid, Future()) for wid in workflow_ids]
        if handles:
            run_bounded(handles, self.resume, self._bulk_size)
        return handles

    def output(self, workflow_id: str, task_id: str | None) -> Future[Any]:
        """A future filled by a thread polling the store (:meth:`Reader.output_waiter`)."""
        wait = self._reader.output_waiter(workflow_id, task_id)
        future: Future[Any] = Future()

        def fill() -> None:
            try:
                future.set_result(wait())
            except BaseException as err:
                future.set_exception(err)

        threading.Thread(target=fill, daemon=True).start()
        return future

    def result(self, handle: Handle) -> Any:
        """``handle.result()``."""
        return handle.result()

    def close(self, wait: bool) -> None:
        """``wait`` for the running workflows, or stop them (RESUMABLE); queued ones stay so.

        A queued workflow's future gets WorkflowIncompleteError; a running one's gets its run's
        outcome (its caller's business).
        """
        runs, leases = self._launcher.runs, self._launcher.leases
        if wait:
            runs.wait_all()
        queued, running = runs.drain()
        for run, future in queued:
            try:
                run.leave_resumable()
            finally:
                leases.release(run.workflow_id)
            future.set_exception(
                WorkflowIncompleteError(
                    f"workflow {run.workflow_id!r} was still queued at shutdown; resume it",
                    workflow_id=run.workflow_id,
                )
            )
        for run, future in running:
            run.request_stop()
            concurrent.futures.wait([future])
