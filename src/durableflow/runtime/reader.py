"""Reader: read-only answers about the workflows of a storage, with no executor, lease or Ray.

A Reader opens a storage that must exist (``create=False``: a mistyped path fails with "no
durableflow storage at ..." and creates nothing) and only reads it: it starts no thread,
claims no lease, builds no executor and never imports Ray, whatever ``DURABLEFLOW_EXECUTOR``
says, so the CLI's read commands, the dashboard and scripts can use it next to running
workers. Every answer comes from storage alone (see :mod:`durableflow.runtime.status`), typed
as the read model of :mod:`durableflow.model.info`; ``get_metadata`` keeps Ray's dict shape.
A Client reads through one of these (``Client.reader``) over its own store.

The costs of each listing are in :mod:`durableflow.runtime.listing`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from durableflow import config
from durableflow.errors import WorkflowError
from durableflow.model.environment import EnvironmentDiff
from durableflow.model.filters import WorkflowFilter
from durableflow.model.ids import validate_workflow_id
from durableflow.model.info import (
    ScheduleInfo,
    TaskInfo,
    TaskPage,
    WorkflowInfo,
    WorkflowSummary,
)
from durableflow.model.ownership import LeaseRecord
from durableflow.model.records import RunRecord
from durableflow.model.status import WorkflowStatus, parse_status_filter
from durableflow.runtime.bulk import select_statuses
from durableflow.runtime.environment import environment_diff
from durableflow.runtime.inspection import task_infos
from durableflow.runtime.listing import list_workflows
from durableflow.runtime.logs import AttemptLog, get_logs
from durableflow.runtime.outputs import output_waiter
from durableflow.runtime.run_queue import RunQueue
from durableflow.runtime.scheduler import Scheduler
from durableflow.runtime.starting import require_record
from durableflow.runtime.status import (
    effective_status,
    get_task_info,
    list_statuses,
    workflow_info,
    workflow_metadata,
)
from durableflow.runtime.task_page import task_page
from durableflow.runtime.workers import live_workers
from durableflow.storage.base import Storage
from durableflow.storage.schedules import ScheduleStore
from durableflow.storage.serializer import Serializer
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage

__all__ = ["Reader", "StatusFilter"]

log = logging.getLogger("durableflow")

StatusFilter = str | WorkflowStatus | Iterable[str | WorkflowStatus] | None
"""``list_all``'s filter: None (all), a status, its name, or a set of either."""


class Reader:
    """Reads the workflows and schedules of one storage; never writes it.

    Args:
        storage: a URL, a path, a Storage, or a WorkflowStore (a Client's, shared); None reads
            ``$DURABLEFLOW_STORAGE``, then ``$RAY_WORKFLOW_STORAGE``, then uses the default
            directory. A URL or path must name an existing storage.
        signing_key: the key stored values were signed with (default
            ``$DURABLEFLOW_SIGNING_KEY``); needed to read outputs and specs of a signed storage.
            Ignored with a WorkflowStore, which has its serializer.
        runs: the workflows a Client runs in this process: ``get_output`` waits on their
            futures instead of polling storage (None: a Reader runs nothing).

    Raises:
        StorageError: no durableflow storage at that URL or path.
    """

    def __init__(
        self,
        storage: str | os.PathLike[str] | Storage | WorkflowStore | None = None,
        *,
        signing_key: bytes | str | None = None,
        runs: RunQueue | None = None,
    ) -> None:
        if isinstance(storage, WorkflowStore):
            self.store = storage
            self._owns_storage = False
        else:
            spec = storage if storage is not None else config.storage_from_env()
            opened = open_storage(spec, create=False)
            self._owns_storage = opened is not storage  # a Storage handed in stays open
            key = signing_key if signing_key is not None else config.signing_key_from_env()
            try:
                self.store = WorkflowStore(opened, Serializer(key))
            except BaseException:
                if self._owns_storage:
                    opened.close()
                raise
            log.info("durableflow storage: %s", opened.url)
        self._runs = runs if runs is not None else RunQueue(None, None)

    @property
    def storage(self) -> Storage:
        """The storage read."""
        return self.store.storage

    @property
    def url(self) -> str:
        """The storage's URL."""
        return self.store.storage.url

    def _record(self, workflow_id: str) -> RunRecord:
        return require_record(self.store, validate_workflow_id(workflow_id))

    # --- workflows ------------------------------------------------------------------------
    def get_status(self, workflow_id: str) -> WorkflowStatus:
        """The workflow's status; a workflow whose runner is gone reads RESUMABLE.

        Raises:
            WorkflowNotFoundError: unknown id.
        """
        return effective_status(self.store, self._record(workflow_id))

    def get_workflow(self, workflow_id: str) -> WorkflowInfo:
        """What is known about a workflow, its name and task counts included.

        Reads the run record, the lease when it is active, the spec batches and one listing
        of the checkpoints (not the environment: see :meth:`get_metadata`).

        Raises:
            WorkflowNotFoundError: unknown id.
        """
        return workflow_info(self.store, self._record(workflow_id), specs=True)

    def list_tasks(self, workflow_id: str) -> list[TaskInfo]:
        """Every task of a workflow, upstream first, each continuation's tasks under its parent.

        Raises:
            WorkflowNotFoundError: unknown id.
        """
        record = self._record(workflow_id)
        return task_infos(self.store, record, effective_status(self.store, record))

    def list_tasks_page(self, workflow_id: str, *, full: int, started: int) -> TaskPage:
        """The tasks of :meth:`list_tasks`, with the times of the first screen's tasks only.

        The first ``full`` tasks, and then tasks until ``started`` of them have started, are
        read in full; a later task with a checkpoint is a ``BriefTask`` (SUCCESSFUL, its
        checkpoint header not read), so a 10,000-task fan-out's page reads a few hundred
        headers (see :mod:`durableflow.runtime.task_page`). Also gives each task's upstream.

        Raises:
            WorkflowNotFoundError: unknown id.
        """
        record = self._record(workflow_id)
        status = effective_status(self.store, record)
        return task_page(self.store, record, status, full=full, started=started)

    def get_task(self, workflow_id: str, task_id: str) -> TaskInfo:
        """What is known about one task.

        Raises:
            WorkflowNotFoundError: unknown workflow, or no such task in it.
        """
        return get_task_info(self.store, workflow_id, task_id, self._record(workflow_id))

    def list_workflows(
        self,
        statuses: StatusFilter = None,
        prefix: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        *,
        times: bool = False,
        newest_first: bool = False,
    ) -> tuple[list[WorkflowSummary], str | None]:
        """A page of workflows and the cursor of the next one (None: the last page).

        By id, rows carry the id and the status only (no run record is read for a workflow at
        rest) unless ``times``; ``newest_first`` orders them by the creation index and reads
        the run record of each row returned (see :mod:`durableflow.runtime.listing`).

        Args:
            statuses: only these statuses (as :meth:`list_all`).
            prefix: only ids that start with it.
            since: only workflows created at or after this Unix time.
            limit: at most this many rows.
            cursor: the cursor the previous page returned.
            times: fill the rows' times (one run record read per row).
            newest_first: newest first instead of by id.

        Raises:
            ValueError: an unknown status, ``limit`` below 1, or a cursor not from this
                listing.
        """
        return list_workflows(
            self.store,
            parse_status_filter(statuses),
            prefix=prefix,
            since=since,
            limit=limit,
            cursor=cursor,
            times=times,
            newest_first=newest_first,
        )

    def list_all(self, status_filter: StatusFilter = None) -> list[tuple[str, WorkflowStatus]]:
        """``[(workflow_id, status), ...]`` sorted by id, for the statuses asked for."""
        return list_statuses(self.store, parse_status_filter(status_filter))

    def list_filtered(
        self,
        status_filter: StatusFilter = None,
        *,
        prefix: str | None = None,
        name: str | None = None,
        older_than: Any = None,
    ) -> list[tuple[str, WorkflowStatus]]:
        """Like :meth:`list_all`, narrowed by the filter shape of the bulk calls."""
        flt = WorkflowFilter.of(
            status=status_filter, prefix=prefix, name=name, older_than=older_than
        )
        return select_statuses(self.store, flt)

    def select(self, wanted: Iterable[WorkflowStatus], **filters: Any) -> list[str]:
        """Ids of the workflows in ``wanted`` statuses that ``filters`` match, sorted."""
        wanted = frozenset(wanted)
        flt = WorkflowFilter.of(**filters)
        statuses = wanted if flt.status is None else flt.status & wanted
        flt = dataclasses.replace(flt, status=statuses)
        return [workflow_id for workflow_id, _ in select_statuses(self.store, flt)]

    def get_metadata(self, workflow_id: str, task_id: str | None = None) -> dict[str, Any]:
        """Ray's ``get_metadata`` of a workflow (with its environment) or of one of its tasks.

        Raises:
            WorkflowNotFoundError: unknown workflow, or no such task in it.
        """
        record = self._record(workflow_id)
        if task_id is None:
            return workflow_metadata(self.store, record)
        return get_task_info(self.store, workflow_id, task_id, record).to_metadata()

    def get_output(
        self, workflow_id: str, *, task_id: str | None = None, timeout: float | None = None
    ) -> Any:
        """The workflow's output (or one task's), polling storage while it runs elsewhere.

        Raises:
            WorkflowNotFoundError: unknown workflow (or task).
            WorkflowExecutionError: it FAILED.
            WorkflowCancellationError: it was CANCELED.
            WorkflowIncompleteError: it stopped unfinished and nobody runs it.
            TimeoutError: ``timeout`` seconds passed.
        """
        return self.output_waiter(workflow_id, task_id, timeout)()

    def output_waiter(
        self, workflow_id: str, task_id: str | None = None, timeout: float | None = None
    ) -> Callable[[], Any]:
        """The call :meth:`get_output` makes, with the workflow's record read now.

        Raises:
            WorkflowNotFoundError: unknown workflow (now), or unknown task of a workflow that
                is not active (now); the call raises what :meth:`get_output` does.
        """
        record = self._record(workflow_id)
        return output_waiter(self.store, self._runs, record, task_id, timeout)

    def environment_diff(self, workflow_id: str) -> EnvironmentDiff:
        """What differs between a workflow's recorded environment and this process's."""
        return environment_diff(self.store, workflow_id, self._record(workflow_id).runtime_env)

    def get_logs(self, workflow_id: str, task_id: str | None = None) -> dict[str, list[AttemptLog]]:
        """What each task attempt printed and logged: task id -> its attempts' logs, oldest first.

        Raises:
            WorkflowNotFoundError: no such workflow, or no such task in it.
        """
        return get_logs(self.store, workflow_id, task_id)

    # --- who works ---------------------------------------------------------------------------
    def live_workers(self) -> list[dict[str, Any]]:
        """The ``durableflow worker`` processes serving this storage now, by their heartbeats.

        One dict each, with ``owner``, ``host``, ``pid`` and ``expires_at``.
        """
        return live_workers(self.store.storage)

    def lease_owner(self, workflow_id: str) -> LeaseRecord | None:
        """The lease on a workflow as stored: its runner's owner id, host, pid and expiry.

        None when no runner holds it; a garbled lease reads None.
        """
        validate_workflow_id(workflow_id)
        return self.store.read_lease(workflow_id)[0]

    # --- schedules --------------------------------------------------------------------------
    def _scheduler(self) -> Scheduler:
        def refuse(*_: Any) -> bool:
            raise WorkflowError("a Reader does not submit workflows")

        def status_of(workflow_id: str) -> WorkflowStatus | None:
            record = self.store.read_run(workflow_id)
            return None if record is None else effective_status(self.store, record)

        schedules = ScheduleStore(self.store.storage, self.store.serializer)
        return Scheduler(schedules, refuse, status_of)

    def get_schedule(self, name: str) -> ScheduleInfo:
        """A schedule and where it stands.

        Raises:
            WorkflowNotFoundError: no such schedule.
        """
        return ScheduleInfo.from_json(self._scheduler().describe(name))

    def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule of the storage, by name (one removed meanwhile is left out)."""
        scheduler = self._scheduler()
        found: list[ScheduleInfo] = []
        for name in sorted(scheduler.names()):
            try:
                found.append(ScheduleInfo.from_json(scheduler.describe(name)))
            except WorkflowError:
                continue
        return found

    # --- closing --------------------------------------------------------------------------
    def close(self) -> None:
        """Close the storage if this Reader opened it."""
        if self._owns_storage:
            self.store.storage.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
