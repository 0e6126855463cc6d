"""RunRecords: read, parse, seal and write the run record of a workflow, fenced.

The base of :class:`~durableflow.storage.status_index.StatusIndex`, whose docstring tells the
fencing (``expected``) of every write of a run record.
"""

from __future__ import annotations

from typing import Any

from durableflow.errors import CheckpointCorruptError, StorageError, WorkflowStillActiveError
from durableflow.model.records import RunRecord
from durableflow.storage import layout
from durableflow.storage._creation import CreationIndex

__all__ = ["UNFENCED", "RecordChangedError", "RunRecords"]


class _Unfenced:
    def __repr__(self) -> str:
        return "UNFENCED"


UNFENCED: Any = _Unfenced()
"""``expected`` of :meth:`WorkflowStore.set_status` for tools and tests: write unconditionally."""


class RecordChangedError(WorkflowStillActiveError):
    """The run record is not what this runner last wrote: another runner took the workflow."""


class RunRecords(CreationIndex):
    """Run records of a storage: reads, and writes fenced on their stored bytes."""

    def read_run(self, workflow_id: str) -> RunRecord | None:
        """The run record, or None if the workflow does not exist."""
        return self.read_run_raw(workflow_id)[0]

    def read_run_raw(self, workflow_id: str) -> tuple[RunRecord | None, bytes | None]:
        """The run record and its stored bytes (the ``expected`` of a fenced write)."""
        key = layout.run_key(workflow_id)
        raw = self._get(key, workflow_id)
        if raw is None:
            return None, None
        return self._parse_run(raw, workflow_id, key), raw

    def _parse_run(self, raw: bytes, workflow_id: str, key: str) -> RunRecord:
        what = f"run record of workflow {workflow_id!r} ({key})"
        try:
            data = self.serializer.open(raw, key=key, what=what)
        except CheckpointCorruptError as err:
            raise type(err)(str(err), workflow_id=workflow_id, key=key) from None
        try:
            return RunRecord.from_bytes(data)
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointCorruptError(
                f"run record of workflow {workflow_id!r} is corrupt ({key}): {err}",
                workflow_id=workflow_id,
                key=key,
            ) from err

    def write_run(self, record: RunRecord) -> None:
        """Overwrite the run record without changing the status index."""
        self._put(layout.run_key(record.workflow_id), self._seal_run(record), record.workflow_id)

    def _seal_run(self, record: RunRecord) -> bytes:
        """The stored bytes of a run record: sealed (signed) when a signing key is set."""
        return self.serializer.seal(record.to_bytes(), key=layout.run_key(record.workflow_id))

    def _write_run(self, workflow_id: str, data: bytes, expected: bytes | None) -> None:
        key = layout.run_key(workflow_id)
        if expected is UNFENCED:
            self._put(key, data, workflow_id)
            return
        if expected is None:
            won = self._create(key, data, workflow_id, None)
        else:
            try:
                won = self.storage.swap(key, expected, data)
            except StorageError as err:
                raise self._tag(err, workflow_id, None, key) from None
        if not won:
            if expected is None:  # a rival stored it first: our creation entry goes
                created_at = self._parse_run(data, workflow_id, key).created_at
                self._delete_created(workflow_id, created_at)
            raise RecordChangedError(
                f"workflow {workflow_id!r}: its run record changed under this runner (another "
                "runner took the workflow over); stopping without writing",
                workflow_id=workflow_id,
            )
