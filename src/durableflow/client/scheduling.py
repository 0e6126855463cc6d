"""Recurring workflows: the Client's schedule calls (add, inspect, pause, fire).

:class:`Scheduling` holds the schedules of one storage and how a tick's workflow is submitted;
:class:`~durableflow.client.Client` wires it and forwards its schedule calls here.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from durableflow.model.dag import FlatDAG
from durableflow.model.records import RunRecord
from durableflow.model.schedule import MissedTicks, Overlap, ScheduleOptions
from durableflow.model.status import WorkflowStatus
from durableflow.runtime.scheduler import Scheduler
from durableflow.runtime.status import effective_status
from durableflow.storage.base import Storage
from durableflow.storage.schedules import ScheduleStore
from durableflow.storage.store import WorkflowStore

__all__ = ["Scheduling"]

_DEFAULT = ScheduleOptions()


class Scheduling:
    """The schedules stored on one storage, fired as detached workflows.

    Args:
        storage: the storage the schedules are kept in.
        store: the workflow store (its serializer; the status of a tick's workflow).
        submit: stores a tick's workflow PENDING for a worker (the Client's detached submit);
            False if that id was stored already.
    """

    def __init__(
        self,
        storage: Storage,
        store: WorkflowStore,
        submit: Callable[[str, FlatDAG, dict[str, Any]], bool],
    ) -> None:
        self.storage = storage
        self.store = store
        self._submit = submit

    @functools.cached_property
    def scheduler(self) -> Scheduler:
        """The schedules stored on this Client's storage."""
        schedules = ScheduleStore(self.storage, self.store.serializer)
        return Scheduler(schedules, self._submit, self._status_of)

    def _status_of(self, workflow_id: str) -> WorkflowStatus | None:
        record: RunRecord | None = self.store.read_run(workflow_id)
        return None if record is None else effective_status(self.store, record)

    def schedule(
        self,
        name: str,
        dag: Any,
        *,
        cron: str | None = None,
        every: Any = None,
        timezone: str = _DEFAULT.timezone,
        catchup: str = _DEFAULT.catchup.value,
        overlap: str = _DEFAULT.overlap.value,
        grace: float = _DEFAULT.grace,
        max_catchup: int = _DEFAULT.max_catchup,
        metadata: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Run a workflow on a schedule; workers (``durableflow worker``) fire it.

        Each tick runs the workflow ``<name>@<tick in UTC>``, at most once.

        Args:
            name: the schedule's name (letters, digits, ``_ . -``).
            dag: a DAG (from ``.bind()``), or a callable returning one; a callable that takes a
                parameter is given the tick as an aware datetime.
            cron: a five-field cron expression, read on ``timezone``'s wall clock.
            every: an interval instead: seconds, a timedelta, or a string such as ``"5m"``.
            timezone: an IANA zone name; UTC by default.
            catchup: ticks missed while no worker ran: "skip", "latest" (run the newest) or "all".
            overlap: a tick while the previous run still goes: "skip" or "allow".
            grace: seconds a tick may be late and still run under ``catchup="skip"``.
            max_catchup: under ``catchup="all"``, the most missed ticks run.

        These five are :class:`~durableflow.model.schedule.ScheduleOptions`, where their
        defaults and checks are defined (and the CLI's flags derived).
            metadata: copied into each run's metadata (with ``schedule`` and ``scheduled_time``).
            replace: overwrite a schedule of the same name (its firing cursor is kept).

        Returns:
            The schedule's description, as :meth:`get_schedule`.
        """
        self.scheduler.add(
            name,
            dag,
            cron=cron,
            every=every,
            options=ScheduleOptions(
                timezone=timezone,
                catchup=MissedTicks(catchup),
                overlap=Overlap(overlap),
                grace=grace,
                max_catchup=max_catchup,
            ),
            metadata=metadata,
            replace=replace,
        )
        return self.scheduler.describe(name)

    def get_schedule(self, name: str) -> dict[str, Any]:
        """A schedule and where its firing stands (next tick, last run, counts)."""
        return self.scheduler.describe(name)

    def list_schedules(self) -> list[dict[str, Any]]:
        """Every schedule of the storage, as :meth:`get_schedule`."""
        return [self.scheduler.describe(name) for name in self.scheduler.names()]

    def pause_schedule(self, name: str) -> None:
        """Stop firing a schedule until :meth:`resume_schedule`."""
        self.scheduler.set_paused(name, True)

    def resume_schedule(self, name: str) -> None:
        """Fire a paused schedule again, from now on (ticks missed while paused are skipped)."""
        self.scheduler.set_paused(name, False)

    def remove_schedule(self, name: str) -> None:
        """Delete a schedule; the workflows it started are kept."""
        self.scheduler.remove(name)

    def fire_schedules(self, now: float | None = None) -> list[str]:
        """Submit the due ticks of every schedule as PENDING workflows (workers call this).

        Returns:
            The ids of the workflows submitted.
        """
        firings = self.scheduler.fire_due(time.time() if now is None else now)
        return [workflow_id for firing in firings for workflow_id in firing.started]
