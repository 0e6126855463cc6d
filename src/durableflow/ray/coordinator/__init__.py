"""Workflows on Ray, driven from inside the cluster so that they outlive the driver.

On Ray, a Client on the Ray runner (:mod:`durableflow.ray.runner`; the ``workflow`` facade on
the Ray executor, or with Ray DAGs) does not drive workflows from the driver process: it asks
the cluster's coordinator, a detached actor (``durableflow_coordinator`` in the Ray namespace
``durableflow``, pinned to the head node, no CPU), to run them. The coordinator keeps one
:class:`~durableflow.client.Client` per storage, on the Ray executor. Hence:

- a driver that exits or is killed does not stop its workflows;
- ``run_async`` / ``resume_async`` / ``get_output_async`` return ``ray.ObjectRef`` s, so
  ``ray.get(workflow.run_async(dag))`` works;
- the coordinator owns the workflows' leases; when the cluster dies its leases die with it, so
  ``get_status`` / ``list_all`` read RESUMABLE (at once on the same host, after the lease TTL
  elsewhere) and ``resume`` / ``resume_all`` from a new cluster on the same storage finish them.

Everything else (status, metadata, listing, cancel, delete, a blocking ``get_output``) reads and
writes the storage from the driver, as without Ray.

Modules: :mod:`.actor` (the coordinator itself), :mod:`.driver` (reaching it, waiting for its
answers).
Ray is imported lazily here: :mod:`durableflow.ray.executor` is where it is imported.
"""

from durableflow.ray.coordinator.actor import NAME, NAMESPACE, Coordinator
from durableflow.ray.coordinator.driver import (
    coordinator,
    is_event_dag,
    result,
    shutdown_coordinator,
)

__all__ = [
    "NAME",
    "NAMESPACE",
    "Coordinator",
    "coordinator",
    "is_event_dag",
    "result",
    "shutdown_coordinator",
]
