"""``Reader.list_tasks_page`` against ``Reader.list_tasks``, and the checkpoint headers it reads."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durableflow import Client, WorkflowExecutionError, workflow
from durableflow.client import Reader
from durableflow.model.attempts import ObservedTaskStatus
from durableflow.model.info import BriefTask

pytestmark = pytest.mark.timeout(60)


@workflow.task
def source(x: int) -> int:
    return x


@workflow.task
def collect(*xs: Any) -> int:
    return len(xs)


@workflow.task
def add(*xs: int) -> int:
    return sum(xs)


@workflow.task
def flaky(counter: str, failures: int) -> str:
    """Fails its first ``failures`` attempts (counted in the file ``counter``), then succeeds."""
    done = int(Path(counter).read_text()) if os.path.exists(counter) else 0
    Path(counter).write_text(str(done + 1))
    time.sleep(0.08)  # long enough for the attempt record (RECORD_AFTER)
    if done < failures:
        raise RuntimeError(f"attempt {done + 1} fails")
    return "finally"


@workflow.task
def outer(x: int) -> Any:
    return workflow.continuation(add.options(task_id="inner").bind(x, 1))


@workflow.task
def fail_unless(flag: str, value: int) -> int:
    if not os.path.exists(flag):
        raise ValueError("boom: the flag is missing")
    return value


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with Client(str(tmp_path / "store")) as opened:
        yield opened


def _mixed(client: Client, tmp_path: Path) -> None:
    """Six sources, a task retried once, a continuation, and their gather."""
    retried = flaky.options(task_id="flaky", max_retries=2, retry_exceptions=True)
    dag = collect.options(task_id="gather").bind(
        *[source.options(task_id=f"s{i}").bind(i) for i in range(6)],
        retried.bind(str(tmp_path / "counter"), 1),
        outer.options(task_id="outer").bind(3),
    )
    client.run(dag, workflow_id="mixed")


def _counting_headers(reader: Reader, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    read: list[str] = []
    real = reader.store.read_output_header

    def counted(workflow_id: str, task_id: str) -> Any:
        read.append(task_id)
        return real(workflow_id, task_id)

    monkeypatch.setattr(reader.store, "read_output_header", counted)
    return read


def test_first_screen_tasks_equal_the_readers_and_later_checkpoints_are_not_read(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mixed(client, tmp_path)
    with Reader(str(tmp_path / "store")) as reader:
        full = reader.list_tasks("mixed")
        read = _counting_headers(reader, monkeypatch)
        page = reader.list_tasks_page("mixed", full=3, started=2)
        assert [(t.task_id, t.status) for t in page.tasks] == [(t.task_id, t.status) for t in full]
        assert page.shown == full[:3]
        assert read == [t.task_id for t in full[:3]]  # no other checkpoint header is read
        assert page.started == sum(t.start_time is not None for t in full) == len(full)
        assert page.rest[2] == BriefTask("s5", f"{__name__}.source", None, 0)  # times not read
        assert sorted(page.upstream["gather"]) == sorted(
            [f"s{i}" for i in range(6)] + ["flaky", "outer"]
        )
        assert page.upstream["inner"] == ()

        everything = reader.list_tasks_page("mixed", full=100, started=100)
        assert everything.shown == full and not everything.rest
        retried = next(t for t in everything.tasks if t.task_id == "flaky")
        assert retried.attempts == 2 and [h["attempt"] for h in retried.history] == [1]
        inner = next(t for t in everything.tasks if t.task_id == "inner")
        assert (inner.parent, inner.depth) == ("outer", 1)


def test_timeline_reads_headers_until_enough_tasks_started(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mixed(client, tmp_path)
    with Reader(str(tmp_path / "store")) as reader:
        full = reader.list_tasks("mixed")
        read = _counting_headers(reader, monkeypatch)
        page = reader.list_tasks_page("mixed", full=1, started=4)
        assert page.shown == full[:4] and len(read) == 4
        assert all(isinstance(t, BriefTask) for t in page.rest)
        assert all(t.status is ObservedTaskStatus.SUCCESSFUL for t in page.rest)


def test_failed_and_pending_tasks_read_as_the_reader_says(client: Client, tmp_path: Path) -> None:
    with pytest.raises(WorkflowExecutionError):
        client.run(fail_unless.bind(str(tmp_path / "flag"), 7), workflow_id="bad")
    client.submit(source.bind(1), workflow_id="wait")
    with Reader(str(tmp_path / "store")) as reader:
        for wid in ("bad", "wait"):
            for rows in (0, 100):
                page = reader.list_tasks_page(wid, full=rows, started=rows)
                assert page.tasks == reader.list_tasks(wid) == page.shown + page.rest
        assert reader.list_tasks("bad")[0].status is ObservedTaskStatus.FAILED
        assert reader.list_tasks("wait")[0].status is ObservedTaskStatus.PENDING
