"""Persisted records, as frozen dataclasses with their JSON form.

Each field says what it holds; a record read back from storage must mean the same to every
version that reads this layout.
"""

from __future__ import annotations

import dataclasses
import json
import traceback
from typing import Any

from durableflow.model.ownership import LeaseRecord, SlotRecord
from durableflow.model.status import WorkflowStatus

__all__ = [
    "ErrorInfo",
    "LeaseRecord",
    "RunRecord",
    "SlotRecord",
    "TaskErrorRecord",
    "check_metadata",
]

# Ownership records live in model/ownership.py; re-exported here for old imports.


@dataclasses.dataclass(frozen=True)
class ErrorInfo:
    """A failure, readable without unpickling anything."""

    type: str
    """Qualified name of the exception class."""
    message: str
    """str() of the exception."""
    traceback: str = ""
    """The formatted traceback, for operators."""
    task_id: str | None = None
    """The task that raised it, if a task did."""

    @classmethod
    def from_exception(cls, err: BaseException, task_id: str | None = None) -> ErrorInfo:
        """Describe ``err``."""
        kind = type(err)
        return cls(
            type=f"{kind.__module__}.{kind.__qualname__}",
            message=str(err),
            traceback="".join(traceback.format_exception(kind, err, err.__traceback__)),
            task_id=task_id,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ErrorInfo:
        """Read the JSON form."""
        return cls(**{f.name: data.get(f.name, "") for f in dataclasses.fields(cls)})

    def summary(self) -> str:
        """One line: type and message."""
        return f"{self.type.rpartition('.')[2]}: {self.message}"


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """The run record of one workflow (key ``run``)."""

    workflow_id: str
    """The workflow's id."""
    status: WorkflowStatus
    """The last status a runner wrote (RUNNING may be stale: readers check the lease)."""
    root_task_id: str
    """The task whose output is the workflow's output."""
    created_at: float
    """When the workflow was first submitted (Unix time)."""
    updated_at: float
    """When this record was last written."""
    start_time: float | None = None
    """When the current (or last) run started."""
    end_time: float | None = None
    """When it reached SUCCESSFUL, FAILED or CANCELED."""
    user_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The ``metadata`` given to run()."""
    error: ErrorInfo | None = None
    """Why it is FAILED or RESUMABLE, when known."""
    runtime_env: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The environment recorded at submission (Python, packages, task source fingerprints)."""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Fields of later versions, kept when this version rewrites the record."""
    epoch: int = 0
    """The fencing token: raised by one each time a runner claims the workflow and writes its
    first status; every later write of that runner is a compare-and-swap on the record it wrote,
    so a runner that was taken over finds the record changed and stops."""

    def to_bytes(self) -> bytes:
        """JSON bytes."""
        # A shallow dict: asdict() deep-copies runtime_env (100+ packages), 10x the cost.
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["status"] = self.status.value
        data["error"] = self.error.to_json() if self.error else None
        data["layout"] = 1
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> RunRecord:
        """Parse JSON bytes; raises ValueError (or KeyError) on anything malformed."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("run record is not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        extra = {k: v for k, v in data.items() if k not in known and k != "layout"}
        fields = {k: v for k, v in data.items() if k in known}
        fields["status"] = WorkflowStatus(fields["status"])
        fields["error"] = ErrorInfo.from_json(fields["error"]) if fields.get("error") else None
        fields["extra"] = {**fields.get("extra", {}), **extra}
        return cls(**fields)

    def replace(self, **changes: Any) -> RunRecord:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class TaskErrorRecord:
    """The last failed attempt of a task (key ``errors/<task_id>``)."""

    task_id: str
    attempts: int
    """Attempts made so far."""
    error: ErrorInfo
    time: float
    """When the attempt failed."""
    final: bool | None = None
    """True: no attempt follows (the task failed or its error was caught); False: it was
    retried; None: written by a version that did not say."""

    def to_bytes(self) -> bytes:
        """JSON bytes."""
        data: dict[str, Any] = {"task_id": self.task_id, "attempts": self.attempts}
        data["time"] = self.time
        data["error"] = self.error.to_json()
        if self.final is not None:
            data["final"] = self.final
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> TaskErrorRecord:
        """Parse JSON bytes."""
        data = json.loads(raw)
        final = data.get("final")
        return cls(
            data["task_id"],
            int(data["attempts"]),
            ErrorInfo.from_json(data["error"]),
            data["time"],
            final if isinstance(final, bool) else None,
        )


def check_metadata(metadata: dict[str, Any] | None, workflow_id: str) -> dict[str, Any]:
    """The user metadata of a run, checked: a JSON-serializable dict (None: empty).

    Raises:
        ValueError: not a dict (as Ray raised), or not JSON-serializable.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata of workflow {workflow_id!r} must be a dict")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"metadata of workflow {workflow_id!r} must be JSON-serializable: {err}"
        ) from None
    return metadata
