"""Ownership records: who holds a workflow's lease or a worker's running slot (JSON).

The machine identity fields (``machine_id``, ``boot_id``, ``pid_ns``), ``ttl``, ``seq`` and
``boot_expires`` were added after the first release: records written without them read with
their defaults, and a reader treats such a record as held on another machine
(:mod:`durableflow.runtime.ownership`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

__all__ = ["LeaseRecord", "SlotRecord"]


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    """Who runs a workflow now (key ``lease``)."""

    owner: str
    """Unique id of the runner: host, pid, process start time and a random part."""
    host: str
    """Host name of the runner (for operators: liveness never trusts it)."""
    pid: int
    """Process id of the runner, in its PID namespace ``pid_ns``."""
    pid_start: str
    """The process's start time as the OS reports it (tells a reused pid apart)."""
    expires_at: float
    """Unix time (the holder's wall clock) after which the lease is void unless renewed: used
    only to *report* a remote owner dead, never to take over from one."""
    machine_id: str = ""
    """``/etc/machine-id`` of the holder's machine ("" where unknown)."""
    boot_id: str = ""
    """The holder kernel's boot id: two processes share a ``CLOCK_BOOTTIME`` only if equal."""
    pid_ns: int = 0
    """Inode of the holder's PID namespace: ``pid`` means the same process only if equal."""
    ttl: float = 0.0
    """Seconds the holder owns the lease after a renewal (0: unknown, an older writer)."""
    seq: int = 0
    """Grows with every record the holder writes: a renewal always changes the bytes."""
    boot_expires: float = 0.0
    """The expiry on the holder's ``CLOCK_BOOTTIME`` (compared only on the same boot)."""

    def to_bytes(self) -> bytes:
        """JSON bytes."""
        # A shallow dict of the (flat) fields: asdict() copies recursively, several times slower.
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    @staticmethod
    def _fields(data: dict[str, Any]) -> dict[str, Any]:
        return {
            "owner": str(data["owner"]),
            "host": str(data["host"]),
            "pid": int(data["pid"]),
            "pid_start": str(data["pid_start"]),
            "expires_at": float(data["expires_at"]),
            "machine_id": str(data.get("machine_id", "")),
            "boot_id": str(data.get("boot_id", "")),
            "pid_ns": int(data.get("pid_ns", 0)),
            "ttl": float(data.get("ttl", 0.0)),
            "seq": int(data.get("seq", 0)),
            "boot_expires": float(data.get("boot_expires", 0.0)),
        }

    @classmethod
    def from_bytes(cls, raw: bytes) -> LeaseRecord:
        """Parse JSON bytes."""
        return cls(**cls._fields(json.loads(raw)))


@dataclasses.dataclass(frozen=True)
class SlotRecord(LeaseRecord):
    """A worker's running slot (key ``slots/<n>``): a lease on one of ``max_running_workflows``."""

    workflow_id: str = ""
    """The workflow the slot's holder runs (for operators)."""

    @classmethod
    def from_bytes(cls, raw: bytes) -> SlotRecord:
        """Parse JSON bytes."""
        data = json.loads(raw)
        return cls(**cls._fields(data), workflow_id=str(data.get("workflow_id", "")))
