"""Who owns a record and whether it is alive: machine identity, process checks, abandonment.

The rules that :mod:`durableflow.runtime.ownership` applies (its docstring has the protocols):

- An owner is identified by its machine -- machine id (``/etc/machine-id``), kernel boot id and
  PID namespace inode -- and its process: pid and process start time (a reused pid does not
  count). The host name is written for operators only: containers sharing a network, and
  machines all called ``localhost``, share it.
- **Same machine** (all three identity fields equal, boot id and namespace known): the holder is
  dead at once if its process is gone or it abandoned the record (:func:`mark_abandoned`), and
  once its expiry on ``CLOCK_BOOTTIME`` (one clock for both, counting through a suspend) passed.
- **Another machine**, or an unknown one (a record written before these fields, a garbled
  one): nothing local can be trusted. :func:`is_alive` reports it alive until its wall-clock
  expiry plus a margin (so a dead remote runner reads RESUMABLE); taking it over needs the
  claimer's own observation (:class:`~durableflow.runtime.ownership.OwnershipKeeper`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from durableflow.model.ownership import LeaseRecord

__all__ = [
    "DEFAULT_TTL",
    "HOST",
    "Identity",
    "boottime",
    "holder_dead_here",
    "is_abandoned",
    "is_alive",
    "margin_of",
    "mark_abandoned",
    "process_start_time",
]

log = logging.getLogger("durableflow")

DEFAULT_TTL = 30.0
HOST = socket.gethostname()


def boottime() -> float:
    """Seconds on ``CLOCK_BOOTTIME`` (counts through a suspend), else ``time.monotonic()``."""
    return _boottime()


def _make_boottime() -> Callable[[], float]:
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is not None:
        try:
            time.clock_gettime(clock)
            return functools.partial(time.clock_gettime, clock)
        except OSError:  # pragma: no cover - kernels without it
            pass
    return time.monotonic  # pragma: no cover


_boottime = _make_boottime()


def margin_of(ttl: float) -> float:
    """The safety margin of a ``ttl``: an owner stops ``margin`` before others may take over."""
    return ttl / 10


def _read_first(*paths: str) -> str:
    for path in paths:
        try:
            with open(path) as handle:
                value = handle.read().strip()
        except OSError:
            continue
        if value:
            return value
    return ""


@dataclasses.dataclass(frozen=True)
class Identity:
    """The machine a process runs on, as far as processes and clocks are concerned."""

    machine_id: str
    boot_id: str
    pid_ns: int

    @staticmethod
    def local() -> Identity:
        """This process's identity ("" / 0 for what the OS does not tell)."""
        return _local_identity()

    def matches(self, record: LeaseRecord) -> bool:
        """True if ``record``'s holder shares this machine's clock and process table."""
        return (
            bool(self.boot_id)
            and self.pid_ns != 0
            and record.boot_id == self.boot_id
            and record.pid_ns == self.pid_ns
            and record.machine_id == self.machine_id
        )


@functools.cache
def _local_identity() -> Identity:
    try:
        pid_ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        pid_ns = 0
    return Identity(
        _read_first("/etc/machine-id", "/var/lib/dbus/machine-id"),
        _read_first("/proc/sys/kernel/random/boot_id"),
        pid_ns,
    )


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


# --- abandoned records ------------------------------------------------------------------------
_abandoned: set[str] = set()


def _token(record: LeaseRecord) -> str:
    return hashlib.sha256(f"{record.owner}\0{record.seq}".encode()).hexdigest()[:40]


def _marker_dir() -> Path | None:
    """This user's marker folder, made private; None if it is not ours (then: in-process only)."""
    return _checked_dir(
        os.environ.get("DURABLEFLOW_RUNTIME_DIR") or f"/tmp/durableflow-{os.getuid()}"
    )


@functools.lru_cache(maxsize=8)
def _checked_dir(name: str) -> Path | None:
    path = Path(name)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return None
    if not path.is_dir() or path.is_symlink() or info.st_uid != os.getuid():
        log.warning("%s is not a private folder of this user: abandonment markers are off", path)
        return None
    return path


def mark_abandoned(record: LeaseRecord) -> None:
    """Remember that ``record``'s holder gave it up without deleting it (storage refused)."""
    token = _token(record)
    _abandoned.add(token)
    folder = _marker_dir()
    if folder is None:
        return
    now = boottime()
    try:
        for old in folder.glob("abandoned-*"):  # prune what expired (or is of an older boot)
            boot_id, _, expires = old.read_text().partition(" ")
            if boot_id != Identity.local().boot_id or float(expires or 0) < now:
                old.unlink(missing_ok=True)
        (folder / f"abandoned-{token}").write_text(f"{record.boot_id} {record.boot_expires}")
    except (OSError, ValueError) as err:
        log.warning("could not write the abandonment marker in %s: %s", folder, err)


def is_abandoned(record: LeaseRecord) -> bool:
    """True if this machine's holder of ``record`` gave it up (see :func:`mark_abandoned`)."""
    token = _token(record)
    if token in _abandoned:
        return True
    folder = _marker_dir()
    return folder is not None and (folder / f"abandoned-{token}").exists()


# --- liveness ---------------------------------------------------------------------------------
def holder_dead_here(record: LeaseRecord) -> bool:
    """Claim step 3 on the same machine: abandoned, process gone or reused, or expired."""
    if is_abandoned(record):
        return True
    started = process_start_time(record.pid)
    if started is None or (started and record.pid_start and started != record.pid_start):
        return True
    if record.boot_expires > 0:
        return boottime() >= record.boot_expires
    return time.time() >= record.expires_at


def is_alive(
    lease: LeaseRecord, now: float | None = None, *, identity: Identity | None = None
) -> bool:
    """Whether the owner of ``lease`` still holds it, for *reporting* a status.

    Same machine: its process lives, it did not abandon the record and its expiry (one clock)
    has not passed. Another machine: until the wall-clock expiry plus a margin (``now``: this
    reader's ``time.time()``). Taking over is stricter (:meth:`OwnershipKeeper.take`).
    """
    if (identity or Identity.local()).matches(lease):
        return not holder_dead_here(lease)
    current = now if now is not None else time.time()
    return current < lease.expires_at + margin_of(lease.ttl if lease.ttl > 0 else DEFAULT_TTL)
