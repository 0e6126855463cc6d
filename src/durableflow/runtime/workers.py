"""Worker heartbeats: which ``durableflow worker`` processes serve a storage now.

A program that hands a workflow to the workers (``submit``, ``run_async(detached=True)``) returns
at once; if no worker serves the storage the workflow waits PENDING forever. To say so, every
worker keeps a heartbeat record at ``workers/<owner>``
(:func:`~durableflow.storage.layout.worker_key`): a
:class:`~durableflow.model.ownership.LeaseRecord` (JSON) with the worker's owner id, host, pid,
process start time, machine identity and an expiry. :func:`live_workers` reads them.

Protocol (:class:`WorkerHeartbeat`):

1. **Start**: delete the heartbeats of dead workers (what :func:`live_workers` ignores; best
   effort, housekeeping only), then write this worker's record with an expiry ``ttl`` ahead.
   The key names this process's unique owner id, so no other writer ever touches it: a plain
   ``put`` is enough, no create-only or compare-and-swap.
2. **Beat**: every ``ttl / 3`` seconds, write the record again with a later expiry (and a higher
   ``seq``). A failed write is logged and retried at the next beat; meanwhile readers see the
   old expiry, and once it passes the worker reads as gone, which is right: nothing shows it
   is alive.
3. **Stop** (a clean exit): stop beating, then delete the key. A killed worker leaves its record
   behind: readers ignore it at once on the same machine (its process is gone) and after its
   expiry (plus a margin) from other machines; the next worker that starts deletes it (step 1).

Heartbeats are volatile writes (:meth:`~durableflow.storage.base.Storage.volatile`): after a
power cut the workers that wrote them are gone anyway.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Any

from durableflow.errors import StorageError
from durableflow.model.ownership import LeaseRecord
from durableflow.runtime.ownership import (
    HOST,
    Identity,
    boottime,
    is_alive,
    process_start_time,
)
from durableflow.storage import layout
from durableflow.storage.base import Storage

__all__ = ["HEARTBEAT_TTL", "WorkerHeartbeat", "live_workers"]

log = logging.getLogger("durableflow.worker")

HEARTBEAT_TTL = 15.0
"""Seconds a heartbeat lives without renewal (a worker writes it every ``ttl / 3``)."""


def _read_all(storage: Storage) -> list[tuple[str, LeaseRecord | None]]:
    """Every heartbeat key with its record (None when it vanished or is garbled)."""
    found: list[tuple[str, LeaseRecord | None]] = []
    for key in storage.list(layout.workers_prefix()):
        raw = storage.get(key)
        if raw is None:
            continue  # its worker stopped while we listed
        try:
            record: LeaseRecord | None = LeaseRecord.from_bytes(raw)
        except (ValueError, KeyError, TypeError):
            record = None
        found.append((key, record))
    return found


def live_workers(storage: Storage, *, identity: Identity | None = None) -> list[dict[str, Any]]:
    """The workers serving ``storage`` now, by their heartbeats (oldest owner id first).

    A heartbeat counts while :func:`~durableflow.runtime.ownership.is_alive` says its writer
    lives: on this machine while its process runs (pid and start time) and the record has not
    expired; from another machine until its expiry plus a margin. Garbled records are skipped.

    Args:
        storage: the workflow storage.
        identity: this machine's identity (tests pretend to be another machine).

    Returns:
        One dict per live worker: ``owner``, ``host``, ``pid`` and ``expires_at`` (Unix time).

    Raises:
        StorageError: the storage cannot be listed or read.
    """
    live = []
    for _, record in _read_all(storage):
        if record is not None and is_alive(record, identity=identity):
            live.append(
                {
                    "owner": record.owner,
                    "host": record.host,
                    "pid": record.pid,
                    "expires_at": record.expires_at,
                }
            )
    return live


class WorkerHeartbeat:
    """Writes one worker's heartbeat record until stopped (module docstring: the protocol).

    Args:
        storage: the workflow storage the worker serves.
        ttl: seconds the record lives without renewal; it is rewritten every ``ttl / 3``.
    """

    def __init__(self, storage: Storage, ttl: float = HEARTBEAT_TTL) -> None:
        if ttl <= 0:
            raise ValueError(f"heartbeat ttl must be positive, got {ttl!r}")
        self.storage = storage
        self.ttl = ttl
        self._pid = os.getpid()
        self._pid_start = process_start_time(self._pid) or ""
        self.owner = f"{HOST}:{self._pid}:{self._pid_start}:{uuid.uuid4().hex[:12]}"
        self.key = layout.worker_key(self.owner)
        self._identity = Identity.local()
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self) -> LeaseRecord:
        """A fresh record expiring ``ttl`` from now (each with a higher ``seq``)."""
        self._seq += 1
        ident = self._identity
        return LeaseRecord(
            owner=self.owner,
            host=HOST,
            pid=self._pid,
            pid_start=self._pid_start,
            expires_at=time.time() + self.ttl,
            machine_id=ident.machine_id,
            boot_id=ident.boot_id,
            pid_ns=ident.pid_ns,
            ttl=self.ttl,
            seq=self._seq,
            boot_expires=boottime() + self.ttl,
        )

    def _write(self) -> bool:
        try:
            with self.storage.volatile():
                self.storage.put(self.key, self.record().to_bytes())
            return True
        except StorageError as err:
            log.warning("could not write the worker heartbeat (retrying): %s", err)
            return False

    def start(self) -> None:
        """Step 1: prune dead workers' records, write ours, start beating (idempotent)."""
        if self._thread is not None:
            return
        try:
            for key, record in _read_all(self.storage):  # 1
                if key != self.key and (record is None or not is_alive(record)):
                    self.storage.delete(key)
        except StorageError as err:
            log.warning("could not prune dead workers' heartbeats: %s", err)
        self._write()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._beat, name="durableflow-worker-heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self._write()  # 2

    def stop(self) -> None:
        """Step 3: stop beating and delete the record (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join()
        try:
            self.storage.delete(self.key)  # 3
        except StorageError as err:
            log.warning("could not delete the worker heartbeat (it expires by itself): %s", err)


def warn_if_no_worker(storage: Storage) -> None:
    """A submitted workflow waits for a worker: log a warning when none has been seen."""
    try:
        seen = live_workers(storage)
    except StorageError:
        return  # a hint must not fail a submit
    if not seen:
        logging.getLogger("durableflow").warning(
            "no durableflow worker seen on %s: start one with `durableflow worker` "
            "(the workflow stays PENDING until a worker runs it)",
            storage.url,
        )
