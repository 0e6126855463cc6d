"""Running slots: ``max_running_workflows`` enforced across every worker on one storage.

There are ``limit`` slots, keys ``slots/0`` .. ``slots/<limit-1>``; a worker runs a workflow
only while it holds one. Protocol:

1. **Acquire**, before claiming a workflow: create slot ``n`` create-only, for ``n`` from 0; the
   first success is ours. If every slot key exists, take over one whose holder is dead (its
   lease expired, or on this host its process is gone) by compare-and-swap on the exact bytes
   read: of several workers racing for one dead slot exactly one wins. No slot: start nothing.
2. **Claim the workflow** (its own lease). If that fails (another worker got it first), release
   the slot at once.
3. **Renew**: a heartbeat swaps every held slot for one with a later expiry every ``ttl / 3``
   seconds. A failed swap means another worker took the slot over (this one looked dead): the
   ``on_lost`` callback stops the workflow run under it, leaving it RESUMABLE.
4. **Release**, after the workflow's run has ended (its final status written, its lease freed):
   delete the slot if it is still ours.

Why the limit holds: a slot key is held by one owner at a time (create-only and
compare-and-swap both have exactly one winner), there are ``limit`` slot keys, and a workflow
runs under a worker only between steps 1 and 4 of its slot. The one exception is the lease
exception of every lease protocol: a worker frozen longer than ``ttl`` loses its slot and stops
its run when it wakes (step 3), so for at most one renewal period a slot can have two users.
Workers must all use the same ``limit``; workflows run by programs (``workflow.run``) rather than
workers take no slot.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

from durableflow.errors import StorageError
from durableflow.model.records import SlotRecord
from durableflow.runtime.lease import DEFAULT_TTL, HOST, is_alive, process_start_time
from durableflow.storage.base import Storage
from durableflow.storage.schedules import SlotStore

__all__ = ["SlotKeeper"]

log = logging.getLogger("durableflow")


class SlotKeeper:
    """Acquires, renews and releases one worker's slots.

    Args:
        storage: the workflow storage shared by the workers.
        limit: ``max_running_workflows`` across all workers.
        ttl: seconds a slot lives without renewal.
    """

    def __init__(self, storage: Storage, limit: int, ttl: float = DEFAULT_TTL) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_running_workflows must be a positive int, got {limit!r}")
        self._slots = SlotStore(storage)
        self.limit = limit
        self.ttl = ttl
        pid = os.getpid()
        self._pid_start = process_start_time(pid) or ""
        self.owner = f"{HOST}:{pid}:{self._pid_start}:{uuid.uuid4().hex[:12]}"
        self._held: dict[int, tuple[bytes, str, Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def _record(self, workflow_id: str) -> SlotRecord:
        return SlotRecord(
            self.owner, HOST, os.getpid(), self._pid_start, time.time() + self.ttl, workflow_id
        )

    def acquire(self, workflow_id: str, on_lost: Callable[[], None]) -> int | None:
        """Take a free slot for ``workflow_id`` (step 1); None if all are taken."""
        record = self._record(workflow_id)
        raw = record.to_bytes()
        got: int | None = None
        for slot in range(self.limit):
            if self._slots.create(slot, record):
                got = slot
                break
        if got is None:
            for slot in range(self.limit):
                current, current_raw = self._slots.read(slot)
                if current_raw is None:
                    won = self._slots.create(slot, record)
                elif current is None or not is_alive(current):
                    won = self._slots.swap(slot, current_raw, record)
                    if won:
                        log.info(
                            "took over slot %d of a dead worker (%s)",
                            slot,
                            current.owner if current else "garbled record",
                        )
                else:
                    continue
                if won:
                    got = slot
                    break
        if got is not None:
            with self._lock:
                self._held[got] = (raw, workflow_id, on_lost)
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._beat, name="durableflow-slots", daemon=True
                    )
                    self._thread.start()
        return got

    def release(self, slot: int) -> None:
        """Free a slot this keeper holds (step 4)."""
        with self._lock:
            held = self._held.pop(slot, None)
        if held is None:
            return
        try:
            current, _ = self._slots.read(slot)
            if current is not None and current.owner == self.owner:
                self._slots.delete(slot)
        except StorageError as err:
            log.warning("could not free slot %d (it expires by itself): %s", slot, err)

    def held(self) -> dict[int, str]:
        """``{slot: workflow_id}`` of the slots this keeper holds."""
        with self._lock:
            return {slot: wid for slot, (_, wid, _) in self._held.items()}

    def maybe_free(self) -> bool:
        """Cheap check (one listing) whether a slot might be free or taken over now."""
        taken = self._slots.taken()
        if len([s for s in taken if s < self.limit]) < self.limit:
            return True
        with self._lock:
            mine = set(self._held)
        for slot in range(self.limit):
            if slot in mine:
                continue
            current, raw = self._slots.read(slot)
            if raw is None or current is None or not is_alive(current):
                return True
        return False

    def _beat(self) -> None:
        while not self._closed:
            self._wake.wait(self.ttl / 3)
            self._wake.clear()
            if self._closed:
                return
            self.renew_all()

    def renew_all(self) -> None:
        """Renew every held slot now (step 3)."""
        with self._lock:
            held = list(self._held.items())
        for slot, (raw, workflow_id, on_lost) in held:
            record = self._record(workflow_id)
            try:
                ok = self._slots.swap(slot, raw, record)
            except StorageError as err:
                log.warning("renewal of slot %d failed, will retry: %s", slot, err)
                continue
            with self._lock:
                if slot not in self._held:
                    continue
                if ok:
                    self._held[slot] = (record.to_bytes(), workflow_id, on_lost)
                    continue
                del self._held[slot]
            log.error("lost slot %d to another worker; stopping workflow %s", slot, workflow_id)
            on_lost()

    def close(self) -> None:
        """Stop the heartbeat and free every held slot."""
        self._closed = True
        self._wake.set()
        for slot in list(self.held()):
            self.release(slot)
