"""Detached submission: a workflow stored PENDING for a ``durableflow worker`` to run.

:class:`Submitting` is the Client's part for it (``Client.submit``, ``run_async(detached=True)``,
the schedules' ticks, and the workers' view of what waits for a runner). The protocol itself is
:func:`durableflow.runtime.submission.submit_detached`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from durableflow.client.routing import load_dag_plugins
from durableflow.model.dag import FlatDAG, flatten
from durableflow.model.ids import new_workflow_id, validate_workflow_id
from durableflow.model.records import check_metadata
from durableflow.runtime.lease import LeaseKeeper
from durableflow.runtime.listing import waiting_for_runner
from durableflow.runtime.starting import new_record
from durableflow.runtime.submission import submit_detached
from durableflow.runtime.workers import warn_if_no_worker
from durableflow.storage.store import WorkflowStore

__all__ = ["Submitting"]


class Submitting:
    """Stores workflows PENDING for workers, and lists the ones that wait for one.

    Args:
        store: the Client's store.
        leases: the Client's lease keeper (a submission claims the id while it writes).
        check_open: raises if the Client is closed.
    """

    def __init__(
        self, store: WorkflowStore, leases: LeaseKeeper, check_open: Callable[[], None]
    ) -> None:
        self._store = store
        self._leases = leases
        self._check_open = check_open

    def submit(
        self,
        dag: Any,
        /,
        *args: Any,
        workflow_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        **kwargs: Any,
    ) -> str:
        """Store a DAG as a PENDING workflow for a worker to run, and return its id at once.

        Nothing runs in this process (start one with ``durableflow worker``). Task functions
        travel pickled: by reference when importable (the worker must import the same module),
        by value when defined in ``__main__`` or a notebook. An id already stored is left as it is.
        ``timeout_s``: the workflow's time limit, counted from the start of each run.

        Raises:
            WorkflowStillActiveError: another process submits or runs this id right now.
            ValueError: ``timeout_s`` is not a number of seconds > 0.
        """
        self._check_open()
        workflow_id = (
            validate_workflow_id(workflow_id) if workflow_id is not None else new_workflow_id()
        )
        metadata = check_metadata(metadata, workflow_id)
        flat = flatten(load_dag_plugins(dag), inputs=(args, kwargs))
        self.submit_flat(workflow_id, flat, metadata, timeout_s=timeout_s)
        warn_if_no_worker(self._store.storage)
        return workflow_id

    def submit_flat(
        self,
        workflow_id: str,
        flat: FlatDAG,
        metadata: dict[str, Any],
        *,
        timeout_s: float | None = None,
    ) -> bool:
        """Store a flattened DAG PENDING; False if the id was stored already."""
        data = self._store.encode_specs(workflow_id, flat)
        record = new_record(self._store, workflow_id, flat, metadata, timeout_s=timeout_s)
        return submit_detached(self._store, self._leases, record, data)

    def waiting_workflows(
        self, include_resumable: bool = True, skip: frozenset[str] = frozenset()
    ) -> list[str]:
        """Workflows a worker may run, oldest first: PENDING with no owner (and RESUMABLE)."""
        return waiting_for_runner(self._store, include_resumable, skip)
