"""The holes of issue 9 that live in the engine and the Client, each pinned by a test.

Continuation unwinding after a crash, two run() calls with one id, fencing of the run record,
delete as a tombstone protocol racing a resume, bounded resume_all, and the issue-11 behaviours
of the engine (crashing workers, catch_exceptions through continuations, waiting for tasks that
do not exist yet). File storage unless a test says otherwise: the protocols are the same on
every backend, and the crash matrices run them on all three.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from pathlib import Path

import pytest

from durableflow import Client, workflow
from durableflow.errors import (
    StorageError,
    WorkflowExecutionError,
    WorkflowIncompleteError,
    WorkflowNotFoundError,
    WorkflowStillActiveError,
)
from durableflow.model.status import WorkflowStatus
from durableflow.storage import layout
from durableflow.storage.filesystem import FileStorage
from durableflow.storage.store import UNFENCED, RecordChangedError
from durableflow.testing.faults import FaultyStorage
from helpers import append_line, count_lines, wait_until

LOG: dict[str, Path] = {}


@workflow.task
def child(x: int) -> int:
    append_line(LOG["path"], "child")
    return x + 1


@workflow.task
def parent(x: int) -> int:
    append_line(LOG["path"], "parent")
    return workflow.continuation(child.bind(x))


@workflow.task
def after(x: int) -> int:
    append_line(LOG["path"], "after")
    return x * 10


@pytest.fixture(autouse=True)
def side_effect_log(tmp_path: Path) -> Path:
    LOG["path"] = tmp_path / "log.txt"
    LOG["gate"] = tmp_path / "gate"
    return LOG["path"]


def wait_for_gate(path: str) -> None:
    """Block a task until the test opens its gate (a file: tasks are pickled, events are not)."""
    deadline = time.monotonic() + 30
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@workflow.task
def slow(gate: str) -> int:
    wait_for_gate(gate)
    return 1


@workflow.task
def late() -> int:
    return 5


@workflow.task
def opener(gate: str) -> int:
    wait_for_gate(gate)
    return workflow.continuation(late.options(task_id="late").bind())


def test_resume_finishes_a_parent_whose_continuation_was_done_before_the_crash(tmp_path):
    # The parent's forward record fails (a crash or a storage error right there): before the
    # fix, resume waited forever with the parent CONTINUED and its child already done.
    root = tmp_path / "store"
    faulty = FaultyStorage(FileStorage(root), "create", key="outputs/", nth=2, error=True)
    dag = after.bind(parent.bind(1))
    with Client(faulty) as client:
        with pytest.raises(StorageError):
            client.run(dag, workflow_id="w")
        assert client.get_status("w") is WorkflowStatus.RESUMABLE
    with Client(str(root)) as client:
        future = client.resume_async("w")
        assert future.result(timeout=30) == 20
        assert client.get_status("w") is WorkflowStatus.SUCCESSFUL
    assert count_lines(LOG["path"]) == {"parent": 1, "child": 1, "after": 1}


def test_a_stalled_engine_stops_resumable_instead_of_waiting(tmp_path, monkeypatch):
    import durableflow.runtime.engine as engine

    monkeypatch.setattr(engine, "start", lambda state: [])  # a bug: nothing is ever submitted
    with Client(str(tmp_path / "store")) as client:
        future = client.run_async(after.bind(1), workflow_id="w")
        with pytest.raises(WorkflowIncompleteError, match="stalled"):
            future.result(timeout=30)
        assert client.get_status("w") is WorkflowStatus.RESUMABLE
        monkeypatch.undo()
        assert client.resume("w") == 10


class _StaleFirstRead(FileStorage):
    """A storage whose first read of the run record says 'none yet' (read before a rival wrote)."""

    stale_reads = 1

    def get(self, key: str) -> bytes | None:
        if key.endswith("/run") and self.stale_reads:
            self.stale_reads -= 1
            return None
        return super().get(key)


def test_run_of_an_id_stored_between_read_and_claim_resumes_instead_of_running_again(tmp_path):
    root = tmp_path / "store"
    with Client(str(root)) as first:
        assert first.run(after.bind(2), workflow_id="w") == 20
    with Client(_StaleFirstRead(root)) as second:
        assert second.run(after.bind(2), workflow_id="w") == 20
    assert count_lines(LOG["path"]) == {"after": 1}


def test_eight_processes_running_one_id_run_each_task_once(tmp_path):
    import subprocess
    import sys

    root = tmp_path / "store"
    prog = (
        "import sys; sys.path[:0] = [sys.argv[3], sys.argv[3] + '/..'];"
        "import test_reliability as t; from pathlib import Path;"
        "t.LOG['path'] = Path(sys.argv[2]);"
        "from durableflow import Client;"
        "c = Client(sys.argv[1]);"
        "\ntry:\n    print(c.run(t.after.bind(t.parent.bind(3)), workflow_id='w'))"
        "\nexcept Exception as e:\n    print(type(e).__name__)"
    )
    here = str(Path(__file__).parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", prog, str(root), str(LOG["path"]), here],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert "40" in outputs
    assert set(outputs) <= {"40", "WorkflowStillActiveError"}
    assert count_lines(LOG["path"]) == {"parent": 1, "child": 1, "after": 1}


def test_a_runner_whose_record_was_taken_over_writes_nothing_more(tmp_path):
    root = tmp_path / "store"
    with Client(str(root)) as client:
        future = client.run_async(slow.bind(str(LOG["gate"])), workflow_id="w")
        wait_until(lambda: client.store.read_run("w") is not None)
        wait_until(lambda: client.store.read_run("w").status is WorkflowStatus.RUNNING)
        # Another runner takes over (as after a pause past the lease): it writes the record
        # with the next epoch.
        record = client.store.read_run("w")
        taken = record.replace(epoch=record.epoch + 1, updated_at=time.time())
        client.store.set_status(taken, WorkflowStatus.RUNNING, expected=UNFENCED)
        LOG["gate"].touch()
        with pytest.raises(RecordChangedError):
            future.result(timeout=30)
        stored = client.store.read_run("w")
        assert stored.epoch == taken.epoch and stored.status is WorkflowStatus.RUNNING
        assert client.store.list_index(WorkflowStatus.SUCCESSFUL) == []


def test_each_claim_raises_the_fencing_epoch(tmp_path):
    with Client(str(tmp_path / "store")) as client:
        client.run(after.bind(1), workflow_id="w")
        first = client.store.read_run("w").epoch
        with pytest.raises(WorkflowExecutionError):
            client.run(parent.bind("x"), workflow_id="v")  # "x" + 1 raises: FAILED
        assert client.resume("w") == 10  # SUCCESSFUL: answered, no claim
        assert client.store.read_run("w").epoch == first
        epoch_v = client.store.read_run("v").epoch
        with pytest.raises(WorkflowExecutionError):
            client.resume("v")
        assert client.store.read_run("v").epoch == epoch_v + 1


# --- delete -----------------------------------------------------------------------------------
def _keys_of(storage: FileStorage, workflow_id: str) -> list[str]:
    keys = storage.list(layout.workflow_prefix(workflow_id))
    keys += [k for k in storage.list("v1/index/") if k.endswith("/" + workflow_id)]
    keys += [k for k in storage.list(layout.dirty_prefix()) if k.endswith("/" + workflow_id)]
    return keys


@pytest.mark.parametrize(
    ("op", "key"),
    [
        ("swap", "/run"),
        ("put", "index/dirty/"),
        ("delete", "index/SUCCESSFUL/"),
        ("delete", "/run"),
        ("delete", "/outputs/"),
        ("delete", "/specs/"),
        ("delete", "index/dirty/"),
    ],
    ids=["1-mark", "2-tombstone", "3-index", "4-record", "5-outputs", "5-specs", "6-tombstone"],
)
def test_an_interrupted_delete_is_finished_and_never_adopted(tmp_path, op, key):
    root = tmp_path / "store"
    with Client(str(root)) as client:
        assert client.run(after.bind(parent.bind(1)), workflow_id="w") == 20
    faulty = FaultyStorage(FileStorage(root), op, key=key, error_after=True)
    with Client(faulty) as client, pytest.raises(Exception):  # noqa: B017 - any storage error
        client.delete("w")
    with Client(str(root)) as client:
        # Readers agree at every step: the old status until the record is gone, then none.
        listed = client.list_all()
        assert listed in ([], [("w", WorkflowStatus.SUCCESSFUL)])
        try:
            assert listed == [("w", client.get_status("w"))]
        except WorkflowNotFoundError:
            assert listed == []
        # A new DAG under the same id runs afresh: no old output is adopted.
        try:
            status = client.get_status("w")
        except WorkflowNotFoundError:
            status = None
        if status is None:
            assert client.run(after.bind(5), workflow_id="w") == 50
        else:
            client.delete("w")  # a second delete finishes the first
            assert _keys_of(FileStorage(root), "w") == []
            assert client.run(after.bind(5), workflow_id="w") == 50
        assert client.list_all() == [("w", WorkflowStatus.SUCCESSFUL)]
        assert FileStorage(root).list(layout.dirty_prefix()) == []


def test_resume_of_a_half_deleted_workflow_finishes_the_delete(tmp_path):
    root = tmp_path / "store"
    with Client(str(root)) as client:
        with pytest.raises(WorkflowExecutionError):
            client.run(parent.bind("x"), workflow_id="w")
    faulty = FaultyStorage(FileStorage(root), "delete", key="index/", error=True)
    with Client(faulty) as client, pytest.raises(Exception):  # noqa: B017
        client.delete("w")
    with Client(str(root)) as client:
        with pytest.raises(WorkflowNotFoundError):
            client.resume("w")
        assert _keys_of(FileStorage(root), "w") == []
        assert count_lines(LOG["path"]) == {"parent": 1, "child": 1}  # nothing ran again


@workflow.task
def flaky() -> int:
    """Fails on its first execution, succeeds after."""
    first = "flaky" not in count_lines(LOG["path"])
    append_line(LOG["path"], "flaky")
    if first:
        raise RuntimeError("first attempt fails")
    return 1


def test_delete_racing_a_resume_leaves_no_orphan_index_entry(tmp_path):
    # Before the fix: delete read FAILED, a worker resumed the workflow to SUCCESSFUL, delete
    # removed only index/FAILED/w, and index/SUCCESSFUL/w listed a deleted workflow forever.
    root = tmp_path / "store"
    with Client(str(root)) as client:
        with pytest.raises(WorkflowExecutionError):
            client.run(flaky.bind(), workflow_id="w")

    class ResumeInBetween(FileStorage):
        """After delete's first read of the record, another process resumes the workflow."""

        fired = False

        def get(self, key: str) -> bytes | None:
            value = super().get(key)
            if key.endswith("/w/run") and not self.fired:
                self.fired = True
                with Client(str(root)) as other:
                    assert other.resume("w") == 1
            return value

    with Client(ResumeInBetween(root)) as client:
        client.delete("w")
    assert _keys_of(FileStorage(root), "w") == []
    with Client(str(root)) as client:
        assert client.list_all() == []
        assert client.list_all(WorkflowStatus.SUCCESSFUL) == []


def test_a_deleter_whose_workflow_was_taken_over_writes_nothing(tmp_path):
    # A deleter paused between its read and its first write, while another runner took the
    # workflow over: its compare-and-swap on the run record fails before anything is deleted.
    root = tmp_path / "store"
    with Client(str(root)) as client:
        with pytest.raises(WorkflowExecutionError):
            client.run(flaky.bind(), workflow_id="w")

    class TakenOverInBetween(FileStorage):
        fired = False

        def swap(self, key: str, expected: bytes, data: bytes) -> bool:
            if key.endswith("/w/run") and not self.fired:
                self.fired = True
                with Client(str(root)) as other:  # the lease is ours: write as a rival would
                    record = other.store.read_run("w")
                    bumped = record.replace(epoch=record.epoch + 1, updated_at=time.time())
                    other.store.set_status(bumped, record.status, expected=UNFENCED)
            return super().swap(key, expected, data)

    with Client(TakenOverInBetween(root)) as client, pytest.raises(RecordChangedError):
        client.delete("w")
    with Client(str(root)) as client:
        assert client.get_status("w") is WorkflowStatus.FAILED
        assert client.list_all() == [("w", WorkflowStatus.FAILED)]
        assert not client.store.is_deleting("w")
        assert client.resume("w") == 1  # nothing was lost


def test_delete_of_a_workflow_another_process_runs_is_refused(tmp_path):
    root = tmp_path / "store"
    with Client(str(root)) as runner, Client(str(root)) as other:
        future = runner.run_async(slow.bind(str(LOG["gate"])), workflow_id="w")
        wait_until(lambda: other.store.read_run("w") is not None)
        with pytest.raises(WorkflowStillActiveError):
            other.delete("w")
        LOG["gate"].touch()
        assert future.result(timeout=30) == 1


# --- bulk resume ------------------------------------------------------------------------------
def test_resume_all_runs_on_a_bounded_pool(tmp_path):
    root = tmp_path / "store"
    with Client(str(root)) as client:
        for n in range(60):
            with pytest.raises(WorkflowExecutionError):
                client.run(parent.bind("x"), workflow_id=f"w{n:03}")
    LOG["path"].write_text("")

    @workflow.task
    def fixed(x: object) -> int:
        return 7

    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], threading.active_count())
            time.sleep(0.005)

    base = threading.active_count()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with Client(str(root), bulk_workers=4) as client:
        handles = client.resume_all(include_failed=True)
        assert len(handles) == 60
        concurrent.futures.wait([f for _, f in handles], timeout=120)
        assert all(f.done() for _, f in handles)
    stop.set()
    sampler.join()
    # 4 bulk threads, the executor's pool, the lease heartbeat, the sampler: not one per workflow.
    assert peak[0] - base < 30


# --- issue 11 behaviours of the engine ----------------------------------------------------------
@workflow.task
def f3() -> int:
    raise ValueError("f3 failed")


@workflow.task
def f2(x: int) -> int:
    return x


@workflow.task(catch_exceptions=True)
def f1() -> object:
    return workflow.continuation(f2.bind(f3.bind()))


def test_catch_exceptions_covers_every_task_of_the_continuation(tmp_path):
    with Client(str(tmp_path / "store")) as client:
        value, error = client.run(f1.bind(), workflow_id="w")
    assert value is None
    assert isinstance(error, ValueError) and "f3 failed" in str(error)


def _die() -> int:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
    return 0


die = workflow.task(max_retries=1)(_die)


def test_a_task_whose_worker_dies_on_every_attempt_ends_failed(tmp_path):
    with Client(str(tmp_path / "store"), executor="process") as client:
        with pytest.raises(WorkflowExecutionError):
            client.run(die.bind(), workflow_id="w")
        assert client.get_status("w") is WorkflowStatus.FAILED


def test_get_output_waits_for_a_task_a_continuation_has_not_created_yet(tmp_path):
    with Client(str(tmp_path / "store")) as client:
        future = client.run_async(opener.bind(str(LOG["gate"])), workflow_id="w")
        wait_until(lambda: client.store.read_run("w") is not None)
        waiter = client.get_output_async("w", task_id="late")
        time.sleep(0.2)
        assert not waiter.done()
        LOG["gate"].touch()
        assert waiter.result(timeout=30) == 5
        assert future.result(timeout=30) == 5
        with pytest.raises(WorkflowNotFoundError):
            client.get_output("w", task_id="never")


def test_reusing_an_id_with_another_dag_warns_once(tmp_path, caplog):
    with Client(str(tmp_path / "store")) as client:
        client.run(after.bind(1), workflow_id="w")
        with caplog.at_level(logging.WARNING, logger="durableflow"):
            assert client.run(after.bind(1), workflow_id="w") == 10
            assert "different DAG" not in caplog.text
            assert client.run(after.bind(2), workflow_id="w") == 10
            assert client.run(after.bind(3), workflow_id="w") == 10
        assert caplog.text.count("different DAG") == 1
