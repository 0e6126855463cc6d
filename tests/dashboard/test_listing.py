"""The dashboard's newest-first listing: snapshots, their age, cursors, filters."""

from __future__ import annotations

import pytest
from dashseed import Seeded, wait_until

from durableflow import WorkflowStatus
from durableflow.client import Reader
from durableflow.dashboard import listing as listing_module
from durableflow.dashboard.listing import Listing, Query, decode_cursor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_snapshot_serves_until_max_age_then_sees_new_and_deleted(empty: Seeded) -> None:
    for i in range(3):
        empty.successful(f"w-{i}")
    clock = Clock()
    reader = Reader(empty.storage)
    listing = Listing(reader, max_age=2.0, clock=clock)
    try:
        assert [r.workflow_id for r in listing.rows()] == ["w-2", "w-1", "w-0"]
        empty.successful("w-3")
        empty.runner.delete("w-0")
        clock.now += 1.0
        assert [r.workflow_id for r in listing.rows()] == ["w-2", "w-1", "w-0"]  # young: kept
        clock.now += 1.5
        assert [r.workflow_id for r in listing.rows()] == ["w-3", "w-2", "w-1"]
        empty.failed("w-4")
        listing.invalidate()
        rows = listing.rows()
        assert rows[0].workflow_id == "w-4" and rows[0].status is WorkflowStatus.FAILED
    finally:
        reader.close()


def test_pages_filters_and_cursor(empty: Seeded) -> None:
    for i in range(5):
        empty.successful(f"a-{i}")
    empty.failed("b-0")
    reader = Reader(empty.storage)
    listing = Listing(reader, max_age=0.0)
    try:
        page, cursor = listing.page(Query(limit=2))
        assert [r.workflow_id for r in page] == ["b-0", "a-4"] and cursor is not None
        assert decode_cursor(cursor)[1] == "a-4"
        page, cursor = listing.page(Query(limit=2, cursor=cursor))
        assert [r.workflow_id for r in page] == ["a-3", "a-2"]
        page, cursor = listing.page(Query(limit=2, cursor=cursor))
        assert [r.workflow_id for r in page] == ["a-1", "a-0"] and cursor is None
        only = listing.page(Query(statuses=frozenset({WorkflowStatus.FAILED})))[0]
        assert [r.workflow_id for r in only] == ["b-0"]
        assert [r.workflow_id for r in listing.page(Query(prefix="a-", limit=1))[0]] == ["a-4"]
        newest = listing.rows()[0].created_at
        assert [r.workflow_id for r in listing.page(Query(since=newest))[0]] == ["b-0"]
        assert "b-0" not in {r.workflow_id for r in listing.page(Query(until=newest))[0]}
        assert [r.workflow_id for r in listing.page(Query(name="fail_*"))[0]] == ["b-0"]
        with pytest.raises(ValueError, match="cursor"):
            listing.page(Query(cursor="garbage!"))
        with pytest.raises(ValueError, match="limit"):
            listing.page(Query(limit=0))
    finally:
        reader.close()


def test_first_page_before_any_snapshot_reads_only_its_rows_records(
    empty: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the first snapshot, the Reader's newest-first page answers; the snapshot places
    every workflow by the creation index and reads root tasks only when a filter needs them."""
    for i in range(12):
        empty.successful(f"c-{i:02d}")
    empty.failed("c-12")
    reader = Reader(empty.storage)
    read: list[str] = []
    real = reader.store.read_run

    def counted(workflow_id: str) -> object:
        read.append(workflow_id)
        return real(workflow_id)

    monkeypatch.setattr(reader.store, "read_run", counted)
    listing = Listing(reader, max_age=60.0)
    try:
        page, cursor = listing.page(Query(limit=3))
        assert [r.workflow_id for r in page] == ["c-12", "c-11", "c-10"]
        assert page[0].status is WorkflowStatus.FAILED and page[0].root_task_id
        assert sorted(read) == ["c-10", "c-11", "c-12"]  # not the 10 older ones
        assert listing.page(Query(limit=2, prefix="c-0"))[0][0].workflow_id == "c-09"
        assert not listing.warmed.is_set() and cursor is not None
        later, _ = listing.page(Query(limit=3, cursor=cursor))  # the snapshot takes over
        assert [r.workflow_id for r in later] == ["c-09", "c-08", "c-07"]
        assert listing.warmed.is_set() and len(read) == 5  # the two pages: none since
        snap_page, snap_cursor = listing.page(Query(limit=3))
        assert [(r.workflow_id, r.status, r.created_at) for r in snap_page] == [
            (r.workflow_id, r.status, r.created_at) for r in page
        ]
        assert snap_cursor == cursor  # the same page either way
        assert [r.workflow_id for r in listing.page(Query(name="fail_*"))[0]] == ["c-12"]
        assert len(set(read)) == 13  # the name filter needs every root task
        assert listing.page(Query(limit=3))[0] == page
    finally:
        reader.close()


def test_background_reads_every_root_task_then_keeps_the_snapshot_fresh(
    empty: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(7):
        empty.successful(f"r-{i}")
    empty.failed("r-7")
    reader = Reader(empty.storage)
    monkeypatch.setattr(listing_module, "ROOTS_CHUNK", 3)  # several chunks
    listing = Listing(reader, max_age=0.2)
    listing.start()
    try:
        assert listing.warmed.wait(10)
        wait_until(lambda: listing.snapshot(max_age=60.0).complete)  # filled by the background
        snap = listing.snapshot()
        assert len(snap.roots) == 8 and snap.roots["r-7"] == "dashtasks.fail_unless"
        empty.successful("r-8")
        wait_until(lambda: "r-8" in listing.snapshot(max_age=60.0).status)
        wait_until(lambda: listing.snapshot(max_age=60.0).complete)
        assert [r.workflow_id for r in listing.page(Query(name="fail_*"))[0]] == ["r-7"]
    finally:
        listing.stop()
        reader.close()
