"""The creation index: newest-first listings without a run record read per workflow (issue 17).

What ``WorkflowStore.set_status`` and ``delete_workflow`` leave under ``v1/created/``, and what
``list_workflows(newest_first=True)`` reads: the page's run records only when every workflow
has its entry, every candidate's record for workflows stored without one (older versions,
ids near 255 bytes), and the right order whatever stale entry is left.
"""

from __future__ import annotations

import pytest

from durableflow.errors import StorageUnavailableError
from durableflow.model.records import RunRecord
from durableflow.model.status import WorkflowStatus
from durableflow.runtime.listing import list_workflows
from durableflow.storage import layout
from durableflow.storage.memory import MemoryStorage
from durableflow.storage.store import UNFENCED, RecordChangedError, WorkflowStore
from durableflow.testing import FaultyStorage

S = WorkflowStatus


class CountingStorage(MemoryStorage):
    """Memory storage that counts the reads of run records."""

    def __init__(self) -> None:
        super().__init__()
        self.run_reads = 0

    def get(self, key: str) -> bytes | None:
        if key.endswith("/run"):
            self.run_reads += 1
        return super().get(key)


def _record(wid: str, created_at: float, status: WorkflowStatus = S.RUNNING) -> RunRecord:
    return RunRecord(wid, status, "root", created_at, created_at)


def _finish(store: WorkflowStore, wid: str, created_at: float) -> None:
    """A workflow through paths A and B, as a run leaves it: SUCCESSFUL."""
    raw = store.set_status(_record(wid, created_at), None, specs=b"specs", expected=None)
    store.set_status(_record(wid, created_at, S.SUCCESSFUL), S.RUNNING, expected=raw)


def _created(storage: MemoryStorage) -> list[str]:
    return storage.list_children(layout.created_prefix())


def _newest(store: WorkflowStore, **kwargs: object) -> list[str]:
    rows, _ = list_workflows(store, newest_first=True, **kwargs)  # type: ignore[arg-type]
    return [row.workflow_id for row in rows]


def test_a_first_status_puts_one_creation_entry_and_later_changes_none() -> None:
    storage = MemoryStorage()
    store = WorkflowStore(storage)
    _finish(store, "a", 10.5)
    # Path C from nothing (a fork's first status is RESUMABLE).
    store.set_status(_record("b", 20.0, S.RESUMABLE), None, expected=None)
    store.set_status(_record("b", 20.0, S.FAILED), S.RESUMABLE, expected=UNFENCED)
    assert _created(storage) == ["10.5~a", "20.0~b"]


def test_every_delete_path_removes_the_creation_entry() -> None:
    storage = MemoryStorage()
    store = WorkflowStore(storage)
    for i, wid in enumerate(["fenced", "pruned", "leftover"]):
        _finish(store, wid, float(i))
    _, raw = store.read_run_raw("fenced")
    store.delete_workflow("fenced", raw)  # the Client's delete: the record's bytes given
    store.delete_workflow("pruned")  # retention's: the stored record names the entry
    storage.delete(layout.run_key("leftover"))  # no record left: found by a listing
    store.delete_workflow("leftover")
    assert storage.list("") == []


def test_a_first_write_that_loses_its_record_to_a_rival_takes_its_entry_back() -> None:
    storage = MemoryStorage()
    store = WorkflowStore(storage)
    store.set_status(_record("w", 1.0), None, expected=None)
    with pytest.raises(RecordChangedError):
        store.set_status(_record("w", 2.0), None, expected=None)
    assert _created(storage) == ["1.0~w"]


def test_newest_first_reads_only_the_page_when_every_workflow_is_indexed() -> None:
    storage = CountingStorage()
    store = WorkflowStore(storage)
    order = [7, 3, 9, 0, 5, 1, 8, 2, 6, 4]  # creation order unrelated to ids
    for wid_number, created_at in enumerate(order):
        _finish(store, f"wf-{wid_number}", float(created_at))
    storage.run_reads = 0
    page = _newest(store, limit=3)
    assert page == ["wf-2", "wf-6", "wf-0"]  # created at 9, 8, 7
    assert storage.run_reads == 3
    assert _newest(store) == [f"wf-{order.index(t)}" for t in range(9, -1, -1)]


def test_workflows_stored_without_an_entry_are_placed_by_their_run_record() -> None:
    storage = CountingStorage()
    store = WorkflowStore(storage)
    for i in range(6):
        _finish(store, f"wf-{i}", float(i))
    for i in (1, 4):  # as an older version stored them
        storage.delete(layout.created_key(float(i), f"wf-{i}") or "")
    long_id = "x" * 253  # its entry's name would pass 255 bytes: it has none
    _finish(store, long_id, 2.5)
    assert long_id not in "".join(_created(storage))
    storage.run_reads = 0
    assert _newest(store, limit=4) == ["wf-5", "wf-4", "wf-3", long_id]
    assert storage.run_reads == 3 + 2  # the three without an entry, then the rest of the page


def test_a_stale_entry_never_misorders_a_page() -> None:
    storage = MemoryStorage()
    store = WorkflowStore(storage)
    for i in range(5):
        _finish(store, f"wf-{i}", float(i))
    # wf-1's own entry lost and an older version's leftover entry claiming it is the newest.
    storage.delete(layout.created_key(1.0, "wf-1") or "")
    storage.put(layout.created_key(99.0, "wf-1") or "", b"")
    assert _newest(store, limit=2) == ["wf-4", "wf-3"]
    # Two entries for one id (an interrupted first write's, then its own): its record decides.
    storage.put(layout.created_key(50.0, "wf-0") or "", b"")
    assert _newest(store) == ["wf-4", "wf-3", "wf-2", "wf-1", "wf-0"]


def test_since_and_cursors_follow_the_creation_index() -> None:
    storage = CountingStorage()
    store = WorkflowStore(storage)
    for i in range(8):
        _finish(store, f"wf-{i}", 100.0 + i)
    storage.run_reads = 0
    assert _newest(store, since=105.0) == ["wf-7", "wf-6", "wf-5"]
    assert storage.run_reads == 3  # the older ones are not read
    first, cursor = list_workflows(store, newest_first=True, limit=5)
    rest, last = list_workflows(store, newest_first=True, cursor=cursor)
    assert [r.workflow_id for r in first + rest] == [f"wf-{i}" for i in range(7, -1, -1)]
    assert last is None


@pytest.mark.parametrize("first", [S.RUNNING, S.RESUMABLE], ids=["path-A", "path-C"])
def test_a_first_write_stopped_after_its_creation_entry_leaves_no_workflow_nor_orphan(
    first: WorkflowStatus,
) -> None:
    inner = MemoryStorage()
    storage = FaultyStorage(inner, "create", key="/run", error=True)  # step 2: the run record
    store = WorkflowStore(storage)
    with pytest.raises(StorageUnavailableError):
        store.set_status(_record("w", 1.0, first), None, specs=b"specs", expected=None)
    assert _created(inner) == ["1.0~w"]  # step 1' was done
    assert store.read_run("w") is None
    assert _newest(store) == []
    storage.heal()
    store.clear_leftovers("w")  # what the next run of the id does first, under its lease
    assert _created(inner) == []
    store.set_status(_record("w", 2.0, first), None, specs=b"specs", expected=None)
    assert _newest(store) == ["w"]
    store.delete_workflow("w")
    assert inner.list("") == []
