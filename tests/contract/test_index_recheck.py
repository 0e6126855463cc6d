"""A runner paused between its record's compare-and-swap and its index entry (issue 17).

It is taken over meanwhile (the rival claims with a higher epoch and finishes), then wakes and
writes its entry: the entry is taken back (steps B1' and C2' of the status index protocol),
the runner gets RecordChangedError, and listings show the rival's status only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from durableflow import WorkflowStatus
from durableflow.model.records import RunRecord
from durableflow.runtime.status import list_statuses
from durableflow.storage import layout
from durableflow.storage.base import Storage
from durableflow.storage.store import RecordChangedError, WorkflowStore
from durableflow.storage.urls import open_storage

WID = "wf-paused"


class PauseAfterSwap(Storage):
    """Runs ``between`` once, right after a successful swap of the run record."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.between: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return self.inner.url

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def create(self, key: str, data: bytes) -> bool:
        return self.inner.create(key, data)

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        swapped = self.inner.swap(key, expected, data)
        if swapped and key == layout.run_key(WID) and self.between is not None:
            between, self.between = self.between, None
            between()
        return swapped

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def list_children(self, folder: str) -> list[str]:
        return self.inner.list_children(folder)

    def batch(self):  # type: ignore[no-untyped-def]
        return self.inner.batch()

    def volatile(self):  # type: ignore[no-untyped-def]
        return self.inner.volatile()

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(params=["file", "sqlite", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PauseAfterSwap]:
    url = {
        "file": f"file://{tmp_path / 'store'}",
        "sqlite": f"sqlite://{tmp_path / 'store.db'}",
        "memory": "memory://",
    }[request.param]
    wrapped = PauseAfterSwap(open_storage(url))
    yield wrapped
    wrapped.close()


def _running(store: WorkflowStore, epoch: int) -> tuple[RunRecord, bytes]:
    now = time.time()
    record = RunRecord(WID, WorkflowStatus.RUNNING, "root", now, now, start_time=now, epoch=epoch)
    raw = store.set_status(record, None, expected=None)
    return record, raw


def _entries(storage: Storage) -> list[str]:
    return sorted(
        status.value
        for status in WorkflowStatus
        if storage.get(layout.index_key(status.value, WID)) is not None
    )


@pytest.mark.parametrize("old", [WorkflowStatus.RUNNING, WorkflowStatus.RESUMABLE])
def test_an_entry_written_after_a_takeover_is_taken_back(
    storage: PauseAfterSwap, old: WorkflowStatus
) -> None:
    """Path B (from RUNNING) and path C (from RESUMABLE, with a dirty marker)."""
    store = WorkflowStore(storage)
    record, raw = _running(store, epoch=1)
    if old is WorkflowStatus.RESUMABLE:
        raw = store.set_status(record.replace(status=old), WorkflowStatus.RUNNING, expected=raw)
    rival = WorkflowStore(storage)

    def takeover() -> None:
        # The rival claims (epoch 2) and finishes while this runner is paused.
        current, current_raw = rival.read_run_raw(WID)
        assert current is not None and current_raw is not None
        claimed = current.replace(status=WorkflowStatus.RUNNING, epoch=2)
        claimed_raw = rival.set_status(claimed, current.status, expected=current_raw)
        rival.set_status(
            claimed.replace(status=WorkflowStatus.SUCCESSFUL),
            WorkflowStatus.RUNNING,
            expected=claimed_raw,
        )

    storage.between = takeover
    with pytest.raises(RecordChangedError, match="index entry is taken back"):
        store.set_status(record.replace(status=WorkflowStatus.FAILED), old, expected=raw)
    assert _entries(storage) == ["SUCCESSFUL"]
    assert list_statuses(store, None) == [(WID, WorkflowStatus.SUCCESSFUL)]
    assert list_statuses(store, frozenset({WorkflowStatus.FAILED})) == []
    final = store.read_run(WID)
    assert final is not None and final.status is WorkflowStatus.SUCCESSFUL and final.epoch == 2


def test_the_same_status_as_the_rival_keeps_the_entry(storage: PauseAfterSwap) -> None:
    store = WorkflowStore(storage)
    record, raw = _running(store, epoch=1)
    rival = WorkflowStore(storage)

    def takeover() -> None:
        current, current_raw = rival.read_run_raw(WID)
        assert current is not None
        rival.set_status(
            current.replace(status=WorkflowStatus.SUCCESSFUL, epoch=2),
            WorkflowStatus.SUCCESSFUL,
            expected=current_raw,
        )

    storage.between = takeover
    store.set_status(
        record.replace(status=WorkflowStatus.SUCCESSFUL), WorkflowStatus.RUNNING, expected=raw
    )
    assert _entries(storage) == ["SUCCESSFUL"]
    assert list_statuses(store, None) == [(WID, WorkflowStatus.SUCCESSFUL)]


def test_no_takeover_costs_one_read_and_changes_nothing(storage: PauseAfterSwap) -> None:
    store = WorkflowStore(storage)
    record, raw = _running(store, epoch=1)
    store.set_status(
        record.replace(status=WorkflowStatus.FAILED), WorkflowStatus.RUNNING, expected=raw
    )
    assert _entries(storage) == ["FAILED"]
    assert list_statuses(store, None) == [(WID, WorkflowStatus.FAILED)]
