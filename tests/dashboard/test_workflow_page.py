"""The workflow page of a wide fan-out: its first rows listed, every task counted and drawn.

How ``Reader.list_tasks_page`` (which the page calls) compares with ``list_tasks`` and what it
reads is pinned in ``tests/unit/test_task_page.py``.
"""

from __future__ import annotations

import re

import dashtasks
from dashseed import Seeded
from starlette.testclient import TestClient

from durableflow.dashboard.app import Settings, create_app


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
