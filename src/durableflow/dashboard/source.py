"""What the dashboard reads and does, on the public Reader and Client only.

:class:`Source` is the one object the web app talks to. It reads through a
:class:`~durableflow.client.Reader` (and, unless read-only, acts through a
:class:`~durableflow.client.Client` built with the thread executor, which never runs a workflow
here: a resume is handed to the workers, see :meth:`Source.resume`). It keeps the task tables
of workflows at rest, which do not change until a resume or restart rewrites their run record.

Logs and workers are the Reader's answers shaped for the pages
(:mod:`~durableflow.dashboard.hooks`). Where the Reader has no call for what a view needs, the
gap is filled in one marked place each, through the Reader's public ``store`` attribute:

- :meth:`Source.output_preview` -- a checkpoint's size before anything is unpickled
  (:mod:`~durableflow.dashboard.preview`);
- :meth:`Source.edges` -- the DAG's edges (the specs' ``upstream``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from durableflow.client import Client, Reader
from durableflow.dashboard import hooks
from durableflow.dashboard.preview import PREVIEW_MAX_BYTES, output_preview
from durableflow.errors import (
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowStillActiveError,
)
from durableflow.model.attempts import ObservedTaskStatus
from durableflow.model.info import ScheduleInfo, TaskInfo, TaskPage, WorkflowInfo
from durableflow.model.status import ACTIVE, WorkflowStatus

__all__ = ["PREVIEW_MAX_BYTES", "ActionRefused", "Source"]

TASK_TABLES_KEPT = 8
"""Task tables of workflows at rest kept in memory (the most recently read)."""


class ActionRefused(WorkflowError):
    """An action the dashboard will not do (read-only mode, or a status that forbids it)."""


class Source:
    """The storage as the dashboard sees it.

    Args:
        storage: a URL or path of an existing storage (None: ``$DURABLEFLOW_STORAGE``...).
        read_only: open no Client; every action raises :class:`ActionRefused`.
        signing_key: the key stored values are signed with (default
            ``$DURABLEFLOW_SIGNING_KEY``): values that fail verification are never unpickled.
        clock: Unix time, injected for tests.
    """

    def __init__(
        self,
        storage: str | None = None,
        *,
        read_only: bool = False,
        signing_key: bytes | str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.read_only = read_only
        self.clock = clock
        self._client: Client | None = None
        if read_only:
            self.reader = Reader(storage, signing_key=signing_key)
        else:
            Reader(storage, signing_key=signing_key).close()  # must exist: create nothing
            # The thread executor is built but never used: a resume is handed to the workers.
            self._client = Client(
                storage,
                executor="thread",
                signing_key=signing_key,
            )
            self.reader = self._client.reader
        self._lock = threading.Lock()
        self._info_cache: dict[tuple[str, WorkflowStatus], WorkflowInfo] = {}
        self._tasks_cache: dict[tuple[str, WorkflowStatus, float], list[TaskInfo]] = {}
        self._pages_cache: dict[tuple[str, WorkflowStatus, float, int, int], TaskPage] = {}

    @property
    def url(self) -> str:
        """The storage's URL."""
        return self.reader.url

    def close(self) -> None:
        """Close the Client or Reader."""
        if self._client is not None:
            self._client.close(wait=False)
        else:
            self.reader.close()

    # --- reads -------------------------------------------------------------------------------
    def workflow(self, workflow_id: str) -> WorkflowInfo:
        """The workflow's info with task counts (cached while it is at rest).

        Raises:
            WorkflowNotFoundError: unknown id (or an invalid one).
        """
        try:
            info = self.reader.get_workflow(workflow_id)
        except ValueError as err:  # an invalid id is as unknown as a missing one
            raise WorkflowNotFoundError(str(err), workflow_id=workflow_id) from None
        return info

    def row_info(self, workflow_id: str, status: WorkflowStatus) -> WorkflowInfo | None:
        """A list row's info; finished workflows are cached by (id, status). None: gone."""
        key = (workflow_id, status)
        with self._lock:
            cached = self._info_cache.get(key)
        if cached is not None:
            return cached
        try:
            info = self.reader.get_workflow(workflow_id)
        except WorkflowNotFoundError:
            return None
        if info.status not in ACTIVE and info.status is status:
            with self._lock:
                if len(self._info_cache) > 20_000:
                    self._info_cache.clear()
                self._info_cache[key] = info
        return info

    def tasks(self, workflow_id: str, info: WorkflowInfo | None = None) -> list[TaskInfo]:
        """Every task, upstream first.

        With ``info`` of a workflow at rest (not RUNNING or PENDING), the table is kept for as
        long as its run record is unchanged (same status and ``updated_at``): nothing about its
        tasks changes until a resume or restart rewrites the record. The Reader reads every
        checkpoint's header for a table, which is most of a big workflow's page.

        Raises:
            WorkflowNotFoundError: unknown id.
        """
        if info is None or info.status in ACTIVE:
            return self.reader.list_tasks(workflow_id)
        key = (workflow_id, info.status, info.updated_at)
        with self._lock:
            cached = self._tasks_cache.get(key)
        if cached is not None:
            return cached
        tasks = self.reader.list_tasks(workflow_id)
        with self._lock:
            while len(self._tasks_cache) >= TASK_TABLES_KEPT:
                self._tasks_cache.pop(next(iter(self._tasks_cache)))
            self._tasks_cache[key] = tasks
        return tasks

    def page_tasks(self, info: WorkflowInfo, *, table: int, timeline: int) -> TaskPage:
        """A workflow page's tasks, times of the first screen's only.

        The times of the first ``table`` tasks and the first ``timeline`` started ones are
        read (``Reader.list_tasks_page``). Kept while the workflow is at rest, as :meth:`tasks`.

        Raises:
            WorkflowNotFoundError: the workflow is gone.
        """
        workflow_id = info.workflow_id
        if info.status in ACTIVE:
            return self.reader.list_tasks_page(workflow_id, full=table, started=timeline)
        key = (workflow_id, info.status, info.updated_at, table, timeline)
        with self._lock:
            cached = self._pages_cache.get(key)
        if cached is not None:
            return cached
        found = self.reader.list_tasks_page(workflow_id, full=table, started=timeline)
        with self._lock:
            while len(self._pages_cache) >= TASK_TABLES_KEPT:
                self._pages_cache.pop(next(iter(self._pages_cache)))
            self._pages_cache[key] = found
        return found

    def task(self, workflow_id: str, task_id: str) -> TaskInfo:
        """One task.

        Raises:
            WorkflowNotFoundError: unknown workflow or task.
        """
        try:
            return self.reader.get_task(workflow_id, task_id)
        except ValueError as err:
            raise WorkflowNotFoundError(str(err), workflow_id=workflow_id) from None

    def edges(self, workflow_id: str, tasks: list[TaskInfo]) -> dict[str, tuple[str, ...]]:
        """Each task's upstream task ids (empty when the specs cannot be loaded here).

        Prefers ``TaskInfo.upstream`` when the read model has it; else reads the spec
        batches once through the Reader's store.
        """
        if tasks and hasattr(tasks[0], "upstream"):
            return {t.task_id: tuple(getattr(t, "upstream", ())) for t in tasks}
        try:
            batches = self.reader.store.read_specs(workflow_id)
        except Exception:
            return {}
        found: dict[str, tuple[str, ...]] = {}
        for dag in batches.values():
            for spec in dag.specs:
                found[spec.task_id] = tuple(spec.upstream)
        return found

    def environment(self, workflow_id: str) -> dict[str, Any]:
        """The recorded runtime environment and how it differs from this process's."""
        try:
            metadata = self.reader.get_metadata(workflow_id)
        except ValueError as err:
            raise WorkflowNotFoundError(str(err), workflow_id=workflow_id) from None
        env = metadata.get("runtime_env") or {}
        try:
            diff = self.reader.environment_diff(workflow_id)
        except Exception as err:
            return {"recorded": env, "badge": "unknown", "lines": [str(err)]}
        if not diff.recorded:
            return {"recorded": env, "badge": "not recorded", "lines": []}
        packages = len(diff.packages_changed) + len(diff.packages_added)
        packages += len(diff.packages_removed)
        sources = len(diff.functions_changed) + len(diff.functions_missing)
        if diff.is_empty:
            badge = "compatible"
        else:
            badge = f"differs ({packages} packages, {sources} task sources)"
            if diff.changed:
                badge += ", " + ", ".join(sorted(diff.changed))
        return {"recorded": env, "badge": badge, "lines": diff.lines()}

    def schedules(self) -> list[ScheduleInfo]:
        """Every schedule."""
        return self.reader.list_schedules()

    def task_logs(self, workflow_id: str, task_id: str) -> list[dict[str, Any]] | None:
        """The captured logs of each attempt of a task, or None for an unknown task.

        Each entry is ``{"attempt": n, "text": str, "truncated": bool, "start", "end"}`` (see
        :func:`durableflow.dashboard.hooks.task_logs`).
        """
        return hooks.task_logs(self.reader, workflow_id, task_id)

    def workers(self) -> list[dict[str, Any]]:
        """Live workers (``owner``, ``host``, ``pid``, ``expires_at``) and what they hold.

        ``holds``: the RUNNING workflows whose lease this worker's owner id holds (see
        :func:`durableflow.dashboard.hooks.live_workers`).
        """
        return hooks.live_workers(self.reader)

    def output_preview(self, workflow_id: str, task_id: str) -> dict[str, Any]:
        """What a task's checkpoint holds: type, size and a truncated repr (see :mod:`.preview`).

        A value whose pickle is over :data:`PREVIEW_MAX_BYTES`, or that fails signature
        verification, is never unpickled: the preview says so.
        """
        return output_preview(self.reader, workflow_id, task_id)

    # --- actions -----------------------------------------------------------------------------
    def _actor(self) -> Client:
        if self._client is None:
            raise ActionRefused("the dashboard is read-only (--read-only)")
        return self._client

    def resume(self, workflow_id: str) -> dict[str, Any]:
        """Hand a FAILED or RESUMABLE workflow to the workers; nothing runs in this process.

        A FAILED workflow is restarted in place from its failed tasks (``Client.restart``:
        nothing SUCCESSFUL is set aside, the workflow becomes RESUMABLE); a RESUMABLE one is
        already waiting for a worker. Returns ``{"status", "workers"}``.

        Raises:
            ActionRefused: read-only, or a status that cannot be resumed.
            WorkflowNotFoundError: unknown id.
        """
        client = self._actor()
        status = self.reader.get_status(workflow_id)
        if status is WorkflowStatus.FAILED:
            tasks = self.tasks(workflow_id)
            failed = [t.task_id for t in tasks if t.status is ObservedTaskStatus.FAILED]
            if not failed:
                failed = [
                    t.task_id
                    for t in tasks
                    if t.depth == 0 and t.status is not ObservedTaskStatus.SUCCESSFUL
                ]
            try:
                client.restart(workflow_id, failed)
            except WorkflowStillActiveError as err:
                raise ActionRefused(str(err)) from None
        elif status is not WorkflowStatus.RESUMABLE:
            raise ActionRefused(
                f"workflow {workflow_id!r} is {status.value}: only FAILED and RESUMABLE "
                "workflows can be resumed"
            )
        return {"status": self.reader.get_status(workflow_id).value, "workers": len(self.workers())}

    def cancel(self, workflow_id: str) -> dict[str, Any]:
        """Cancel a workflow (asks its runner through storage; waits up to 5 s).

        Raises:
            ActionRefused: read-only.
            WorkflowNotFoundError: unknown id.
        """
        self._actor().cancel(workflow_id, timeout=5.0)
        return {"status": self.reader.get_status(workflow_id).value}

    def delete(self, workflow_id: str) -> dict[str, Any]:
        """Delete a workflow that is not RUNNING or PENDING.

        Raises:
            ActionRefused: read-only, or the workflow is active.
            WorkflowNotFoundError: unknown id.
        """
        try:
            self._actor().delete(workflow_id)
        except WorkflowStillActiveError as err:
            raise ActionRefused(str(err)) from None
        with self._lock:
            for key in [k for k in self._info_cache if k[0] == workflow_id]:
                del self._info_cache[key]
        return {"deleted": workflow_id}
