"""Steering runs after the fact on a Client: restart, fork, bulk actions by filter, retention.

The protocols are in :mod:`durableflow.runtime.restart`, :mod:`~durableflow.runtime.fork`,
:mod:`~durableflow.runtime.bulk` and :mod:`~durableflow.runtime.retention` (numbered steps,
a kill test each); these are the Client's calls over them. One filter shape everywhere, as
keyword arguments: ``status`` (a status, a name, or a set of either), ``prefix`` (id prefix),
``name`` (the root task's name), ``older_than`` (``"30d"``, ``"12h"``, a timedelta: from the
run's end, or its start while it has not ended). :class:`Steering` holds what they need;
:class:`~durableflow.client.Client` wires it and forwards these calls here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from durableflow.model.dag import flatten
from durableflow.model.filters import AgeArg, StatusArg, WorkflowFilter
from durableflow.model.ids import validate_workflow_id
from durableflow.runtime import bulk, fork, restart, retention
from durableflow.runtime.lease import LeaseKeeper
from durableflow.storage.store import WorkflowStore

__all__ = ["Steering"]


class Steering:
    """Restart, fork, bulk actions and retention over a Client's store and leases.

    Args:
        store: the workflow store.
        leases: the Client's lease keeper (each protocol claims the workflow's lease).
        workflows: the Client, whose ``cancel`` / ``delete`` the bulk actions call per workflow.
        bulk_size: workflows a bulk action works on at once.
    """

    def __init__(
        self,
        store: WorkflowStore,
        leases: LeaseKeeper,
        workflows: bulk.Workflows,
        bulk_size: int,
    ) -> None:
        self.store = store
        self.leases = leases
        self._workflows = workflows
        self._bulk_size = bulk_size

    def restart(
        self, workflow_id: str, from_tasks: str | list[str], *, allow_canceled: bool = False
    ) -> restart.Restarted:
        """Set aside ``from_tasks``' checkpoints and everything downstream; runs nothing.

        The workflow (FAILED, RESUMABLE or SUCCESSFUL; CANCELED only with ``allow_canceled``)
        becomes RESUMABLE; ``resume`` (or a worker) runs those tasks again with today's code.
        The set-aside attempts stay visible in ``get_metadata(id)["restarts"]``.

        Raises:
            WorkflowStillActiveError: it is RUNNING or PENDING.
            WorkflowNotResumableError: it was canceled and ``allow_canceled`` is False.
        """
        tasks = [from_tasks] if isinstance(from_tasks, str) else list(from_tasks)
        return restart.restart(
            self.store,
            self.leases,
            validate_workflow_id(workflow_id),
            tasks,
            allow_canceled=allow_canceled,
        )

    def fork(
        self,
        workflow_id: str,
        new_workflow_id: str,
        *,
        from_task: str | None = None,
        dag: Any = None,
    ) -> str:
        """A new workflow, RESUMABLE, with copies of the source's checkpoints.

        Every task not downstream of ``from_task`` keeps its checkpoint (copied: deleting the
        source never breaks the fork); ``dag`` replaces the DAG for the part that runs again
        (its kept tasks must keep their ids). ``get_metadata(new)["forked_from"]`` names the
        source. Runs nothing; returns the new id.
        """
        flat = None if dag is None else flatten(dag)
        return fork.fork(
            self.store,
            self.leases,
            validate_workflow_id(workflow_id),
            validate_workflow_id(new_workflow_id),
            from_task=from_task,
            dag=flat,
        )

    def cancel_all(
        self,
        *,
        status: StatusArg = None,
        prefix: str | None = None,
        name: str | None = None,
        older_than: AgeArg = None,
        dry_run: bool = False,
        on_done: Callable[[str], object] | None = None,
    ) -> bulk.BulkResult:
        """Cancel every matching workflow; ``.acted`` has the ids, ``.failed`` what failed.

        ``on_done(id)`` is called as each one ends (progress).
        """
        return bulk.cancel_all(
            self._workflows,
            status=status,
            prefix=prefix,
            name=name,
            older_than=older_than,
            dry_run=dry_run,
            workers=self._bulk_size,
            on_done=on_done,
        )

    def delete_all(
        self,
        *,
        status: StatusArg = None,
        prefix: str | None = None,
        name: str | None = None,
        older_than: AgeArg = None,
        dry_run: bool = False,
        on_done: Callable[[str], object] | None = None,
    ) -> bulk.BulkResult:
        """Delete every matching workflow (never a RUNNING or PENDING one), crash-safely."""
        return bulk.delete_all(
            self._workflows,
            status=status,
            prefix=prefix,
            name=name,
            older_than=older_than,
            dry_run=dry_run,
            workers=self._bulk_size,
            on_done=on_done,
        )

    def set_retention(
        self, ages: dict[str, Any] | None = None, keep_last: Any = None
    ) -> retention.RetentionPolicy:
        """Store the retention policy every process and worker of this storage applies.

        ``ages``: per status, e.g. ``{"SUCCESSFUL": "30d", "FAILED": "90d"}``; ``keep_last``:
        finished runs kept per schedule (an int, or a dict by schedule name).
        """
        return retention.set_retention(self.store, ages, keep_last)

    def get_retention(self) -> retention.RetentionPolicy:
        """The stored retention policy (empty: nothing is pruned by age)."""
        return retention.get_retention(self.store)

    def prune(
        self,
        *,
        status: StatusArg = None,
        prefix: str | None = None,
        name: str | None = None,
        older_than: AgeArg = None,
        dry_run: bool = False,
        rate: float | None = None,
        now: float | None = None,
        on_done: Callable[[str], object] | None = None,
    ) -> retention.PruneResult:
        """Delete what the filter matches, or with no filter what the stored policy says.

        RUNNING, PENDING and RESUMABLE workflows are never pruned by age; interrupted deletes
        are finished first. ``rate``: deletes per second at most.
        """
        flt = WorkflowFilter.of(status=status, prefix=prefix, name=name, older_than=older_than)
        return retention.prune(
            self.store,
            self.leases,
            now,
            filter=None if flt.is_empty else flt,
            dry_run=dry_run,
            rate=rate,
            on_done=on_done,
        )
