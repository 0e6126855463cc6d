"""Listings read the status index once and no run record of a workflow at rest (issue 17).

Stores of a few hundred finished workflows, written as the status index protocol leaves them
at rest (run record and index entry), plus workflows caught mid-change; the storage counts
the reads. Small and fast: the 100,000-workflow timings are ``python -m benchmarks
--scenarios management``'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from durableflow import Client, WorkflowStatus, task
from durableflow.runtime.reader import Reader
from durableflow.storage import layout
from durableflow.storage.base import Storage
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage

N = 300


def _one(x: int) -> int:
    return x


one = task(_one)


class ReadCounter(Storage):
    """Passes everything through, counting the reads of single values."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.gets: list[str] = []

    @property
    def url(self) -> str:
        return self.inner.url

    def get(self, key: str) -> bytes | None:
        self.gets.append(key)
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def put_many(self, items):  # type: ignore[no-untyped-def]
        self.inner.put_many(items)

    def create(self, key: str, data: bytes) -> bool:
        return self.inner.create(key, data)

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        return self.inner.swap(key, expected, data)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def list_children(self, folder: str) -> list[str]:
        return self.inner.list_children(folder)

    def close(self) -> None:
        self.inner.close()


def _wid(i: int) -> str:
    return f"wf-{i:05d}"


@pytest.fixture(params=["file", "sqlite", "memory"])
def counted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadCounter]:
    url = {
        "file": f"file://{tmp_path / 'store'}?fsync=false",
        "sqlite": f"sqlite://{tmp_path / 'store.db'}?fsync=false",
        "memory": "memory://",
    }[request.param]
    storage = ReadCounter(open_storage(url))
    with Client(storage) as client:
        client.run(one.bind(0), workflow_id=_wid(0))
    store = WorkflowStore(storage)
    template = store.read_run(_wid(0))
    assert template is not None
    items = []
    for i in range(1, N):
        status = "FAILED" if i % 10 == 0 else "SUCCESSFUL"
        record = template.replace(workflow_id=_wid(i), status=WorkflowStatus(status))
        items.append((layout.run_key(record.workflow_id), record.to_bytes()))
        items.append((layout.index_key(status, record.workflow_id), b""))
    storage.put_many(items)
    yield storage
    storage.close()


def test_list_all_reads_no_run_record_of_a_workflow_at_rest(counted: ReadCounter) -> None:
    reader = Reader(WorkflowStore(counted))
    counted.gets.clear()
    listed = reader.list_all()
    assert [w for w, _ in listed] == [_wid(i) for i in range(N)]
    assert sum(1 for _, s in listed if s is WorkflowStatus.FAILED) == (N - 1) // 10
    failed = reader.list_all(WorkflowStatus.FAILED)
    assert failed == [(_wid(i), WorkflowStatus.FAILED) for i in range(10, N, 10)]
    assert counted.gets == []


def test_pages_by_id_merge_the_statuses_and_read_nothing(counted: ReadCounter) -> None:
    reader = Reader(WorkflowStore(counted))
    counted.gets.clear()
    seen: list[tuple[str, WorkflowStatus]] = []
    cursor = None
    while True:
        rows, cursor = reader.list_workflows(limit=37, cursor=cursor)
        seen.extend((row.workflow_id, row.status) for row in rows)
        if cursor is None:
            break
    assert seen == reader.list_all()
    assert counted.gets == []
    rows, _ = reader.list_workflows(WorkflowStatus.FAILED, limit=5, cursor=None)
    assert [r.workflow_id for r in rows] == [_wid(i) for i in range(10, 60, 10)]


def test_an_interrupted_change_is_read_from_the_run_record(counted: ReadCounter) -> None:
    """A dirty marker or an active entry sends the reader to the run record, whatever else."""
    store = WorkflowStore(counted)
    # wf-00005: moved to FAILED, its old SUCCESSFUL entry not removed yet (dirty marker on).
    record = store.read_run(_wid(5))
    assert record is not None
    store.write_run(record.replace(status=WorkflowStatus.FAILED))
    counted.put(layout.index_key("FAILED", _wid(5)), b"")
    marker = json.dumps({"from": "SUCCESSFUL", "to": "FAILED"}).encode()
    counted.put(layout.dirty_key(_wid(5)), marker)
    # wf-00007: a leftover RUNNING entry beside its SUCCESSFUL one; the record says SUCCESSFUL.
    counted.put(layout.index_key("RUNNING", _wid(7)), b"")
    # wf-99999: an entry with no run record (a first write cut short): not a workflow.
    counted.put(layout.index_key("RUNNING", "wf-99999"), b"")
    reader = Reader(store)
    counted.gets.clear()
    listed = dict(reader.list_all())
    assert listed[_wid(5)] is WorkflowStatus.FAILED
    assert listed[_wid(7)] is WorkflowStatus.SUCCESSFUL
    assert "wf-99999" not in listed and len(listed) == N
    assert sorted(set(counted.gets)) == sorted(
        layout.run_key(w) for w in (_wid(5), _wid(7), "wf-99999")
    )
    assert _wid(5) in dict(reader.list_all(WorkflowStatus.FAILED))
    assert _wid(5) not in dict(reader.list_all(WorkflowStatus.SUCCESSFUL))
    rows, _ = reader.list_workflows(WorkflowStatus.SUCCESSFUL, limit=10)
    assert _wid(5) not in [r.workflow_id for r in rows] and _wid(7) in [r.workflow_id for r in rows]


def test_two_inactive_entries_are_settled_by_the_run_record(counted: ReadCounter) -> None:
    """A stale entry (an older version's runner woken after a takeover) lists nothing twice."""
    counted.put(layout.index_key("FAILED", _wid(3)), b"")  # the record says SUCCESSFUL
    reader = Reader(WorkflowStore(counted))
    counted.gets.clear()
    listed = reader.list_all()
    assert len(listed) == N and dict(listed)[_wid(3)] is WorkflowStatus.SUCCESSFUL
    assert counted.gets == [layout.run_key(_wid(3))]
