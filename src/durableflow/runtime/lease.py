"""Ownership of a running workflow: an owner id and an expiry, in storage.

Protocol:

1. **Claim**: create the ``lease`` key create-only. If it exists and its owner is alive, the
   workflow is someone else's (WorkflowStillActiveError). If the owner is dead, replace the
   lease with compare-and-swap on its exact bytes: of several runners taking over one dead
   lease, exactly one succeeds.
2. **Renew**: a heartbeat thread swaps each held lease for one with a later expiry every
   ``ttl / 3`` seconds. A failed swap means another runner took over: the engine stops.
3. **Release**: after the final status is written, delete the lease if it is still ours.

An owner is alive while its lease has not expired and, on the same host, while its process
(pid *and* process start time, so a reused pid does not count) exists: a killed runner is seen
dead at once on its own host, and after ``ttl`` seconds everywhere.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from durableflow.errors import StorageError, WorkflowStillActiveError
from durableflow.model.records import LeaseRecord
from durableflow.storage.store import WorkflowStore

__all__ = ["LeaseKeeper", "is_alive", "process_start_time"]

log = logging.getLogger("durableflow")

DEFAULT_TTL = 30.0
HOST = socket.gethostname()


def process_start_time(pid: int) -> str | None:
    """The start time the OS reports for ``pid`` ("" where unknown), None if no such process.

    A zombie (killed, not yet reaped: common in containers without an init) counts as gone.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
        # Fields 3 (state) and 22, counted after the parenthesised command name (may hold spaces).
        fields = stat.rpartition(b")")[2].split()
        if fields[0] in (b"Z", b"X"):
            return None
        return fields[19].decode()
    except FileNotFoundError:
        return None
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


def is_alive(lease: LeaseRecord, now: float | None = None) -> bool:
    """Whether the lease's owner still runs the workflow."""
    if (now if now is not None else time.time()) >= lease.expires_at:
        return False
    if lease.host != HOST:
        return True
    started = process_start_time(lease.pid)
    if started is None:
        return False
    return not (started and lease.pid_start and started != lease.pid_start)


class LeaseKeeper:
    """Claims, renews and releases the leases of the workflows one Client runs.

    Args:
        store: where leases live.
        ttl: seconds a lease lives without renewal.
    """

    def __init__(self, store: WorkflowStore, ttl: float = DEFAULT_TTL) -> None:
        self._store = store
        self.ttl = ttl
        pid = os.getpid()
        self._pid_start = process_start_time(pid) or ""
        self.owner = f"{HOST}:{pid}:{self._pid_start}:{uuid.uuid4().hex[:12]}"
        self._held: dict[str, tuple[bytes, Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._renew_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def _record(self) -> LeaseRecord:
        return LeaseRecord(self.owner, HOST, os.getpid(), self._pid_start, time.time() + self.ttl)

    def claim(self, workflow_id: str, on_lost: Callable[[], None]) -> None:
        """Become the runner of ``workflow_id``; ``on_lost`` is called if the lease is lost.

        Raises:
            WorkflowStillActiveError: a live runner owns it.
        """
        record = self._record()
        raw = record.to_bytes()
        if not self._store.create_lease(workflow_id, record):
            current, current_raw = self._store.read_lease(workflow_id)
            if current is not None and current.owner == self.owner:
                raise WorkflowStillActiveError(
                    f"workflow {workflow_id!r} is already running in this process",
                    workflow_id=workflow_id,
                )
            if current is not None and is_alive(current):
                raise WorkflowStillActiveError(
                    f"workflow {workflow_id!r} is running under {current.owner}",
                    workflow_id=workflow_id,
                )
            if current_raw is None:
                if not self._store.create_lease(workflow_id, record):
                    raise WorkflowStillActiveError(
                        f"workflow {workflow_id!r} was just claimed by another runner",
                        workflow_id=workflow_id,
                    )
            elif not self._store.swap_lease(workflow_id, current_raw, record):
                raise WorkflowStillActiveError(
                    f"workflow {workflow_id!r} was just taken over by another runner",
                    workflow_id=workflow_id,
                )
        with self._lock:
            self._held[workflow_id] = (raw, on_lost)
            self._start_heartbeat()

    def release(self, workflow_id: str) -> None:
        """Give up the lease (deleted if still ours)."""
        # Serialised with renewals: a renewal's swap racing this delete could re-create the
        # lease, which would then read as alive until it expires.
        with self._renew_lock:
            with self._lock:
                held = self._held.pop(workflow_id, None)
            if held is None:
                return
            try:
                current, _ = self._store.read_lease(workflow_id)
                if current is not None and current.owner == self.owner:
                    self._store.delete_lease(workflow_id)
            except StorageError as err:
                log.warning(
                    "could not release the lease of %s (it expires by itself): %s", workflow_id, err
                )

    def holds(self, workflow_id: str) -> bool:
        """Whether this keeper holds the workflow's lease."""
        with self._lock:
            return workflow_id in self._held

    def _start_heartbeat(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._beat, name="durableflow-lease", daemon=True
            )
            self._thread.start()

    def _beat(self) -> None:
        while not self._closed:
            self._wake.wait(self.ttl / 3)
            self._wake.clear()
            if self._closed:
                return
            self.renew_all()

    def renew_all(self) -> None:
        """Renew every held lease now."""
        with self._lock:
            held = list(self._held.items())
        for workflow_id, (raw, on_lost) in held:
            record = self._record()
            with self._renew_lock:
                with self._lock:
                    if workflow_id not in self._held:
                        continue  # released meanwhile
                try:
                    ok = self._store.swap_lease(workflow_id, raw, record)
                except StorageError as err:
                    log.warning("lease renewal of %s failed, will retry: %s", workflow_id, err)
                    continue
                with self._lock:
                    if ok:
                        self._held[workflow_id] = (record.to_bytes(), on_lost)
                        continue
                    del self._held[workflow_id]
            log.error("lost the lease of workflow %s to another runner", workflow_id)
            on_lost()

    def close(self) -> None:
        """Stop the heartbeat (held leases are released by their engines)."""
        self._closed = True
        self._wake.set()
