"""Ownership records: who holds a workflow's lease or a worker's running slot (JSON)."""

from __future__ import annotations

import dataclasses
import json

__all__ = ["LeaseRecord", "SlotRecord"]


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    """Who runs a workflow now (key ``lease``)."""

    owner: str
    """Unique id of the runner: host, pid, process start time and a random part."""
    host: str
    """Host name of the runner."""
    pid: int
    """Process id of the runner on ``host``."""
    pid_start: str
    """The process's start time as the OS reports it (tells a reused pid apart)."""
    expires_at: float
    """Unix time after which the lease is void unless renewed."""

    def to_bytes(self) -> bytes:
        """JSON bytes."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> LeaseRecord:
        """Parse JSON bytes."""
        data = json.loads(raw)
        return cls(
            str(data["owner"]),
            str(data["host"]),
            int(data["pid"]),
            str(data["pid_start"]),
            float(data["expires_at"]),
        )


@dataclasses.dataclass(frozen=True)
class SlotRecord(LeaseRecord):
    """A worker's running slot (key ``slots/<n>``): a lease on one of ``max_running_workflows``."""

    workflow_id: str = ""
    """The workflow the slot's holder runs (for operators)."""

    @classmethod
    def from_bytes(cls, raw: bytes) -> SlotRecord:
        """Parse JSON bytes."""
        data = json.loads(raw)
        return cls(
            str(data["owner"]),
            str(data["host"]),
            int(data["pid"]),
            str(data["pid_start"]),
            float(data["expires_at"]),
            str(data.get("workflow_id", "")),
        )
