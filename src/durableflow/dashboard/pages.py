"""The dashboard's HTML pages, rendered on the server.

``/`` (home), ``/workflows`` (list), ``/workflows/{id}``, ``/workflows/{id}/tasks/{task_id}``
and ``/schedules``. Each page has a live part that its script re-fetches every
:data:`~durableflow.dashboard.board.POLL_SECONDS` (``?fragment=1`` returns that part alone).
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from durableflow.dashboard import layout
from durableflow.dashboard.board import Dashboard, layout_duration
from durableflow.dashboard.listing import Query
from durableflow.dashboard.params import multi_params, query_of
from durableflow.model.status import ACTIVE

__all__ = ["TASK_TABLE_LIMIT", "Pages"]

TASK_TABLE_LIMIT = 500
"""The most rows a workflow page's task table shows."""


class Pages:
    """The page endpoints, each ``(request) -> response``, over one :class:`Dashboard`."""

    def __init__(self, board: Dashboard) -> None:
        self.board = board

    def home(self, request: Request) -> Response:
        """``/``: counts per status, recent names, workers and schedules."""
        board = self.board
        return board.page(
            request,
            "home.html",
            counts=board.counts(),
            workers=board.source.workers(),
            schedules=board.source.schedules(),
        )

    def workflows(self, request: Request) -> Response:
        """``/workflows``: one page of the filtered list."""
        board = self.board
        params = multi_params(request)
        query = query_of(params, time.time())
        page, next_cursor = board.listing.page(query)
        rows = board.rows(page)
        plain = {k: v for k, v in params.items() if k not in ("cursor", "fragment")}
        return board.page(
            request,
            "list.html",
            rows=rows,
            next_cursor=next_cursor,
            query=query,
            params=plain,
            params_qs=urllib.parse.urlencode(
                [(k, v) for k, values in plain.items() for v in values]
            ),
            chosen=[s.value for s in (query.statuses or ())],
            warming=not board.listing.warmed.is_set(),
        )

    def workflow_context(self, workflow_id: str) -> dict[str, Any]:
        """What the workflow page shows: info, task table, DAG and timeline."""
        source = self.board.source
        info = source.workflow(workflow_id)
        table = source.page_tasks(info, table=TASK_TABLE_LIMIT, timeline=layout.TIMELINE_TASK_LIMIT)
        tasks = table.tasks
        now = time.time()
        return {
            "info": info,
            "tasks": table.shown[:TASK_TABLE_LIMIT],
            "tasks_total": len(tasks),
            "dag": layout.layout_dag(tasks, table.upstream),
            "timeline": layout.layout_timeline(table.shown, now, started=table.started),
            "duration": layout_duration(info, now),
            "active": info.status in ACTIVE,
            "upstream": table.upstream,
        }

    def workflow(self, request: Request) -> Response:
        """``/workflows/{id}``: the workflow, its DAG, timeline and tasks."""
        board = self.board
        workflow_id = request.path_params["workflow_id"]
        context = self.workflow_context(workflow_id)
        workers = board.source.workers() if not context["active"] else None
        env = (
            None
            if request.query_params.get("fragment") == "1"
            else (board.source.environment(workflow_id))
        )
        return board.page(request, "workflow.html", env=env, workers=workers, **context)

    def task(self, request: Request) -> Response:
        """``/workflows/{id}/tasks/{task_id}``: a task, its attempts, output and logs."""
        board = self.board
        workflow_id = request.path_params["workflow_id"]
        task_id = request.path_params["task_id"]
        task = board.source.task(workflow_id, task_id)
        output = (
            board.source.output_preview(workflow_id, task_id)
            if task.status.value == "SUCCESSFUL"
            else None
        )
        return board.page(
            request,
            "task.html",
            workflow_id=workflow_id,
            task=task,
            attempts=layout.attempts_of(task),
            output=output,
            logs=board.source.task_logs(workflow_id, task_id),
            options=task.options.to_json() if task.options else None,
        )

    def schedules(self, request: Request) -> Response:
        """``/schedules``: every schedule and its latest runs."""
        board = self.board
        schedules = board.source.schedules()
        recent = {}
        for schedule in schedules:
            rows, _ = board.listing.page(Query(prefix=f"{schedule.name}@", limit=5))
            recent[schedule.name] = rows
        return board.page(request, "schedules.html", schedules=schedules, recent=recent)
