"""One ownership primitive: exclusive, renewed records in storage (workflow leases, worker slots).

A record at a key says who owns it (:class:`~durableflow.model.ownership.LeaseRecord`): the
owner id, the process (pid, process start time) and the machine it runs on, identified by
machine id, kernel boot id and PID namespace -- never by host name, which containers and
machines called ``localhost`` share. :class:`OwnershipKeeper` claims, renews, checks and
releases such records; :mod:`durableflow.runtime.lease` and :mod:`durableflow.runtime.slots` are
its two users. Judging a holder (claim step 3, with its observation table) is
:mod:`durableflow.runtime.takeover`; the renewal thread is a :mod:`durableflow.runtime.heartbeat`.

Claim (:meth:`OwnershipKeeper.take`):

1. read the clock, then create the key create-only with a record expiring ``ttl`` later; on
   success the key is ours until our *deadline* = that clock reading + ``ttl`` - ``margin``;
2. the key exists: read it (absent again: back to 1 once; ours already: refused);
3. judge the holder. **Same machine** (machine id, boot id and PID namespace all equal ours): it
   is dead if it abandoned the record (see below), its process is gone or its pid was reused,
   or its expiry on ``CLOCK_BOOTTIME`` has passed -- one clock for both of us. **Another
   machine** (or an unknown one: an older or garbled record): the wall clocks of two machines
   are never compared; the holder is dead only once *this keeper* has seen the exact bytes
   unchanged for the holder's ``ttl`` on its own ``CLOCK_BOOTTIME`` (an observation table
   ``{key: (bytes, first seen)}``). With ``wait`` the claim polls for that observation when
   the record looks expired by the wall clock (at most the ``ttl`` and a poll); without, it
   records the observation and is refused until a later call completes it;
4. take it over by compare-and-swap on the exact bytes read: of several claimers one wins,
   and a holder that renewed meanwhile makes the swap fail (refused: still active).

Renew (:meth:`OwnershipKeeper.renew_all`, a heartbeat every ``ttl / 3`` seconds):

1. read the clock, then compare-and-swap our last bytes for a record with a later expiry
   (and a higher ``seq``, so the bytes always change);
2. success: the deadline moves to that clock reading + ``ttl`` - ``margin``. A renewal that
   succeeds after a pause restores ownership legitimately: nobody took over (the swap matched);
3. mismatch: another owner took over: forget the key and call its ``on_lost``; a storage error:
   keep the deadline and retry at the next beat.

Check (:meth:`OwnershipKeeper.check`, before every action of the owner):

1. before the deadline: go on (a clock read and a dict lookup, no I/O);
2. past it: one renewal, as above; success: go on;
3. failure: ownership is lost: forget the key, call ``on_lost`` and raise
   :class:`~durableflow.errors.WorkflowStillActiveError`.

Release (:meth:`OwnershipKeeper.release`), serialised with renewals of the key:

1. forget the key (no renewal touches it afterwards);
2. past the deadline: renew once first (if that fails, the key is someone else's: done);
3. read the key and delete it if it still holds our last bytes;
4. if the storage refuses (read-only, unreachable): *abandon* the record: remember it in this
   process and in a marker file of this machine (``$DURABLEFLOW_RUNTIME_DIR`` or
   ``/tmp/durableflow-<uid>``), so that this machine reads its owner dead at once (step 3 of
   claim) instead of waiting for the expiry.

Why a paused owner cannot act after a takeover (fencing): a claimer takes over only after the
owner's deadline has passed on the owner's own clock. On the same machine the two share
``CLOCK_BOOTTIME`` and the record's ``boot_expires`` is later than the owner's deadline. From
another machine the claimer first saw the bytes no earlier than the owner read its clock to
write them, and waited ``ttl`` after that, while the owner's deadline is ``ttl - margin`` after
its clock reading (the margin covers clock rate differences). An owner that wakes past its
deadline therefore renews (compare-and-swap, which fails if it was taken over) before acting.
Why a skewed clock cannot cause a takeover: no decision to take over compares wall clocks of
two machines; the wall clock only decides whether a claim waits, and what status to *report*.

Liveness for reporting (:func:`is_alive`): same machine as in claim step 3; another machine:
alive until its wall-clock expiry plus ``margin`` (RESUMABLE for a dead remote runner).
``CLOCK_BOOTTIME`` keeps counting through a suspend; where it is missing, ``time.monotonic``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from durableflow.errors import StorageError, WorkflowStillActiveError
from durableflow.model.ownership import LeaseRecord
from durableflow.runtime.heartbeat import Heartbeat
from durableflow.runtime.liveness import (
    DEFAULT_TTL,
    HOST,
    Identity,
    boottime,
    is_abandoned,
    is_alive,
    margin_of,
    mark_abandoned,
    process_start_time,
)
from durableflow.runtime.takeover import HolderJudge

__all__ = [
    "DEFAULT_TTL",
    "HOST",
    "Identity",
    "OwnershipKeeper",
    "RecordStore",
    "boottime",
    "is_abandoned",
    "is_alive",
    "mark_abandoned",
    "process_start_time",
]

log = logging.getLogger("durableflow")

R = TypeVar("R", bound=LeaseRecord)


class RecordStore(Protocol[R]):
    """Where one kind of ownership record lives, by name (a workflow id, a slot number)."""

    def read(self, name: str) -> tuple[R | None, bytes | None]:
        """The record and its raw bytes; (None, None) if absent, (None, raw) if garbled."""

    def create(self, name: str, record: R) -> bool:
        """Store ``record`` create-only; False if the key exists."""

    def swap(self, name: str, old: bytes, record: R) -> bool:
        """Replace the bytes ``old`` with ``record``; False if they changed."""

    def delete(self, name: str) -> None:
        """Remove the key."""


@dataclasses.dataclass
class _Held:
    record: LeaseRecord
    raw: bytes
    deadline: float
    on_lost: Callable[[], None]
    extra: dict[str, Any]
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    unsure: LeaseRecord | None = None
    """A record whose write failed with a storage error (it may have landed)."""


class OwnershipKeeper(Generic[R]):
    """Claims, renews, checks and releases records of one kind (module docstring: protocols).

    Args:
        records: where the records live.
        make: builds a record from the common fields and a holding's ``extra`` fields.
        ttl: seconds a record is owned after a renewal.
        what: "lease" or "slot", for messages and the heartbeat thread's name.
        clock: the wall clock (``time.time``), only for expiries and reporting; tests skew it.
        identity: this process's machine identity (tests pretend to be another machine).
    """

    def __init__(
        self,
        records: RecordStore[R],
        make: Callable[..., R],
        ttl: float = DEFAULT_TTL,
        *,
        what: str = "lease",
        clock: Callable[[], float] = time.time,
        identity: Identity | None = None,
    ) -> None:
        self._records = records
        self._make = make
        self.ttl = ttl
        self.margin = margin_of(ttl)
        self.what = what
        self._clock = clock
        self.identity = identity or Identity.local()
        self._pid = os.getpid()
        self._pid_start = process_start_time(self._pid) or ""
        self.owner = f"{HOST}:{self._pid}:{self._pid_start}:{uuid.uuid4().hex[:12]}"
        self._seq = 0
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._judge = HolderJudge(self.identity, ttl)
        self._heartbeat = Heartbeat(self.renew_all, ttl / 3, f"durableflow-{what}s")

    # --- records ------------------------------------------------------------------------------
    def _new_record(self, extra: dict[str, Any]) -> tuple[R, float]:
        """A fresh record and the clock reading it counts from (read before it is sent)."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        sent = boottime()
        ident = self.identity
        record = self._make(
            owner=self.owner,
            host=HOST,
            pid=self._pid,
            pid_start=self._pid_start,
            expires_at=self._clock() + self.ttl,
            machine_id=ident.machine_id,
            boot_id=ident.boot_id,
            pid_ns=ident.pid_ns,
            ttl=self.ttl,
            seq=seq,
            boot_expires=sent + self.ttl,
            **extra,
        )
        return record, sent

    def _hold(
        self, name: str, record: R, sent: float, on_lost: Callable[[], None], extra: dict[str, Any]
    ) -> None:
        held = _Held(record, record.to_bytes(), sent + self.ttl - self.margin, on_lost, extra)
        with self._lock:
            self._held[name] = held
        self._judge.forget(name)
        self._heartbeat.start()

    def holder_dead(self, name: str, record: R | None, raw: bytes) -> bool:
        """Claim step 3 without waiting: may ``raw`` at ``name`` be taken over now?"""
        return self._judge.holder_dead(name, record, raw)

    # --- claim --------------------------------------------------------------------------------
    def take(
        self,
        name: str,
        on_lost: Callable[[], None],
        *,
        extra: dict[str, Any] | None = None,
        wait: bool = True,
        create_only: bool = False,
        takeover_only: bool = False,
    ) -> str | None:
        """Claim ``name`` (see Claim in the module docstring); None if held now, else why not.

        ``create_only`` stops after step 1 (a free key or nothing); ``takeover_only`` starts at
        step 2 (the caller just found the key taken).
        """
        extra = extra or {}
        if not takeover_only:
            record, sent = self._new_record(extra)
            if self._records.create(name, record):  # 1
                self._hold(name, record, sent, on_lost, extra)
                return None
            if create_only:
                return "taken"
        current, raw = self._records.read(name)  # 2
        if raw is None:
            record, sent = self._new_record(extra)
            if self._records.create(name, record):
                self._hold(name, record, sent, on_lost, extra)
                return None
            return "just claimed by another owner"
        if current is not None and current.owner == self.owner and name in self._held:
            return "already held in this process"
        if not self.holder_dead(name, current, raw):  # 3
            remote = current is None or not self.identity.matches(current)
            looks_expired = current is None or not is_alive(
                current, self._clock(), identity=self.identity
            )
            if not (wait and remote and looks_expired):
                return f"held by {current.owner if current else 'an unreadable record'}"
            if not self._judge.wait_observed(name, current, raw, self._read_raw):
                return "changed meanwhile (renewed or released by its owner)"
        record, sent = self._new_record(extra)
        if not self._records.swap(name, raw, record):  # 4
            return "just taken over by another owner"
        log.info(
            "took over %s %s from %s", self.what, name, current.owner if current else "garbage"
        )
        self._hold(name, record, sent, on_lost, extra)
        return None

    def _read_raw(self, name: str) -> bytes | None:
        return self._records.read(name)[1]

    # --- renew, check -------------------------------------------------------------------------
    def _renew(self, name: str, held: _Held) -> bool | None:
        """Renewal steps 1-2 (caller holds ``held.lock``): True renewed, False lost, None unsure."""
        record, sent = self._new_record(held.extra)
        try:
            ok = self._records.swap(name, held.raw, record)  # 1
            if not ok and held.unsure is not None:  # an earlier renewal did land after all
                ok = self._records.swap(name, held.unsure.to_bytes(), record)
        except StorageError as err:
            log.warning("renewal of %s %s failed, will retry: %s", self.what, name, err)
            held.unsure = record
            return None
        if ok:  # 2
            held.record, held.raw = record, record.to_bytes()
            held.deadline = sent + self.ttl - self.margin
            held.unsure = None
        return ok

    def _lose(self, name: str, held: _Held, why: str) -> None:
        """Forget ``held`` and call its ``on_lost``, once (only if it still was held)."""
        with self._lock:
            if self._held.get(name) is not held:
                return
            del self._held[name]
        log.error("lost %s %s: %s", self.what, name, why)
        try:
            held.on_lost()
        except Exception:  # the heartbeat must go on for the other records
            log.exception("the on_lost callback of %s %s failed", self.what, name)

    def renew_all(self) -> None:
        """Renew every held record now (Renew steps 1-3)."""
        with self._lock:
            held = list(self._held.items())
        for name, entry in held:
            with entry.lock:
                if self._held.get(name) is not entry:
                    continue  # released meanwhile
                ok = self._renew(name, entry)
            if ok is False:  # 3
                self._lose(name, entry, "another owner took it over")

    def check(self, name: str, workflow_id: str | None = None) -> None:
        """Raise unless this keeper still owns ``name`` (Check steps 1-3).

        Raises:
            WorkflowStillActiveError: ownership was lost (``on_lost`` has been called).
        """
        held = self._held.get(name)
        if held is not None and boottime() < held.deadline:  # 1
            return
        wid = workflow_id if workflow_id is not None else name
        if held is None:
            raise WorkflowStillActiveError(
                f"{self.what} {name}: lost ownership (not held by this process)", workflow_id=wid
            )
        with held.lock:
            still = self._held.get(name) is held
            if still and boottime() < held.deadline:
                return  # the heartbeat renewed it meanwhile
            ok = self._renew(name, held) if still else False  # 2
        if ok:
            return
        if ok is None:  # the storage refused: we cannot tell, so we stop and give it up
            self._abandon(held)
        self._lose(name, held, "past its deadline and the renewal failed")  # 3
        raise WorkflowStillActiveError(
            f"{self.what} {name}: lost ownership (its deadline passed and it could not be "
            "renewed; another owner may run it now): stopping without writing",
            workflow_id=wid,
        )

    # --- release ------------------------------------------------------------------------------
    def release(self, name: str) -> None:
        """Give ``name`` up (Release steps 1-4); a no-op if not held."""
        with self._lock:
            held = self._held.pop(name, None)  # 1
        if held is None:
            return
        with held.lock:
            try:
                if boottime() >= held.deadline:  # 2
                    ok = self._renew(name, held)
                    if ok is None:
                        raise StorageError(f"could not renew {self.what} {name} to release it")
                    if not ok:
                        return
                _, raw = self._records.read(name)  # 3
                unsure = held.unsure.to_bytes() if held.unsure is not None else None
                if raw is not None and raw in (held.raw, unsure):
                    self._records.delete(name)
            except StorageError as err:  # 4
                log.warning(
                    "could not release %s %s (left for this machine to see abandoned): %s",
                    self.what,
                    name,
                    err,
                )
                self._abandon(held)

    def _abandon(self, held: _Held) -> None:
        mark_abandoned(held.record)
        if held.unsure is not None:
            mark_abandoned(held.unsure)

    def held(self) -> dict[str, dict[str, Any]]:
        """``{name: extra fields}`` of the records held now."""
        with self._lock:
            return {name: dict(entry.extra) for name, entry in self._held.items()}

    def close(self) -> None:
        """Stop the heartbeat (held records stay until released or expired)."""
        self._heartbeat.close()
