"""The read-only Reader (issue 12.2): typed answers, one-pass paged listings, and no writes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import durableflow
from durableflow import Client, WorkflowExecutionError, WorkflowStatus, workflow
from durableflow.client.core import Reader
from durableflow.errors import StorageError, WorkflowNotFoundError
from durableflow.model.attempts import ObservedTaskStatus
from durableflow.model.info import ScheduleInfo, TaskInfo, WorkflowInfo
from durableflow.storage import layout
from durableflow.storage.base import Storage
from durableflow.storage.urls import open_storage

pytestmark = pytest.mark.timeout(60)


@durableflow.task
def add(a: int, b: int) -> int:
    return a + b


@durableflow.task
def boom() -> None:
    raise ValueError("boom")


@durableflow.task
def spawn(n: int) -> Any:
    return workflow.continuation(add.bind(n, 1))


class Recorder:
    """Wraps a storage's methods on the instance: counts each call by method and key kind."""

    def __init__(self, storage: Storage) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        for name in ("get", "put", "create", "swap", "delete", "list", "delete_prefix", "put_many"):
            method = getattr(storage, name)
            setattr(storage, name, self._wrap(name, method))

    def _wrap(self, name: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            key = args[0] if args and isinstance(args[0], str) else ""
            self.calls[(name, "run" if key.endswith("/run") else "other")] += 1
            return method(*args, **kwargs)

        return call

    def writes(self) -> int:
        return sum(n for (name, _), n in self.calls.items() if name not in ("get", "list"))

    def run_reads(self) -> int:
        return self.calls[("get", "run")]


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    """A storage with wf-00..wf-09 SUCCESSFUL (created in that order), one FAILED, one PENDING."""
    url = str(tmp_path / "store")
    with Client(url) as client:
        for i in range(10):
            client.run(add.bind(i, 1), workflow_id=f"wf-{i:02d}", metadata={"i": i})
        with pytest.raises(WorkflowExecutionError):
            client.run(boom.options(max_retries=0).bind(), workflow_id="bad")
        client.submit(add.bind(1, 1), workflow_id="queued")
        client.run(spawn.bind(5), workflow_id="cont")
    yield url


def test_a_reader_creates_nothing_and_refuses_a_missing_storage(tmp_path: Path):
    missing = tmp_path / "nope"
    with pytest.raises(StorageError, match="no durableflow storage"):
        Reader(str(missing))
    assert not missing.exists()


def test_a_reader_never_writes(store_url: str):
    storage = open_storage(store_url, create=False)
    recorder = Recorder(storage)
    with Client(store_url) as client:
        client.schedule("hourly", add.bind(1, 2), every="1h")
    reader = Reader(storage)
    reader.get_workflow("wf-03")
    reader.list_tasks("cont")
    reader.get_task("wf-03", reader.get_workflow("wf-03").root_task_id)
    reader.list_workflows(limit=3, times=True)
    reader.list_workflows(newest_first=True)
    reader.get_metadata("bad")
    assert reader.get_output("wf-04") == 5
    assert [s.name for s in reader.list_schedules()] == ["hourly"]
    reader.environment_diff("wf-01")
    assert recorder.writes() == 0, recorder.calls
    storage.close()


def test_get_workflow_is_typed_with_name_counts_and_metadata_shape(store_url: str):
    with Reader(store_url) as reader, Client(store_url) as client:
        info = reader.get_workflow("wf-03")
        assert isinstance(info, WorkflowInfo)
        assert (info.status, info.name, info.user_metadata) == (
            WorkflowStatus.SUCCESSFUL,
            "tests.integration.test_reader.add",
            {"i": 3},
        )
        assert (info.tasks_done, info.tasks_total) == (1, 1)
        assert info.start_time is not None and info.end_time is not None and info.epoch >= 1
        assert info.runtime_env is None  # not read by get_workflow
        bad = reader.get_workflow("bad")
        assert bad.status is WorkflowStatus.FAILED and bad.error is not None
        assert bad.error.type == "builtins.ValueError"
        queued = reader.get_workflow("queued")
        assert queued.status is WorkflowStatus.PENDING
        assert (queued.start_time, queued.end_time, queued.tasks_done) == (None, None, 0)
        # get_metadata keeps Ray's dict shape, the same through a Reader and a Client.
        for wid in ("wf-03", "bad", "queued", "cont"):
            assert reader.get_metadata(wid) == client.get_metadata(wid)
        with pytest.raises(WorkflowNotFoundError):
            reader.get_workflow("nobody")


def test_list_tasks_is_typed_and_matches_the_client_rows(store_url: str):
    with Reader(store_url) as reader, Client(store_url) as client:
        tasks = reader.list_tasks("cont")
        assert all(isinstance(t, TaskInfo) for t in tasks)
        assert [(t.status, t.depth) for t in tasks] == [
            (ObservedTaskStatus.SUCCESSFUL, 0),
            (ObservedTaskStatus.SUCCESSFUL, 1),
        ]
        assert tasks[1].parent == tasks[0].task_id
        assert [t.to_row() for t in tasks] == client.list_tasks("cont")
        one = reader.get_task("cont", tasks[1].task_id)
        assert one.to_metadata() == client.get_metadata("cont", tasks[1].task_id)


def test_list_workflows_pages_by_id_through_the_cursor(store_url: str):
    with Reader(store_url) as reader:
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            rows, cursor = reader.list_workflows(limit=4, cursor=cursor)
            seen += [r.workflow_id for r in rows]
            pages += 1
            if cursor is None:
                break
        assert seen == sorted(w for w, _ in reader.list_all())
        assert pages == 4  # 13 workflows: 4 + 4 + 4 + 1
        rows, cursor = reader.list_workflows("FAILED")
        assert [(r.workflow_id, r.status) for r in rows] == [("bad", WorkflowStatus.FAILED)]
        assert cursor is None
        rows, _ = reader.list_workflows(prefix="wf-0", limit=2)
        assert [r.workflow_id for r in rows] == ["wf-00", "wf-01"]
        assert rows[0].created_at is None  # times not asked for, not read


def test_list_workflows_newest_first_and_since(store_url: str):
    with Reader(store_url) as reader:
        everything, _ = reader.list_workflows(newest_first=True)
        created = [r.created_at for r in everything]
        assert created == sorted(created, reverse=True)  # type: ignore[type-var]
        assert everything[0].workflow_id == "cont"
        first, cursor = reader.list_workflows(newest_first=True, limit=5)
        rest, last = reader.list_workflows(newest_first=True, cursor=cursor)
        assert [r.workflow_id for r in first + rest] == [r.workflow_id for r in everything]
        assert last is None
        cutoff = reader.get_workflow("wf-08").created_at
        recent, _ = reader.list_workflows(since=cutoff)
        assert {r.workflow_id for r in recent} == {"wf-08", "wf-09", "bad", "queued", "cont"}
        with pytest.raises(ValueError, match="another order"):
            reader.list_workflows(cursor=cursor)
        with pytest.raises(ValueError, match="not a cursor"):
            reader.list_workflows(cursor="garbage!")
        with pytest.raises(ValueError, match="limit"):
            reader.list_workflows(limit=0)


def test_list_workflows_by_id_reads_no_run_record_of_a_workflow_at_rest(store_url: str):
    storage = open_storage(store_url, create=False)
    recorder = Recorder(storage)
    reader = Reader(storage)
    rows, _ = reader.list_workflows(statuses={"SUCCESSFUL", "FAILED"})
    # The 12 at rest are trusted; only the PENDING entry is checked against its record.
    assert len(rows) == 12 and recorder.run_reads() == 1
    # A prefix filters before anything is read (the PENDING "queued" is not read again); a
    # page with times reads its rows' records, no more.
    rows, _ = reader.list_workflows(prefix="wf-", limit=3, times=True)
    assert recorder.run_reads() == 1 + 3
    assert all(r.created_at is not None and r.end_time is not None for r in rows)
    storage.close()


def test_a_workflow_deleted_between_the_index_and_its_record_is_left_out(store_url: str):
    with Client(store_url) as client:
        client.delete("wf-05")
        client.storage.put(layout.index_key("SUCCESSFUL", "wf-05"), b"")  # a stale entry
    with Reader(store_url) as reader:
        rows, _ = reader.list_workflows(prefix="wf-0", times=True)
        assert "wf-05" not in [r.workflow_id for r in rows]


def test_schedules_are_read_as_schedule_info(store_url: str):
    with Client(store_url) as client:
        client.schedule("nightly", add.bind(1, 2), every="1d", metadata={"team": "x"})
        expected = client.get_schedule("nightly")
    with Reader(store_url) as reader:
        info = reader.get_schedule("nightly")
        assert isinstance(info, ScheduleInfo)
        assert info.to_json() == expected
        assert (info.every, info.paused, info.metadata) == (86400, False, {"team": "x"})
        with pytest.raises(WorkflowNotFoundError):
            reader.get_schedule("nope")


def test_waiting_workflows_lists_unowned_pending_and_resumable_oldest_first(tmp_path: Path):
    url = str(tmp_path / "store")
    with Client(url) as client:
        client.submit(add.bind(1, 1), workflow_id="b-first")
        client.submit(add.bind(1, 1), workflow_id="a-second")
        for workflow_id, created in (("b-first", 1000.0), ("a-second", 2000.0)):
            record = client.store.read_run(workflow_id)
            assert record is not None
            client.store.write_run(record.replace(created_at=created))
        assert client.waiting_workflows() == ["b-first", "a-second"]
        assert client.waiting_workflows(skip=frozenset({"b-first"})) == ["a-second"]


def test_a_client_reads_through_its_reader_over_its_own_store(store_url: str):
    with Client(store_url) as client:
        assert client.reader.store is client.store
        rows, _ = client.reader.list_workflows("FAILED", times=True)
        assert [(r.workflow_id, r.status) for r in rows] == [("bad", WorkflowStatus.FAILED)]
        assert client.reader.get_workflow("wf-02").user_metadata == {"i": 2}
