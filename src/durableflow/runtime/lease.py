"""Ownership of a running workflow: its ``lease`` key, on :mod:`durableflow.runtime.ownership`.

Protocol (the steps of :class:`~durableflow.runtime.ownership.OwnershipKeeper`, which has the
full liveness and fencing rules):

1. **Claim** (:meth:`LeaseKeeper.claim`): create the lease create-only. If it exists, its holder
   must be dead before it is taken over by compare-and-swap on its exact bytes (of several
   claimers exactly one wins): on the same machine (machine id, boot id and PID namespace
   equal) dead means its process is gone, it abandoned the lease, or its expiry passed on the
   shared ``CLOCK_BOOTTIME``; from another machine, dead means this claimer saw the lease's
   bytes unchanged for a whole TTL on its own clock -- wall clocks are never compared, so a
   claimer whose clock runs ahead cannot take over a live runner. ``claim`` waits for that
   observation (at most a TTL) when the lease looks expired; ``wait=False`` (worker loops)
   records it and refuses until a later call completes it.
2. **Renew**: a heartbeat swaps each held lease for one with a later expiry every ``ttl / 3``
   seconds. A failed swap means another runner took over: ``on_lost`` stops the engine.
3. **Check** (:meth:`LeaseKeeper.check`, before each task and each write of the engine): the
   runner owns the workflow until its deadline = the time its last successful renewal was
   sent + ``ttl`` - ``ttl / 10``, on its own monotonic clock. Past it (a paused runner waking
   up), one renewal: if the lease was taken over meanwhile the swap fails and the runner stops
   without writing; if nobody took it, ownership is restored.
4. **Release**: after the final status is written, delete the lease if it is still ours
   (serialised with renewals: a renewal's swap cannot re-create a released lease). If the
   storage refuses, the lease is recorded abandoned on this machine, which then reads the
   workflow RESUMABLE at once instead of RUNNING until the expiry.

Reporting (:func:`is_alive`, used by ``get_status`` / ``list_all``): a runner on this machine
is alive while its process exists (pid *and* start time) and its lease is neither expired nor
abandoned; on another machine, until the lease's wall-clock expiry plus a margin.
"""

from __future__ import annotations

from collections.abc import Callable

from durableflow.errors import WorkflowStillActiveError
from durableflow.model.records import LeaseRecord
from durableflow.runtime.ownership import (
    DEFAULT_TTL,
    HOST,
    Identity,
    OwnershipKeeper,
    is_alive,
    process_start_time,
)
from durableflow.storage.store import WorkflowStore

__all__ = ["DEFAULT_TTL", "HOST", "LeaseKeeper", "is_alive", "process_start_time"]


class _Leases:
    """The workflow store's lease keys as a :class:`~durableflow.runtime.ownership.RecordStore`."""

    def __init__(self, store: WorkflowStore) -> None:
        self._store = store

    def read(self, name: str) -> tuple[LeaseRecord | None, bytes | None]:
        return self._store.read_lease(name)

    def create(self, name: str, record: LeaseRecord) -> bool:
        return self._store.create_lease(name, record)

    def swap(self, name: str, old: bytes, record: LeaseRecord) -> bool:
        return self._store.swap_lease(name, old, record)

    def delete(self, name: str) -> None:
        self._store.delete_lease(name)


class LeaseKeeper:
    """Claims, renews, checks and releases the leases of the workflows one Client runs.

    Args:
        store: where leases live.
        ttl: seconds a lease lives without renewal.
        clock: the wall clock written into leases as their expiry (tests skew it).
        identity: this machine's identity (tests pretend to be another machine).
    """

    def __init__(
        self,
        store: WorkflowStore,
        ttl: float = DEFAULT_TTL,
        *,
        clock: Callable[[], float] | None = None,
        identity: Identity | None = None,
    ) -> None:
        kwargs = {"clock": clock} if clock is not None else {}
        self._keeper = OwnershipKeeper(
            _Leases(store), LeaseRecord, ttl, what="lease", identity=identity, **kwargs
        )
        self.ttl = ttl
        self.owner = self._keeper.owner

    def claim(self, workflow_id: str, on_lost: Callable[[], None], *, wait: bool = True) -> None:
        """Become the runner of ``workflow_id`` (step 1); ``on_lost`` is called if it is lost.

        Args:
            workflow_id: the workflow.
            on_lost: called (from the heartbeat or :meth:`check`) when another runner took over.
            wait: for a lease of another machine that looks expired, wait (up to its TTL) until
                it has been seen unchanged for a TTL; False: refuse now, take it over at a
                later call once that observation is complete.

        Raises:
            WorkflowStillActiveError: a live runner owns it (or ownership is not decided yet).
        """
        why = self._keeper.take(workflow_id, on_lost, wait=wait)
        if why is not None:
            raise WorkflowStillActiveError(
                f"workflow {workflow_id!r} is running: lease {why}", workflow_id=workflow_id
            )

    def check(self, workflow_id: str) -> None:
        """Raise unless this runner still owns ``workflow_id`` (step 3; no I/O before the deadline).

        Raises:
            WorkflowStillActiveError: ownership was lost (``on_lost`` has been called).
        """
        self._keeper.check(workflow_id)

    def release(self, workflow_id: str) -> None:
        """Give up the lease (step 4): deleted if still ours, else recorded abandoned."""
        self._keeper.release(workflow_id)

    def renew_all(self) -> None:
        """Renew every held lease now (step 2)."""
        self._keeper.renew_all()

    def close(self) -> None:
        """Stop the heartbeat (held leases are released by their engines)."""
        self._keeper.close()
