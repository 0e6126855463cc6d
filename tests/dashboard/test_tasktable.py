"""The workflow page's task table (``tasktable.page_tasks``) against the Reader's ``list_tasks``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dashtasks
import pytest
from dashseed import Seeded
from starlette.testclient import TestClient

from durableflow.client import Reader
from durableflow.dashboard.app import Settings, create_app
from durableflow.dashboard.tasktable import BriefTask, page_tasks


def _mixed(empty: Seeded, tmp_path: Path) -> None:
    """Six sources, a task retried once, a continuation, and their gather."""
    flaky = dashtasks.flaky.options(task_id="flaky", max_retries=2, retry_exceptions=True)
    dag = dashtasks.collect.options(task_id="gather").bind(
        *[dashtasks.source.options(task_id=f"s{i}").bind(i) for i in range(6)],
        flaky.bind(str(tmp_path / "counter"), 1),
        dashtasks.outer.options(task_id="outer").bind(3),
    )
    empty.runner.run(dag, workflow_id="mixed")


def _counting_headers(reader: Reader, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    read: list[str] = []
    real = reader.store.read_output_header

    def counted(workflow_id: str, task_id: str) -> Any:
        read.append(task_id)
        return real(workflow_id, task_id)

    monkeypatch.setattr(reader.store, "read_output_header", counted)
    return read


def test_first_screen_tasks_equal_the_readers_and_later_checkpoints_are_not_read(
    empty: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mixed(empty, tmp_path)
    with Reader(empty.storage) as reader:
        full = reader.list_tasks("mixed")
        info = reader.get_workflow("mixed")
        read = _counting_headers(reader, monkeypatch)
        page = page_tasks(reader, info, table=3, timeline=2)
        assert [(t.task_id, t.status) for t in page.tasks] == [(t.task_id, t.status) for t in full]
        assert page.shown == full[:3]
        assert read == [t.task_id for t in full[:3]]  # no other checkpoint header is read
        assert page.started == sum(t.start_time is not None for t in full) == len(full)
        assert page.rest[2] == BriefTask("s5", "dashtasks.source", None, 0)  # times not read
        assert sorted(page.upstream["gather"]) == sorted(
            [f"s{i}" for i in range(6)] + ["flaky", "outer"]
        )
        assert page.upstream["inner"] == ()

        everything = page_tasks(reader, info, table=100, timeline=100)
        assert everything.shown == full and not everything.rest
        flaky = next(t for t in everything.tasks if t.task_id == "flaky")
        assert flaky.attempts == 2 and [h["attempt"] for h in flaky.history] == [1]
        inner = next(t for t in everything.tasks if t.task_id == "inner")
        assert (inner.parent, inner.depth) == ("outer", 1)


def test_failed_and_pending_tasks_read_as_the_reader_says(empty: Seeded) -> None:
    empty.failed("bad")
    empty.pending("wait")
    with Reader(empty.storage) as reader:
        for wid in ("bad", "wait"):
            info = reader.get_workflow(wid)
            for table in (0, 100):
                page = page_tasks(reader, info, table=table, timeline=table)
                assert page.tasks == reader.list_tasks(wid) == page.shown + page.rest
        assert reader.list_tasks("bad")[0].status.value == "FAILED"


def test_page_of_a_wide_fan_out_lists_its_first_rows_and_counts_all(empty: Seeded) -> None:
    wide = 520
    dag = dashtasks.add.options(task_id="gather").bind(
        *[dashtasks.source.options(task_id=f"s{i:03d}").bind(i) for i in range(wide)]
    )
    empty.runner.run(dag, workflow_id="wide")
    app = create_app(Settings(storage=empty.storage, warm=False, read_only=True))
    with TestClient(app, base_url="http://127.0.0.1:8233") as api:
        html = api.get("/workflows/wide").text
        assert f"The first 300 of {wide + 1} started tasks." in html
        assert f"The first 500 of {wide + 1} tasks" in html
        assert len(re.findall(r'<tr data-task-id="s\d+" data-status="SUCCESSFUL"', html)) == 500
        assert f'data-status="SUCCESSFUL" data-count="{wide}"' in html  # one DAG node
        rows = api.get("/api/workflows/wide").json()["tasks"]
        assert len(rows) == wide + 1 and all(r["start_time"] is not None for r in rows)
