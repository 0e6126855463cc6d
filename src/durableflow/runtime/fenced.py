"""FencedRecord: the run record as one runner writes it, every write fenced.

A runner's writes of the run record go through here (see the fencing rules in
:mod:`durableflow.runtime.engine`):

1. before each write, the runner's ownership is checked (``fence``: its lease deadline);
2. the write is a compare-and-swap on the bytes this runner last read or wrote (create-only
   for a new workflow), through the status index protocol (:meth:`WorkflowStore.set_status`);
3. the runner's first write raises the record's ``epoch`` (its fencing token) by one.

A runner that was taken over finds the record changed at step 2 and writes nothing more
(:class:`~durableflow.storage.store.RecordChangedError`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from durableflow.model.records import RunRecord
from durableflow.model.status import WorkflowStatus
from durableflow.storage.store import WorkflowStore

__all__ = ["FencedRecord"]


class FencedRecord:
    """One runner's view of a workflow's run record.

    Args:
        store: the workflow store.
        record: the run record as read (or, for a new workflow, about to be written).
        fence: raises if this runner's ownership ended.
    """

    def __init__(self, store: WorkflowStore, record: RunRecord, fence: Callable[[], None]) -> None:
        self.store = store
        self.record = record
        """The record as this runner last read or wrote it."""
        self.raw: bytes | None = None
        """Its stored bytes: the expected value of the next write (None: no record yet)."""
        self.stored: WorkflowStatus | None = record.status
        """The status stored now (None before the first write of a new workflow)."""
        self.claimed = False
        """Whether this runner wrote the record yet (and raised its epoch)."""
        self._fence = fence

    def adopt(self, record: RunRecord | None, raw: bytes | None) -> None:
        """Start from ``record`` as read under the lease (None: a new workflow)."""
        if record is not None:
            self.record = record
            self.stored = record.status
        else:
            self.stored = None
        self.raw = raw

    def mark(self, status: WorkflowStatus, *, specs: bytes | None = None) -> None:
        """Store the status a run has before it starts (RUNNING, or PENDING when queued).

        ``specs``: a new workflow's encoded root specs, stored with its first status.
        """
        changes: dict[str, Any] = {"end_time": None, "error": None}
        if status is WorkflowStatus.RUNNING:
            changes["start_time"] = time.time()
        if not self.claimed:  # this runner's first write: a new fencing token
            changes["epoch"] = self.record.epoch + 1
        self.set(status, specs=specs, **changes)
        self.claimed = True

    def set(self, status: WorkflowStatus, *, specs: bytes | None = None, **changes: Any) -> None:
        """Write ``status`` (and ``changes``) as this runner: fenced (steps 1 and 2)."""
        self._fence()  # 1
        record = self.record.replace(status=status, updated_at=time.time(), **changes)
        self.raw = self.store.set_status(  # 2
            record, self.stored, specs=specs, expected=self.raw
        )
        self.record = record
        self.stored = status
