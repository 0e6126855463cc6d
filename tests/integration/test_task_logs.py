"""Per-task logs: what an attempt prints and logs is captured where it runs, stored, read back.

The capture hangs on ``task_context(..., call=call)`` (runtime/context.py), which
``execute_task`` opens around the task's function on every executor; most tests here open it
the same way, in threads and in a separate process, on a real stored workflow.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durableflow import (
    Client,
    InvalidWorkflowIdError,
    StorageError,
    WorkflowNotFoundError,
    workflow,
)
from durableflow.model.calls import TaskCall
from durableflow.runtime import logcapture
from durableflow.runtime.context import current_attempt, task_context
from durableflow.runtime.logs import cut_marker, get_logs
from durableflow.storage.base import Storage
from durableflow.storage.logs import list_logs, log_key, logs_prefix
from helpers import wait_until


@workflow.task
def noop() -> int:
    return 1


@workflow.task
def chatty(name: str) -> str:
    print(f"hello from {name}")
    logging.getLogger("chatty").warning("warned by %s", name)
    return name


@workflow.task
def fan(names: list[str]) -> list[str]:
    return names


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    c = Client(str(tmp_path / "store"))
    yield c
    c.close(wait=False)


@pytest.fixture(autouse=True)
def _settings() -> Iterator[None]:
    mode, limit = logcapture.settings()
    yield
    logcapture.configure(mode=mode, limit=limit)


def stored_workflow(client: Client, workflow_id: str = "w") -> str:
    client.run(noop.bind(), workflow_id=workflow_id)
    return workflow_id


def call_of(client: Client, workflow_id: str, task_id: str, attempt: int = 1) -> TaskCall:
    return TaskCall(
        workflow_id, task_id, attempt, None, (), {}, {}, True, False, store=client.store
    )


def test_concurrent_tasks_in_threads_keep_their_own_output(client: Client) -> None:
    wid = stored_workflow(client)
    barrier = threading.Barrier(4)

    def body(n: int) -> None:
        with task_context(wid, f"t{n}", call=call_of(client, wid, f"t{n}")):
            barrier.wait()
            for i in range(50):
                print(f"task {n} line {i}")
                sys.stderr.write(f"task {n} err {i}\n")
                logging.getLogger("mine").warning("task %d record %d", n, i)

    threads = [threading.Thread(target=body, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logs = get_logs(client.store, wid)
    assert sorted(logs) == ["t0", "t1", "t2", "t3"]
    for n in range(4):
        (entry,) = logs[f"t{n}"]
        lines = entry.text.splitlines()
        assert len(lines) == 150
        assert all(f"task {n} " in line for line in lines), entry.text[:500]
        assert lines[0] == f"task {n} line 0"
        assert lines[1] == f"task {n} err 0"
        assert lines[2].endswith(f"WARNING mine: task {n} record 0")
        assert entry.end is not None and entry.attempt == 1 and not entry.dropped


def test_records_inside_a_task_carry_its_ids(client: Client) -> None:
    wid = stored_workflow(client)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    logging.getLogger("ids").addHandler(handler)
    try:
        with task_context(wid, "t", call=call_of(client, wid, "t", attempt=3)):
            assert current_attempt() == 3
            logging.getLogger("ids").warning("inside")
        logging.getLogger("ids").warning("outside")
    finally:
        logging.getLogger("ids").removeHandler(handler)
    inside, outside = seen
    assert (inside.durableflow_workflow_id, inside.durableflow_task_id) == (wid, "t")  # type: ignore[attr-defined]
    assert inside.durableflow_attempt == 3  # type: ignore[attr-defined]
    assert not hasattr(outside, "durableflow_task_id")
    assert [e.attempt for e in get_logs(client.store, wid)["t"]] == [3]


def test_output_outside_tasks_goes_to_the_real_stream_only(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    wid = stored_workflow(client)
    with task_context(wid, "t", call=call_of(client, wid, "t")):
        print("in the task")
    print("after the task")
    out = capsys.readouterr().out
    assert "in the task" in out and "after the task" in out  # tee: still printed
    assert get_logs(client.store, wid)["t"][0].text == "in the task\n"


def test_capture_mode_keeps_output_off_the_terminal_and_off_stores_nothing(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    wid = stored_workflow(client)
    logcapture.configure(mode="capture")
    with task_context(wid, "quiet", call=call_of(client, wid, "quiet")):
        print("kept, not shown")
    logcapture.configure(mode="off")
    with task_context(wid, "off", call=call_of(client, wid, "off")):
        print("shown, not kept")
    out = capsys.readouterr().out
    assert "kept, not shown" not in out and "shown, not kept" in out
    logs = get_logs(client.store, wid)
    assert [e.text for e in logs["quiet"]] == ["kept, not shown\n"]
    assert "off" not in logs
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger("off").addHandler(handler)
    try:
        with task_context(wid, "off", call=call_of(client, wid, "off")):
            logging.getLogger("off").warning("tagged, not kept")
    finally:
        logging.getLogger("off").removeHandler(handler)
    assert seen[0].durableflow_task_id == "off"  # type: ignore[attr-defined]
    assert "off" not in get_logs(client.store, wid)
    with pytest.raises(ValueError, match="task log mode"):
        logcapture.configure(mode="loud")
    with pytest.raises(ValueError, match="positive int"):
        logcapture.configure(limit=0)


def test_a_silent_attempt_writes_nothing(client: Client) -> None:
    wid = stored_workflow(client)
    with task_context(wid, "t", call=call_of(client, wid, "t")):
        pass
    assert client.storage.list(logs_prefix(wid)) == []
    assert get_logs(client.store, wid) == {}


def test_the_cap_keeps_the_tail_and_marks_the_cut(client: Client) -> None:
    wid = stored_workflow(client)
    logcapture.configure(limit=1000)
    with task_context(wid, "big", call=call_of(client, wid, "big")):
        for i in range(500):
            print(f"line {i:04d}")  # 10 characters a line
    (entry,) = get_logs(client.store, wid)["big"]
    assert entry.written == 5000 and entry.dropped == 4000
    assert entry.text.startswith(cut_marker(4000))
    kept = entry.text[len(cut_marker(4000)) :]
    assert kept.endswith("line 0499\n") and kept.startswith("line 0400\n") and len(kept) == 1000
    raw = client.storage.get(log_key(wid, "big", 1))
    assert raw is not None and len(raw.partition(b"\n")[2]) == 1000


def test_the_cap_counts_bytes_of_wide_characters(client: Client) -> None:
    wid = stored_workflow(client)
    logcapture.configure(limit=100)
    with task_context(wid, "wide", call=call_of(client, wid, "wide")):
        print("é" * 300, end="")
    raw = client.storage.get(log_key(wid, "wide", 1))
    assert raw is not None and len(raw.partition(b"\n")[2]) == 100
    (entry,) = get_logs(client.store, wid)["wide"]
    assert entry.dropped == 250 and entry.text.endswith("é" * 50)


def test_a_long_attempt_is_flushed_while_it_runs(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logcapture, "FLUSH_EVERY", 0.1)
    wid = stored_workflow(client)
    release = threading.Event()

    def body() -> None:
        with task_context(wid, "long", call=call_of(client, wid, "long")):
            print("first")
            release.wait(10)
            print("second")

    thread = threading.Thread(target=body)
    thread.start()
    try:
        live = wait_until(lambda: get_logs(client.store, wid).get("long"))
        assert live[0].running and live[0].text == "first\n"
    finally:
        release.set()
        thread.join()
    (done,) = get_logs(client.store, wid)["long"]
    assert not done.running and done.text == "first\nsecond\n" and done.written == 13


def test_each_attempt_has_its_own_log(client: Client) -> None:
    wid = stored_workflow(client)
    for n in (1, 2, 3):
        with task_context(wid, "t", call=call_of(client, wid, "t", attempt=n)):
            print(f"attempt {n}")
    entries = get_logs(client.store, wid, "t")["t"]
    assert [(e.attempt, e.text) for e in entries] == [(n, f"attempt {n}\n") for n in (1, 2, 3)]
    assert list_logs(client.storage, wid) == [("t", 1), ("t", 2), ("t", 3)]


def test_a_failing_attempt_keeps_what_it_printed(client: Client) -> None:
    wid = stored_workflow(client)
    with (
        pytest.raises(ZeroDivisionError),
        task_context(wid, "boom", call=call_of(client, wid, "boom")),
    ):
        print("about to fail")
        raise ZeroDivisionError
    assert get_logs(client.store, wid)["boom"][0].text == "about to fail\n"


class _BrokenPuts(Storage):
    """A storage whose puts fail: a log that cannot be stored must not fail the attempt."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    @property
    def url(self) -> str:
        return self.inner.url

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        raise StorageError("disk full", key=key)

    def create(self, key: str, data: bytes) -> bool:
        return self.inner.create(key, data)

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        return self.inner.swap(key, expected, data)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)


def test_a_log_that_cannot_be_stored_does_not_fail_the_attempt(
    client: Client, capfd: pytest.CaptureFixture[str]
) -> None:
    wid = stored_workflow(client)
    broken: Any = type("S", (), {"storage": _BrokenPuts(client.storage)})()
    call = TaskCall(wid, "t", 1, None, (), {}, {}, True, False, store=broken)
    with task_context(wid, "t", call=call):
        print("lost")
    assert "the log of task 't' attempt 1" in capfd.readouterr().err
    assert get_logs(client.store, wid) == {}


def test_logs_go_with_their_workflow(client: Client) -> None:
    wid = stored_workflow(client)
    with task_context(wid, "t", call=call_of(client, wid, "t")):
        print("to be deleted")
    assert client.storage.list(logs_prefix(wid))
    client.delete(wid)
    assert client.storage.list(logs_prefix(wid)) == []
    with pytest.raises(WorkflowNotFoundError):
        get_logs(client.store, wid)


def test_reading_logs_refuses_unknown_and_bad_ids(client: Client) -> None:
    wid = stored_workflow(client)
    with pytest.raises(WorkflowNotFoundError, match="nope"):
        get_logs(client.store, "nope")
    with pytest.raises(WorkflowNotFoundError, match="No such task_id 'ghost'"):
        get_logs(client.store, wid, "ghost")
    with pytest.raises(InvalidWorkflowIdError):
        get_logs(client.store, wid, "a/b")
    root = client.reader.get_workflow(wid).root_task_id
    assert root is not None and get_logs(client.store, wid, root) == {root: []}


_CHILD = """
import logging, sys
from durableflow.model.calls import TaskCall
from durableflow.runtime.context import task_context
call = TaskCall(sys.argv[2], "remote", 2, None, (), {}, {}, True, False, store_url=sys.argv[1])
with task_context(call.workflow_id, call.task_id, call=call):
    print("printed in a worker process")
    logging.getLogger("w").error("logged in a worker process")
print("after")
"""


def test_an_attempt_in_another_process_stores_its_log(client: Client) -> None:
    wid = stored_workflow(client)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, client.storage.url, wid],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "printed in a worker process" in done.stdout  # tee
    (entry,) = get_logs(client.store, wid)["remote"]
    assert entry.attempt == 2 and entry.pid != 0 and entry.end is not None
    first, second = entry.text.splitlines()
    assert first == "printed in a worker process"
    assert second.endswith("ERROR w: logged in a worker process")


# --- through the executors ------------


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_workflow_tasks_logs_on_each_executor(tmp_path: Path, executor: str) -> None:
    with Client(str(tmp_path / "store"), executor=executor) as c:
        dag = fan.bind([chatty.bind(f"n{i}") for i in range(4)])
        assert c.run(dag, workflow_id="wf") == [f"n{i}" for i in range(4)]
        logs = get_logs(c.store, "wf")
        texts = sorted(entries[0].text for entries in logs.values())
    assert len(texts) == 4
    for i, text in enumerate(texts):
        hello, warned = text.splitlines()
        assert hello == f"hello from n{i}" and warned.endswith(f"WARNING chatty: warned by n{i}")


def test_logs_a_restart_set_aside_read_with_its_number(client: Client) -> None:
    wid = stored_workflow(client)
    with task_context(wid, "t", call=call_of(client, wid, "t")):
        print("before the restart")
    raw = client.storage.get(log_key(wid, "t", 1))
    assert raw is not None
    client.storage.put(log_key(wid, "t", 1, restart=1), raw)  # what restart's step 6 does
    client.storage.delete(log_key(wid, "t", 1))  # and its step 8
    with task_context(wid, "t", call=call_of(client, wid, "t")):
        print("after the restart")
    assert [e.text for e in get_logs(client.store, wid)["t"]] == ["after the restart\n"]
    old = get_logs(client.store, wid, restart=1)
    assert [e.text for e in old["t"]] == ["before the restart\n"]
    assert get_logs(client.store, wid, "t", restart=2) == {}


def test_a_record_factory_installed_over_ours_does_not_capture_twice(client: Client) -> None:
    wid = stored_workflow(client)
    with task_context(wid, "t", call=call_of(client, wid, "t")):
        pass  # our factory is in place
    ours = logging.getLogRecordFactory()

    def instrumented(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = ours(*args, **kwargs)
        record.instrumented = True
        return record

    logging.setLogRecordFactory(instrumented)  # as an instrumentation library does
    try:
        with task_context(wid, "t", call=call_of(client, wid, "t", attempt=2)):
            logging.getLogger("twice").warning("only once")
    finally:
        logging.setLogRecordFactory(ours)
    (entry,) = get_logs(client.store, wid)["t"]
    assert entry.text.count("only once") == 1, entry.text


_KILLED = """
import os, sys, time
from durableflow.model.calls import TaskCall
from durableflow.runtime import logcapture
from durableflow.runtime.context import task_context
from durableflow.storage.logs import log_key
from durableflow.storage.urls import open_storage
logcapture.FLUSH_EVERY = 0.1
storage = open_storage(sys.argv[1])
call = TaskCall(sys.argv[2], "doomed", 1, None, (), {}, {}, True, False, store_url=sys.argv[1])
with task_context(call.workflow_id, call.task_id, call=call):
    print("last words")
    deadline = time.monotonic() + 30
    while storage.get(log_key(call.workflow_id, "doomed", 1)) is None:  # step 2 happened
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os._exit(9)  # killed while the attempt runs: no step 3
"""


def test_a_worker_killed_mid_attempt_leaves_its_live_log(client: Client) -> None:
    wid = stored_workflow(client)
    done = subprocess.run(
        [sys.executable, "-c", _KILLED, client.storage.url, wid],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 9, done.stderr
    (entry,) = get_logs(client.store, wid)["doomed"]
    assert entry.running and entry.text == "last words\n"  # end None: the attempt was lost
