"""The creation index: one empty entry per workflow, its creation time in its name.

``v1/created/<created_at>~<wid>`` (:func:`~durableflow.storage.layout.created_key`) lets a
newest-first listing order every workflow from one folder listing instead of one run record
read per workflow. The entry follows the steps of :mod:`~durableflow.storage.status_index`:

- it is put with a workflow's first status, after the first index entry or dirty marker and
  before the run record (step 1' of paths A and C), so a run record written by this version
  has its entry (unless the name would pass 255 bytes: an id near the longest gets none);
  without sync: an entry that a power cut takes only sends readers to the run record;
- it is deleted in step 3 of the delete protocol, with the status index entries, before the
  run record, and by a first write whose create-only run record a rival stored first.

So an entry is a hint that readers check against the status index, never a source of ids:

- an id with no entry (stored by an older version, a long id): its run record is read;
- an id with several entries (a first write killed before its run record whose leftover was
  not cleared, then the id run again): its run record is read;
- an entry whose id has no run record (a first write killed before it): ignored.
"""

from __future__ import annotations

from durableflow.errors import StorageError
from durableflow.storage import layout
from durableflow.storage._access import KeyAccess

__all__ = ["CreationIndex"]


class CreationIndex(KeyAccess):
    """The creation index of a storage (see the module docstring); a base of StatusIndex."""

    def _put_created(self, workflow_id: str, created_at: float) -> None:
        """Put the entry of a workflow's first status, without sync (none for a long name)."""
        key = layout.created_key(created_at, workflow_id)
        if key is not None:
            with self.storage.volatile():
                self._put(key, b"", workflow_id)

    def _delete_created(self, workflow_id: str, created_at: float | None) -> None:
        """Delete a workflow's entry: the one of ``created_at``, else every one of the id.

        ``created_at`` None (no run record left to say it) costs a listing of the index.
        """
        if created_at is not None:
            key = layout.created_key(created_at, workflow_id)
            if key is not None:
                self._delete(key, workflow_id)
            return
        prefix = layout.created_prefix()
        try:
            names = self.storage.list_children(prefix)
        except StorageError as err:
            raise self._tag(err, workflow_id, None, prefix) from None
        for name in names:
            parsed = layout.parse_created(name)
            if parsed is not None and parsed[1] == workflow_id:
                self._delete(prefix + name, workflow_id)

    def list_created(self) -> dict[str, float]:
        """Creation time by workflow id, from one listing; ids with several entries left out."""
        times: dict[str, float] = {}
        seen_twice: set[str] = set()
        parse = layout.parse_created
        for name in self.storage.list_children(layout.created_prefix()):
            parsed = parse(name)
            if parsed is None:
                continue
            created_at, workflow_id = parsed
            if workflow_id in times:
                seen_twice.add(workflow_id)
            times[workflow_id] = created_at
        for workflow_id in seen_twice:
            del times[workflow_id]
        return times
