"""The dashboard's public JSON API under ``/api/`` (bulk actions: :mod:`.bulk`).

Errors are ``{"error": message}`` with 400, 401, 403, 404, 409 or 503.

- ``GET /api/workflows?status=S&prefix=P&name=N&since=T&until=T&limit=N&cursor=C`` ->
  ``{"workflows": [...], "next_cursor": str | null}``, newest first;
- ``GET /api/workflows/{id}`` -> info, ``tasks`` (status, attempts with times and outcome,
  error), ``edges``; ``GET /api/workflows/{id}/tasks/{task_id}`` -> the task, its attempts,
  output preview, traceback and ``logs``; ``GET /api/schedules``; ``GET /api/workers``;
  ``GET /api/csrf``;
- ``POST /api/workflows/{id}/resume|cancel|delete``; ``POST /api/schedules/{name}/pause|resume``.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from durableflow.dashboard import layout
from durableflow.dashboard.board import Dashboard
from durableflow.dashboard.params import multi_params, query_of
from durableflow.model.info import TaskInfo, WorkflowInfo

__all__ = ["ACTIONS", "Api", "json_error", "task_json", "workflow_json"]

ACTIONS = ("resume", "cancel", "delete")
"""The actions on a workflow (one, or in bulk)."""


def json_error(status: int, message: str) -> JSONResponse:
    """An API error: ``{"error": message}``."""
    return JSONResponse({"error": message}, status_code=status)


def task_json(task: TaskInfo) -> dict[str, Any]:
    """A task's row with its attempts and error."""
    return {
        **task.to_row(),
        "attempt_list": layout.attempts_of(task),
        "error_detail": task.error.to_json() if task.error else None,
    }


def workflow_json(info: WorkflowInfo) -> dict[str, Any]:
    """A workflow's info as JSON."""
    return {
        "workflow_id": info.workflow_id,
        "status": info.status.value,
        "name": info.name,
        "root_task_id": info.root_task_id,
        "created_at": info.created_at,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "updated_at": info.updated_at,
        "duration": info.duration,
        "tasks_done": info.tasks_done,
        "tasks_total": info.tasks_total,
        "error": info.error.to_json() if info.error else None,
        "metadata": dict(info.user_metadata),
    }


class Api:
    """The JSON endpoints, each ``(request) -> response``, over one :class:`Dashboard`."""

    def __init__(self, board: Dashboard) -> None:
        self.board = board

    def workflows(self, request: Request) -> Response:
        """``GET /api/workflows``: one page of the filtered list."""
        board = self.board
        query = query_of(multi_params(request), time.time())
        page, next_cursor = board.listing.page(query)
        return JSONResponse({"workflows": board.rows(page), "next_cursor": next_cursor})

    def workflow(self, request: Request) -> Response:
        """``GET /api/workflows/{id}``: the workflow and every task."""
        source = self.board.source
        workflow_id = request.path_params["workflow_id"]
        info = source.workflow(workflow_id)
        tasks = source.tasks(workflow_id, info)
        upstream = source.edges(workflow_id, tasks)
        return JSONResponse(
            {
                **workflow_json(info),
                "tasks": [
                    {
                        **task_json(t),
                        "upstream": list(upstream.get(t.task_id, ())),
                    }
                    for t in tasks
                ],
            }
        )

    def task(self, request: Request) -> Response:
        """``GET /api/workflows/{id}/tasks/{task_id}``: a task, its output and logs."""
        source = self.board.source
        workflow_id = request.path_params["workflow_id"]
        task_id = request.path_params["task_id"]
        task = source.task(workflow_id, task_id)
        output = (
            source.output_preview(workflow_id, task_id)
            if task.status.value == "SUCCESSFUL"
            else None
        )
        return JSONResponse(
            {
                **task_json(task),
                "options": task.options.to_json() if task.options else None,
                "output": output,
                "logs": source.task_logs(workflow_id, task_id),
            }
        )

    def schedules(self, request: Request) -> Response:
        """``GET /api/schedules``."""
        return JSONResponse({"schedules": [s.to_json() for s in self.board.source.schedules()]})

    def workers(self, request: Request) -> Response:
        """``GET /api/workers``: live workers and the workflows they hold."""
        return JSONResponse({"workers": self.board.source.workers()})

    def csrf(self, request: Request) -> Response:
        """``GET /api/csrf``: the header value every POST must carry."""
        return JSONResponse({"csrf": self.board.guard.csrf})

    def action(self, request: Request) -> Response:
        """``POST /api/workflows/{id}/resume|cancel|delete``."""
        board = self.board
        workflow_id = request.path_params["workflow_id"]
        action = request.path_params["action"]
        if action not in ACTIONS:
            return json_error(404, f"no action {action!r}; use one of {', '.join(ACTIONS)}")
        try:
            result: dict[str, Any] = getattr(board.source, action)(workflow_id)
        finally:
            board.listing.invalidate()
        if action == "resume":
            result["message"] = (
                "handed to the workers"
                if result["workers"]
                else "handed to the workers, but no worker is alive: start `durableflow worker`"
            )
        return JSONResponse({"workflow_id": workflow_id, "action": action, **result})

    def schedule_action(self, request: Request) -> Response:
        """``POST /api/schedules/{name}/pause|resume``."""
        board = self.board
        name = request.path_params["name"]
        action = request.path_params["action"]
        if action not in ("pause", "resume"):
            return json_error(404, f"no schedule action {action!r}; use pause or resume")
        client = board.source._actor()
        (client.pause_schedule if action == "pause" else client.resume_schedule)(name)
        board.listing.invalidate()
        return JSONResponse({"schedule": name, "paused": action == "pause"})

    def not_found(self, request: Request) -> Response:
        """Any other ``/api/`` path."""
        return json_error(404, f"no API endpoint {request.url.path}")
