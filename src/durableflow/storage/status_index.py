"""StatusIndex: run records, the status index protocol, and the delete protocol.

The run records' reads and fenced writes are :class:`~durableflow.storage._runs.RunRecords`,
its base; the creation index is :mod:`durableflow.storage._creation`.

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
      1'. put the creation entry (:mod:`._creation`), without sync;
   2. put the run record; sync.

   A crash after 1 leaves specs and an entry with no run record: readers skip it, and the
   workflow does not exist (running its id again starts it afresh and overwrites the specs).

B. From an active status (``old`` RUNNING or PENDING, no dirty marker):

   1. put the run record and the entry ``index/<NEW>/<wid>``; sync (both, in one batch);
      1'. NEW inactive: read the run record again; if another runner changed it meanwhile
      (see Fencing), take the entry back and stop (:meth:`StatusIndex._recheck`);
   2. delete ``index/<OLD>/<wid>``, without sync.

   Until step 2 the old active entry makes readers trust the run record, which is the old or
   the new one. If step 2 is lost, the leftover active entry still only sends readers to the
   run record, which says NEW; path C removes it later.

C. Every other change (from FAILED, RESUMABLE, SUCCESSFUL or CANCELED; from nothing to an
   inactive status; or when a dirty marker shows an interrupted change):

   1. put the dirty marker ``index/dirty/<wid>`` (old and new status); sync;
      1'. a first status (``old`` None): as 1' of path A;
   2. put the run record and the entry ``index/<NEW>/<wid>``, delete the entries of the old
      status and of the active statuses (of every status after an interrupted change); sync;
      2'. as 1' of path B;
   3. delete the dirty marker, without sync: a leftover marker only sends readers (and the
      next change, through path C) to the run record.

Fencing: the run record is written only by the holder of the workflow's lease, and every such
write is conditional on the bytes that holder last read or wrote (``expected``): create-only for
a new workflow (path A), compare-and-swap after that. A runner paused past its lease and taken
over finds the record changed (the new holder wrote it when it claimed, with a higher
``epoch``) and writes nothing further: :class:`RecordChangedError`. Index entries are written
only after the record write they follow succeeded; a runner paused between the two and taken
over meanwhile finds the record changed when it reads it again (B1', C2') and takes its
inactive entry back. (A rival that changes the record to that very status between the delete
and the last read gets its entry put back; one that does so after the last read has written
its own entry after its own compare-and-swap.)

On an ordered storage (:attr:`Storage.ordered`: SQLite, where a power cut keeps a prefix of
the commits) the whole change is one :meth:`Storage.batch`: the syncs between steps only order
them, and the log orders them already, so one sync at the end gives the same states after a
power cut (a prefix of the steps) for one fsync instead of two.

Each numbered step is a fault-injection point of the crash tests.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

from durableflow.errors import CheckpointCorruptError, StorageError
from durableflow.model.records import RunRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.storage import layout
from durableflow.storage._runs import UNFENCED, RecordChangedError, RunRecords

__all__ = ["UNFENCED", "RecordChangedError", "StatusIndex"]

_TOMBSTONE = b'{"to":null,"delete":true}'


def _is_tombstone(raw: bytes) -> bool:
    """A dirty marker that marks a delete in progress (no status to go to)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("to") is None


class StatusIndex(RunRecords):
    """Run records and the status index of a storage (see the module docstring)."""

    def put_specs(self, workflow_id: str, batch: str, data: bytes) -> None:
        """Store specs encoded by :meth:`encode_specs`."""
        self._put(layout.spec_key(workflow_id, batch), data, workflow_id)

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
        data = self._seal_run(record)
        # An earlier change interrupted before its last step may have left entries anywhere.
        interrupted = self._get(layout.dirty_key(wid), wid) is not None
        # On an ordered storage a power cut keeps a prefix of the steps: each step's sync is
        # then only needed at the end, and the whole change shares one.
        with storage.batch() if storage.ordered else contextlib.nullcontext():
            return self._change(record, old, new, data, interrupted, specs, expected)

    def _change(
        self,
        record: RunRecord,
        old: WorkflowStatus | None,
        new: WorkflowStatus,
        data: bytes,
        interrupted: bool,
        specs: bytes | None,
        expected: bytes | None,
    ) -> bytes:
        """The paths A, B and C of the module docstring."""
        wid = record.workflow_id
        storage = self.storage
        new_key = layout.index_key(new.value, wid)
        if not interrupted and old is None and new in ACTIVE:  # A
            with storage.batch():  # A1
                if specs is not None:
                    self._first_specs(wid, specs, fenced=expected is not UNFENCED)
                self._put(new_key, b"", wid)
            self._put_created(wid, record.created_at)  # A1'
            self._write_run(wid, data, expected)  # A2
            return data
        if specs is not None:
            self.put_specs(wid, layout.ROOT_BATCH, specs)
        if not interrupted and old in ACTIVE:  # B
            with storage.batch():  # B1
                self._write_run(wid, data, expected)
                self._put(new_key, b"", wid)
            self._recheck(wid, new, data, expected)  # B1'
            if old is not new:
                with storage.volatile():  # B2
                    self._delete(layout.index_key(old.value, wid), wid)
        else:  # C
            marker = json.dumps({"from": old.value if old else None, "to": new.value}).encode()
            self._put(layout.dirty_key(wid), marker, wid)  # C1
            if old is None:
                self._put_created(wid, record.created_at)  # C1'
            with storage.batch():  # C2
                self._write_run(wid, data, expected)
                self._put(new_key, b"", wid)
                for status in WorkflowStatus:
                    if status is not new and (status is old or status in ACTIVE or interrupted):
                        self._delete(layout.index_key(status.value, wid), wid)
            self._recheck(wid, new, data, expected)  # C2'
            with storage.volatile():  # C3
                self._delete(layout.dirty_key(wid), wid)
        return data

    def _recheck(
        self, workflow_id: str, new: WorkflowStatus, data: bytes, expected: bytes | None
    ) -> None:
        """Steps B1' and C2': take back an inactive entry written after losing the workflow.

        The entry follows the record's compare-and-swap. A runner paused between the two,
        taken over (the new holder claims with a higher epoch, and may finish), then woken,
        writes an entry for a status the workflow no longer has; readers trust inactive
        entries, so it would list the workflow twice. The record is read again: if it is not
        the bytes just written and says another status (or is gone), the entry is deleted;
        then read once more, and the entry is put back if the record says ``new`` by now (the
        rival's own change to ``new`` raced the delete). Active entries only send readers to
        the record: nothing to check. Costs one read of the run record per status change to an
        inactive status.
        """
        if new in ACTIVE or expected is UNFENCED:
            return
        key = layout.run_key(workflow_id)
        current = self._get(key, workflow_id)
        if current == data:
            return  # still ours: the usual case
        if current is not None and self._parse_run(current, workflow_id, key).status is new:
            return  # the rival's record says the same status: the entry is right
        entry = layout.index_key(new.value, workflow_id)
        with self.storage.volatile():  # a stale entry that survives a power cut is this again
            self._delete(entry, workflow_id)
        again = self._get(key, workflow_id)
        if again is not None and self._parse_run(again, workflow_id, key).status is new:
            self._put(entry, b"", workflow_id)
        raise RecordChangedError(
            f"workflow {workflow_id!r}: its run record changed under this runner after it "
            "wrote it (another runner took the workflow over); its index entry is taken back",
            workflow_id=workflow_id,
        )

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

    def list_index(self, status: WorkflowStatus) -> list[str]:
        """Ids of workflows whose index entry says ``status``, sorted (one folder listing)."""
        return self.storage.list_children(layout.index_prefix(status.value))

    def list_dirty(self) -> list[str]:
        """Ids of workflows with a status change in flight (or interrupted), sorted."""
        return self.storage.list_children(layout.dirty_prefix())

    # --- whole workflows ----------------------------------------------------------------------
    def delete_workflow(
        self,
        workflow_id: str,
        expected: bytes | None = None,
        fence: Callable[[], None] | None = None,
    ) -> None:
        """Remove everything stored for a workflow; the caller holds its lease.

        Protocol. The commit point is step 1, a fenced write; the tombstone is then the
        workflow's dirty marker saying "to: nothing": readers already read the run record of
        every workflow with a dirty marker (the status index's readers' rule), so at every step
        ``get_status`` and ``list_all`` agree: the old status until step 4, no workflow after
        it. A crash after step 1 leaves a record marked ``deleting`` or the tombstone, and the
        next delete, run, resume or prune of the id finishes the job; none adopts a leftover.

        1. mark the run record ``deleting`` by compare-and-swap on ``expected`` (its bytes as
           read under the lease): a deleter paused past its lease, whose workflow was taken
           over meanwhile, fails here having written nothing (:class:`RecordChangedError`);
        2. put the tombstone ``index/dirty/<wid>`` = ``{"to": null}`` (sync);
        3. delete the workflow's index entries, every status, and its creation entry;
        4. delete the run record: from here on the workflow does not exist for any reader;
        5. delete everything else under the workflow's folder except the lease;
        6. delete the tombstone;
        7. (the caller) release the lease: the lease is the last key of the workflow.

        ``fence`` (the caller's ownership check) runs before each step.
        """
        wid = workflow_id
        check = fence or (lambda: None)
        record: RunRecord | None = None
        if expected is not None:
            check()
            record = self._parse_run(expected, wid, layout.run_key(wid))
            marked = record.replace(extra={**record.extra, "deleting": True})
            self._write_run(wid, self._seal_run(marked), expected)  # 1
        else:  # the stored record, if any, names the creation entry (a garbled one: a listing)
            with contextlib.suppress(CheckpointCorruptError):
                record = self.read_run(wid)
        check()
        self._put(layout.dirty_key(wid), _TOMBSTONE, wid)  # 2
        check()
        with self.storage.batch():  # 3
            for status in WorkflowStatus:
                self._delete(layout.index_key(status.value, wid), wid)
            self._delete_created(wid, None if record is None else record.created_at)
        check()
        self._clear(wid, tombstone=True)  # 4, 5, 6

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
        """Steps 4-6 of :meth:`delete_workflow`."""
        wid = workflow_id
        lease = layout.lease_key(wid)
        run = layout.run_key(wid)
        prefix = layout.workflow_prefix(wid)
        try:
            keys = [key for key in self.storage.list(prefix) if key != lease]
        except StorageError as err:
            raise self._tag(err, wid, None, prefix) from None
        if run in keys:
            self._delete(run, wid)  # 4
        for key in keys:  # 5
            if key != run:
                self._delete(key, wid)
        if tombstone:
            self._delete(layout.dirty_key(wid), wid)  # 6

    def is_deleting(self, workflow_id: str, record: RunRecord | None = None) -> bool:
        """Whether a delete of the workflow began and did not finish.

        Its run record (``record``, as read by the caller, if given) is marked ``deleting``, or
        its tombstone exists.
        """
        if record is not None and record.extra.get("deleting"):
            return True
        raw = self._get(layout.dirty_key(workflow_id), workflow_id)
        return raw is not None and _is_tombstone(raw)

    def list_deleting(self) -> list[str]:
        """Ids whose delete began and did not finish."""
        return [
            wid
            for wid in self.list_dirty()
            if _is_tombstone(self._get(layout.dirty_key(wid), wid) or b"{}")
        ]
