"""Running slots: ``max_running_workflows`` enforced across every worker on one storage.

There are ``limit`` slots, keys ``slots/0`` .. ``slots/<limit-1>``; a worker runs a workflow
only while it holds one. A slot is an ownership record like a workflow lease, kept by the same
:class:`~durableflow.runtime.ownership.OwnershipKeeper` (same owner identity, liveness,
heartbeat, fencing and release rules). Protocol:

1. **Acquire**, before claiming a workflow: create slot ``n`` create-only, for ``n`` from 0; the
   first success is ours. If every slot key exists, take over one whose holder is dead by
   compare-and-swap on the exact bytes read (of several workers racing for one dead slot
   exactly one wins). Dead means, for a holder on this machine (machine id, boot id and PID
   namespace equal), that its process is gone, it abandoned the slot, or its expiry passed on
   the shared ``CLOCK_BOOTTIME``; for a holder on another machine, that this worker has seen
   the slot's bytes unchanged for a whole TTL on its own clock, over its polls (never a wall
   clock comparison, never a wait: acquire does not block). No slot: start nothing.
2. **Claim the workflow** (its own lease). If that fails (another worker got it first), release
   the slot at once (step 4).
3. **Renew**: the heartbeat swaps every held slot for one with a later expiry every ``ttl / 3``
   seconds. A failed swap means another worker took the slot over (this one looked dead): the
   ``on_lost`` callback stops the workflow run under it, leaving it RESUMABLE.
4. **Release**, after the workflow's run has ended (its final status written, its lease freed):
   delete the slot if it still holds our last bytes -- serialised with the renewal of that slot,
   so a renewal's compare-and-swap cannot re-create a released slot. If the storage refuses,
   the slot is recorded abandoned on this machine (its workers take it over at once).

Why the limit holds: a slot key is held by one owner at a time (create-only and
compare-and-swap both have exactly one winner), there are ``limit`` slot keys, and a workflow
runs under a worker only between steps 1 and 4 of its slot. A worker frozen past its slot's
deadline is taken over (step 1) only after that deadline, and its run stops when it wakes
(step 3 and the workflow lease's own fencing). Workers must all use the same ``limit``;
workflows run by programs (``workflow.run``) rather than workers take no slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from durableflow.model.ownership import SlotRecord
from durableflow.runtime.ownership import DEFAULT_TTL, Identity, OwnershipKeeper
from durableflow.storage.base import Storage
from durableflow.storage.slots import SlotStore

__all__ = ["SlotKeeper"]

log = logging.getLogger("durableflow")


class _Slots:
    """The slot keys as a :class:`~durableflow.runtime.ownership.RecordStore`."""

    def __init__(self, storage: Storage) -> None:
        self.store = SlotStore(storage)

    def read(self, name: str) -> tuple[SlotRecord | None, bytes | None]:
        return self.store.read(int(name))

    def create(self, name: str, record: SlotRecord) -> bool:
        return self.store.create(int(name), record)

    def swap(self, name: str, old: bytes, record: SlotRecord) -> bool:
        return self.store.swap(int(name), old, record)

    def delete(self, name: str) -> None:
        self.store.delete(int(name))


class SlotKeeper:
    """Acquires, renews and releases one worker's slots.

    Args:
        storage: the workflow storage shared by the workers.
        limit: ``max_running_workflows`` across all workers.
        ttl: seconds a slot lives without renewal.
        identity: this machine's identity (tests pretend to be another machine).
    """

    def __init__(
        self,
        storage: Storage,
        limit: int,
        ttl: float = DEFAULT_TTL,
        *,
        identity: Identity | None = None,
    ) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_running_workflows must be a positive int, got {limit!r}")
        self._slots = _Slots(storage)
        self._keeper = OwnershipKeeper(self._slots, SlotRecord, ttl, what="slot", identity=identity)
        self.limit = limit
        self.ttl = ttl
        self.owner = self._keeper.owner

    def acquire(self, workflow_id: str, on_lost: Callable[[], None]) -> int | None:
        """Take a free slot for ``workflow_id`` (step 1); None if none is free now."""
        extra = {"workflow_id": workflow_id}
        for slot in range(self.limit):  # 1: a free slot, create-only
            if self._keeper.take(str(slot), on_lost, extra=extra, create_only=True) is None:
                return slot
        for slot in range(self.limit):  # 1: else a dead holder's, by compare-and-swap
            if (
                self._keeper.take(str(slot), on_lost, extra=extra, wait=False, takeover_only=True)
                is None
            ):
                return slot
        return None

    def release(self, slot: int) -> None:
        """Free a slot this keeper holds (step 4)."""
        self._keeper.release(str(slot))

    def check(self, slot: int) -> None:
        """Raise unless this worker still owns ``slot`` (no I/O before its deadline).

        Raises:
            WorkflowStillActiveError: the slot was lost (``on_lost`` has been called).
        """
        held = self._keeper.held().get(str(slot), {})
        self._keeper.check(str(slot), held.get("workflow_id"))

    def held(self) -> dict[int, str]:
        """``{slot: workflow_id}`` of the slots this keeper holds."""
        return {int(name): str(extra["workflow_id"]) for name, extra in self._keeper.held().items()}

    def maybe_free(self) -> bool:
        """Cheap check (one listing) whether a slot is free, or taken over by step 1 now.

        A slot of another machine's worker counts once its TTL has been observed (the
        observation goes on at every call).
        """
        taken = self._slots.store.taken()
        if len([s for s in taken if s < self.limit]) < self.limit:
            return True
        mine = self.held()
        for slot in range(self.limit):
            if slot in mine:
                continue
            current, raw = self._slots.read(str(slot))
            if raw is None or self._keeper.holder_dead(str(slot), current, raw):
                return True
        return False

    def renew_all(self) -> None:
        """Renew every held slot now (step 3)."""
        self._keeper.renew_all()

    def close(self) -> None:
        """Stop the heartbeat and free every held slot."""
        self._keeper.close()
        for slot in list(self.held()):
            self.release(slot)
