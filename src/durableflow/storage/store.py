"""WorkflowStore: workflow records to and from storage keys, and the status index protocol.

The status index lets ``list_all(status)`` be a listing instead of a read of every workflow:
an empty entry ``index/<STATUS>/<wid>`` per workflow, beside its run record.

Readers' rule: for a workflow with a dirty marker ``index/dirty/<wid>`` or an entry under an
active status (RUNNING, PENDING), the run record decides its status, whatever other entries
it has; readers always list the active entries and the markers, whatever status they want.
So an active entry guards a change away from it the way a dirty marker does.

A status change (:meth:`WorkflowStore.set_status`) takes one of three paths. "Sync" makes
every write before it durable (:meth:`Storage.batch`: one directory fsync per directory on file
storage instead of one per write); a write "without sync" may be undone by a power cut
(:meth:`Storage.volatile`), never by a killed process. A crash at any point, a killed process
or a power cut, leaves a state that reads as the old or the new status:

A. The first status of a new workflow, an active one (``old`` None, RUNNING or PENDING):

   1. put the root task specs, if given, and the entry ``index/<NEW>/<wid>``; sync (one
      batch);
   2. put the run record; sync.

   A crash after 1 leaves specs and an entry with no run record: readers skip it, and the
   workflow does not exist (running its id again starts it afresh and overwrites the specs).

B. From an active status (``old`` RUNNING or PENDING, no dirty marker):

   1. put the run record and the entry ``index/<NEW>/<wid>``; sync (both, in one batch);
   2. delete ``index/<OLD>/<wid>``, without sync.

   Until step 2 the old active entry makes readers trust the run record, which is the old or
   the new one. If step 2 is lost, the leftover active entry still only sends readers to the
   run record, which says NEW; path C removes it later.

C. Every other change (from FAILED, RESUMABLE, SUCCESSFUL or CANCELED; from nothing to an
   inactive status; or when a dirty marker shows an interrupted change):

   1. put the dirty marker ``index/dirty/<wid>`` (old and new status); sync;
   2. put the run record and the entry ``index/<NEW>/<wid>``, delete the entries of the old
      status and of the active statuses (of every status after an interrupted change); sync;
   3. delete the dirty marker, without sync: a leftover marker only sends readers (and the
      next change, through path C) to the run record.

Fencing: the run record is written only by the holder of the workflow's lease, and every such
write is conditional on the bytes that holder last read or wrote (``expected``): create-only for
a new workflow (path A), compare-and-swap after that. A runner paused past its lease and taken
over finds the record changed (the new holder wrote it when it claimed, with a higher
``epoch``) and writes nothing further: :class:`RecordChangedError`. Index entries are written
only after the record write they follow succeeded.

Each numbered step is a fault-injection point of the crash tests.
"""

from __future__ import annotations

import json
import time
from typing import Any

from durableflow.errors import (
    CheckpointCorruptError,
    SerializationError,
    StorageError,
    WorkflowStillActiveError,
)
from durableflow.model.dag import FlatDAG
from durableflow.model.records import LeaseRecord, RunRecord, TaskErrorRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.storage import layout
from durableflow.storage.base import Storage
from durableflow.storage.serializer import Serializer

__all__ = ["UNFENCED", "RecordChangedError", "WorkflowStore"]

_FORWARD = "forward"


_TOMBSTONE = b'{"to":null,"delete":true}'


def _is_tombstone(raw: bytes) -> bool:
    """A dirty marker that marks a delete in progress (no status to go to)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("to") is None


class _Unfenced:
    def __repr__(self) -> str:
        return "UNFENCED"


UNFENCED: Any = _Unfenced()
"""``expected`` of :meth:`WorkflowStore.set_status` for tools and tests: write unconditionally."""


class RecordChangedError(WorkflowStillActiveError):
    """The run record is not what this runner last wrote: another runner took the workflow."""


class WorkflowStore:
    """Typed access to everything stored for workflows.

    Args:
        storage: where the bytes go.
        serializer: how values become bytes (checksums, optional signatures).
    """

    def __init__(self, storage: Storage, serializer: Serializer | None = None) -> None:
        self.storage = storage
        self.serializer = serializer or Serializer()

    # --- run record -----------------------------------------------------------------------
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

    def set_status(
        self,
        record: RunRecord,
        old: WorkflowStatus | None,
        *,
        specs: bytes | None = None,
        expected: bytes | None = UNFENCED,
    ) -> bytes:
        """Write ``record`` (with its new status) following the index protocol above.

        Args:
            record: the run record to store.
            old: the status stored now (None if the workflow has no run record yet).
            specs: a new workflow's root specs (from :meth:`encode_specs`), stored before the
                run record, with path A's first sync.
            expected: the fence: the run record's bytes as this writer last read or wrote them
                (None: there must be no run record yet); ``UNFENCED`` writes unconditionally.

        Returns:
            The bytes of the run record now stored (the next write's ``expected``).

        Raises:
            RecordChangedError: the record is no longer ``expected``; nothing more is written.
        """
        wid = record.workflow_id
        new = record.status
        storage = self.storage
        new_key = layout.index_key(new.value, wid)
        data = self._seal_run(record)
        # An earlier change interrupted before its last step may have left entries anywhere.
        interrupted = self._get(layout.dirty_key(wid), wid) is not None
        if not interrupted and old is None and new in ACTIVE:  # A
            with storage.batch():  # A1
                if specs is not None:
                    self._first_specs(wid, specs, fenced=expected is not UNFENCED)
                self._put(new_key, b"", wid)
            self._write_run(wid, data, expected)  # A2
            return data
        if specs is not None:
            self.put_specs(wid, layout.ROOT_BATCH, specs)
        if not interrupted and old in ACTIVE:  # B
            with storage.batch():  # B1
                self._write_run(wid, data, expected)
                self._put(new_key, b"", wid)
            if old is not new:
                with storage.volatile():  # B2
                    self._delete(layout.index_key(old.value, wid), wid)
        else:  # C
            marker = json.dumps({"from": old.value if old else None, "to": new.value}).encode()
            self._put(layout.dirty_key(wid), marker, wid)  # C1
            with storage.batch():  # C2
                self._write_run(wid, data, expected)
                self._put(new_key, b"", wid)
                for status in WorkflowStatus:
                    if status is not new and (status is old or status in ACTIVE or interrupted):
                        self._delete(layout.index_key(status.value, wid), wid)
            with storage.volatile():  # C3
                self._delete(layout.dirty_key(wid), wid)
        return data

    def _first_specs(self, workflow_id: str, specs: bytes, *, fenced: bool) -> None:
        """Store a new workflow's root specs, create-only when fenced.

        The caller cleared leftovers under its lease, so an existing batch can only be a
        rival's that took the id over.
        """
        if not fenced:
            self.put_specs(workflow_id, layout.ROOT_BATCH, specs)
            return
        key = layout.spec_key(workflow_id, layout.ROOT_BATCH)
        if not self._create(key, specs, workflow_id, None):
            raise RecordChangedError(
                f"workflow {workflow_id!r}: another runner stored it first; stopping without "
                "writing",
                workflow_id=workflow_id,
            )

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
            raise RecordChangedError(
                f"workflow {workflow_id!r}: its run record changed under this runner (another "
                "runner took the workflow over); stopping without writing",
                workflow_id=workflow_id,
            )

    def list_index(self, status: WorkflowStatus) -> list[str]:
        """Ids of workflows whose index entry says ``status``."""
        start = len(layout.index_prefix(status.value))
        return [key[start:] for key in self.storage.list(layout.index_prefix(status.value))]

    def list_dirty(self) -> list[str]:
        """Ids of workflows with a status change in flight (or interrupted)."""
        prefix = layout.dirty_prefix()
        return [key[len(prefix) :] for key in self.storage.list(prefix)]

    # --- specs ----------------------------------------------------------------------------
    def write_specs(self, workflow_id: str, batch: str, dag: FlatDAG) -> None:
        """Store the specs of one DAG (``root``, or the id of the task that continued into it).

        Raises:
            SerializationError: naming the task and argument that cannot be pickled;
                nothing is written then.
        """
        self.put_specs(workflow_id, batch, self.encode_specs(workflow_id, dag, batch))

    def create_specs(self, workflow_id: str, batch: str, dag: FlatDAG) -> FlatDAG:
        """Store a continuation's specs create-only; return the stored DAG (first writer wins).

        A runner paused past its lease and a runner that took over may both store the
        continuation of one task: both go on with the first one stored, as with checkpoints.
        """
        key = layout.spec_key(workflow_id, batch)
        if self._create(key, self.encode_specs(workflow_id, dag, batch), workflow_id, batch):
            return dag
        raw = self._get(key, workflow_id, batch)
        if raw is None:  # deleted meanwhile: the workflow is being deleted
            raise StorageError(
                f"workflow {workflow_id!r}: specs of {batch!r} vanished", workflow_id=workflow_id
            )
        stored: FlatDAG = self._load(raw, workflow_id, batch, key)
        return stored

    def encode_specs(self, workflow_id: str, dag: FlatDAG, batch: str = layout.ROOT_BATCH) -> bytes:
        """The stored form of a DAG's specs; raises SerializationError naming the culprit."""
        key = layout.spec_key(workflow_id, batch)
        try:
            return self.serializer.dumps(dag, {"tasks": len(dag.specs)}, key=key)
        except SerializationError:
            raise self._find_unpicklable(workflow_id, dag) from None

    def put_specs(self, workflow_id: str, batch: str, data: bytes) -> None:
        """Store specs encoded by :meth:`encode_specs`."""
        self._put(layout.spec_key(workflow_id, batch), data, workflow_id)

    def _find_unpicklable(self, workflow_id: str, dag: FlatDAG) -> SerializationError:
        for spec in dag.specs:
            parts: list[tuple[str, Any]] = [("function", spec.func), ("options", spec.options)]
            parts += [(f"argument {i}", a) for i, a in enumerate(spec.args)]
            parts += [(f"argument {k!r}", v) for k, v in spec.kwargs.items()]
            for label, value in parts:
                try:
                    self.serializer.dumps(value)
                except SerializationError as err:
                    return SerializationError(
                        f"workflow {workflow_id!r}, task {spec.task_id!r}: {label} cannot be "
                        f"pickled: {err}",
                        workflow_id=workflow_id,
                        task_id=spec.task_id,
                        argument=label,
                    )
        return SerializationError(
            f"workflow {workflow_id!r}: the DAG cannot be pickled", workflow_id=workflow_id
        )

    def read_specs(self, workflow_id: str) -> dict[str, FlatDAG]:
        """Every stored spec batch, by batch name."""
        prefix = layout.specs_prefix(workflow_id)
        batches = {}
        for key in self.storage.list(prefix):
            raw = self._get(key, workflow_id)
            if raw is None:
                continue
            batches[key[len(prefix) :]] = self._load(raw, workflow_id, None, key)
        return batches

    # --- outputs --------------------------------------------------------------------------
    def write_output(
        self, workflow_id: str, task_id: str, value: Any, header: dict[str, Any] | None = None
    ) -> bool:
        """Store a task's checkpoint, create-only; False if one was already there.

        Raises:
            SerializationError: the output cannot be pickled (names the task).
        """
        try:
            data = self.serializer.dumps(value, header, key=layout.output_key(workflow_id, task_id))
        except SerializationError as err:
            raise SerializationError(
                f"workflow {workflow_id!r}, task {task_id!r}: output cannot be pickled: {err}",
                workflow_id=workflow_id,
                task_id=task_id,
                argument="output",
            ) from err
        return self._create(layout.output_key(workflow_id, task_id), data, workflow_id, task_id)

    def write_forward(
        self, workflow_id: str, task_id: str, child: str, header: dict[str, Any]
    ) -> bool:
        """Store that a task's output is its continuation root ``child``'s output."""
        return self.write_output(workflow_id, task_id, None, {**header, _FORWARD: child})

    def has_output(self, workflow_id: str, task_id: str) -> bool:
        """Whether the task's checkpoint exists."""
        return self._get(layout.output_key(workflow_id, task_id), workflow_id) is not None

    def list_done(self, workflow_id: str) -> set[str]:
        """Ids of tasks with a checkpoint."""
        prefix = layout.outputs_prefix(workflow_id)
        return {key[len(prefix) :] for key in self.storage.list(prefix)}

    def read_output_header(self, workflow_id: str, task_id: str) -> dict[str, Any] | None:
        """The checkpoint's header (times, attempts), or None if there is no checkpoint."""
        key = layout.output_key(workflow_id, task_id)
        raw = self._get(key, workflow_id, task_id)
        if raw is None:
            return None
        try:
            what = self._what(workflow_id, task_id, key)
            return self.serializer.unwrap(raw, what=what, key=key)[0]
        except CheckpointCorruptError as err:
            raise type(err)(str(err), workflow_id=workflow_id, task_id=task_id, key=key) from None

    def read_output(self, workflow_id: str, task_id: str) -> Any:
        """A task's output, following continuations.

        Raises:
            KeyError: no checkpoint for the task (or its continuation).
            CheckpointCorruptError: naming workflow, task and key.
        """
        current = task_id
        for _ in range(1_000_000):
            key = layout.output_key(workflow_id, current)
            raw = self._get(key, workflow_id, current)
            if raw is None:
                raise KeyError(current)
            header, value = self._load_with_header(raw, workflow_id, current, key)
            if _FORWARD not in header:
                return value
            current = header[_FORWARD]
        raise CheckpointCorruptError(
            f"continuation chain of task {task_id!r} does not end", workflow_id=workflow_id
        )

    # --- task errors ----------------------------------------------------------------------
    def write_task_error(self, workflow_id: str, record: TaskErrorRecord) -> None:
        """Store the last failed attempt of a task."""
        self._put(layout.error_key(workflow_id, record.task_id), record.to_bytes(), workflow_id)

    def read_task_error(self, workflow_id: str, task_id: str) -> TaskErrorRecord | None:
        """The last failed attempt of a task, if any."""
        raw = self._get(layout.error_key(workflow_id, task_id), workflow_id, task_id)
        if raw is None:
            return None
        try:
            return TaskErrorRecord.from_bytes(raw)
        except (ValueError, KeyError, TypeError):
            return None  # informational only: a garbled error record must not block anything

    def list_task_errors(self, workflow_id: str) -> list[str]:
        """Ids of tasks with a recorded failed attempt."""
        prefix = layout.errors_prefix(workflow_id)
        return [key[len(prefix) :] for key in self.storage.list(prefix)]

    # --- lease and cancel -------------------------------------------------------------------
    def read_lease(self, workflow_id: str) -> tuple[LeaseRecord | None, bytes | None]:
        """The lease and its raw bytes (for compare-and-swap); (None, None) if absent.

        A garbled lease is returned as (None, raw) so that a runner can take it over.
        """
        raw = self._get(layout.lease_key(workflow_id), workflow_id)
        if raw is None:
            return None, None
        try:
            return LeaseRecord.from_bytes(raw), raw
        except (ValueError, KeyError, TypeError):
            return None, raw

    # A lease is written without power-cut durability (Storage.volatile): a power cut kills
    # every runner of the machine whose storage lost it, and a lost or garbled lease reads as
    # "no live owner" (RESUMABLE), which is what the workflow then is. Create-only and
    # compare-and-swap keep their atomicity, which is what makes a lease exclusive.
    def create_lease(self, workflow_id: str, lease: LeaseRecord) -> bool:
        """Claim a free lease; False if one exists."""
        with self.storage.volatile():
            return self._create(layout.lease_key(workflow_id), lease.to_bytes(), workflow_id, None)

    def swap_lease(self, workflow_id: str, old: bytes, lease: LeaseRecord) -> bool:
        """Replace the lease if it still is ``old``."""
        key = layout.lease_key(workflow_id)
        try:
            with self.storage.volatile():
                return self.storage.swap(key, old, lease.to_bytes())
        except StorageError as err:
            raise self._tag(err, workflow_id, None, key) from None

    def delete_lease(self, workflow_id: str) -> None:
        """Remove the lease."""
        with self.storage.volatile():
            self._delete(layout.lease_key(workflow_id), workflow_id)

    def request_cancel(self, workflow_id: str) -> None:
        """Ask the runner to cancel."""
        self._put(layout.cancel_key(workflow_id), str(time.time()).encode(), workflow_id)

    def cancel_requested(self, workflow_id: str) -> bool:
        """Whether a cancel request is stored."""
        return self._get(layout.cancel_key(workflow_id), workflow_id) is not None

    # --- whole workflows ----------------------------------------------------------------------
    def delete_workflow(self, workflow_id: str) -> None:
        """Remove everything stored for a workflow; the caller holds its lease.

        Protocol. The tombstone is the workflow's dirty marker saying "to: nothing": readers
        already read the run record of every workflow with a dirty marker (the status index's
        readers' rule), so at every step ``get_status`` and ``list_all`` agree: the old status
        until step 3, no workflow after it. A crash after any step leaves the tombstone, and the
        next delete, run, resume or prune of the id finishes the job; none adopts a leftover.

        1. put the tombstone ``index/dirty/<wid>`` = ``{"to": null}`` (sync);
        2. delete the workflow's index entries, every status;
        3. delete the run record: from here on the workflow does not exist for any reader;
        4. delete everything else under the workflow's folder except the lease;
        5. delete the tombstone;
        6. (the caller) release the lease: the lease is the last key of the workflow.
        """
        wid = workflow_id
        self._put(layout.dirty_key(wid), _TOMBSTONE, wid)  # 1
        with self.storage.batch():  # 2
            for status in WorkflowStatus:
                self._delete(layout.index_key(status.value, wid), wid)
        self._clear(wid, tombstone=True)  # 3, 4, 5

    def clear_leftovers(self, workflow_id: str) -> bool:
        """Remove what an interrupted delete or first write left under an id with no run record.

        Called under the lease by a new run of the id (so that it never adopts an old
        checkpoint) and by ``delete`` of an id with no run record. Costs one listing (and one
        read) when there is nothing: a new workflow's folder is empty.

        Returns:
            True if anything was there.
        """
        wid = workflow_id
        lease = layout.lease_key(wid)
        prefix = layout.workflow_prefix(wid)
        try:
            keys = [key for key in self.storage.list(prefix) if key != lease]
        except StorageError as err:
            raise self._tag(err, wid, None, prefix) from None
        tombstone = self.is_deleting(wid)
        if not keys and not tombstone:
            return False
        self.delete_workflow(wid)  # a leftover first write left an index entry beside its specs
        return True

    def _clear(self, workflow_id: str, *, tombstone: bool) -> None:
        """Steps 3-5 of :meth:`delete_workflow`."""
        wid = workflow_id
        lease = layout.lease_key(wid)
        run = layout.run_key(wid)
        prefix = layout.workflow_prefix(wid)
        try:
            keys = [key for key in self.storage.list(prefix) if key != lease]
        except StorageError as err:
            raise self._tag(err, wid, None, prefix) from None
        if run in keys:
            self._delete(run, wid)  # 3
        for key in keys:  # 4
            if key != run:
                self._delete(key, wid)
        if tombstone:
            self._delete(layout.dirty_key(wid), wid)  # 5

    def is_deleting(self, workflow_id: str) -> bool:
        """Whether a delete of the workflow began and did not finish (its tombstone exists)."""
        raw = self._get(layout.dirty_key(workflow_id), workflow_id)
        return raw is not None and _is_tombstone(raw)

    def list_deleting(self) -> list[str]:
        """Ids whose delete began and did not finish."""
        return [
            wid
            for wid in self.list_dirty()
            if _is_tombstone(self._get(layout.dirty_key(wid), wid) or b"{}")
        ]

    # --- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _what(workflow_id: str, task_id: str | None, key: str) -> str:
        task = f", task {task_id!r}" if task_id else ""
        return f"stored value of workflow {workflow_id!r}{task} ({key})"

    def _load(self, raw: bytes, workflow_id: str, task_id: str | None, key: str) -> Any:
        return self._load_with_header(raw, workflow_id, task_id, key)[1]

    def _load_with_header(
        self, raw: bytes, workflow_id: str, task_id: str | None, key: str
    ) -> tuple[dict[str, Any], Any]:
        try:
            return self.serializer.loads_with_header(
                raw, what=self._what(workflow_id, task_id, key), key=key
            )
        except CheckpointCorruptError as err:
            raise type(err)(str(err), workflow_id=workflow_id, task_id=task_id, key=key) from None
        except SerializationError as err:
            raise SerializationError(str(err), workflow_id=workflow_id, task_id=task_id) from err

    @staticmethod
    def _tag(err: StorageError, workflow_id: str, task_id: str | None, key: str) -> StorageError:
        tagged = type(err)(
            f"workflow {workflow_id!r}: {err}",
            workflow_id=workflow_id,
            task_id=task_id,
            key=err.key or key,
        )
        tagged.__cause__ = err.__cause__
        return tagged

    def _get(self, key: str, workflow_id: str, task_id: str | None = None) -> bytes | None:
        try:
            return self.storage.get(key)
        except StorageError as err:
            raise self._tag(err, workflow_id, task_id, key) from None

    def _put(self, key: str, data: bytes, workflow_id: str) -> None:
        try:
            self.storage.put(key, data)
        except StorageError as err:
            raise self._tag(err, workflow_id, None, key) from None

    def _create(self, key: str, data: bytes, workflow_id: str, task_id: str | None) -> bool:
        try:
            return self.storage.create(key, data)
        except StorageError as err:
            raise self._tag(err, workflow_id, task_id, key) from None

    def _delete(self, key: str, workflow_id: str) -> None:
        try:
            self.storage.delete(key)
        except StorageError as err:
            raise self._tag(err, workflow_id, None, key) from None
