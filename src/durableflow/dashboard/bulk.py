"""Bulk actions: resume, cancel or delete every workflow a list filter selects.

``POST /api/bulk/resume|cancel|delete`` takes the list's filters (query parameters, or a JSON
body) and ``dry_run``:

1. the filter's statuses are narrowed to those the action applies to (:data:`APPLIES`);
2. the selection is read from a fresh scan of the index (never a stale snapshot);
3. a dry run answers ``{"count", "workflow_ids"}`` (the first 200) and does nothing;
4. else a job starts on a thread of its own, acting on each workflow in turn, and the answer
   is ``{"job", "count"}`` (HTTP 202); ``GET /api/bulk/jobs/{job}`` tells its progress: how
   many are done and which failed, with why.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from durableflow.dashboard.api import ACTIONS, json_error
from durableflow.dashboard.board import Dashboard
from durableflow.dashboard.params import BadRequest, multi_params, query_of
from durableflow.model.status import WorkflowStatus

__all__ = ["APPLIES", "Bulk", "BulkJob"]

APPLIES = {
    "resume": frozenset({WorkflowStatus.FAILED, WorkflowStatus.RESUMABLE}),
    "cancel": frozenset(
        {
            WorkflowStatus.RUNNING,
            WorkflowStatus.PENDING,
            WorkflowStatus.FAILED,
            WorkflowStatus.RESUMABLE,
        }
    ),
    "delete": frozenset(
        {
            WorkflowStatus.SUCCESSFUL,
            WorkflowStatus.FAILED,
            WorkflowStatus.RESUMABLE,
            WorkflowStatus.CANCELED,
        }
    ),
}
"""The statuses each action applies to: a bulk action selects only those."""


@dataclasses.dataclass
class BulkJob:
    """A bulk action in progress."""

    action: str
    ids: list[str]
    done: int = 0
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    finished: bool = False

    def to_json(self, job_id: str) -> dict[str, Any]:
        """The job's progress as the API tells it."""
        return {
            "job": job_id,
            "action": self.action,
            "count": len(self.ids),
            "done": self.done,
            "failed": dict(self.failed),
            "finished": self.finished,
        }


class Bulk:
    """The bulk endpoints over one :class:`Dashboard`, and the jobs they started."""

    def __init__(self, board: Dashboard) -> None:
        self.board = board
        self.jobs: dict[str, BulkJob] = {}
        self._job_ids = itertools.count(1)
        self._lock = threading.Lock()

    async def start(self, request: Request) -> Response:
        """``POST /api/bulk/{action}``: the parameters, then steps 1-4 on a thread."""
        action = request.path_params["action"]
        if action not in ACTIONS:
            return json_error(404, f"no bulk action {action!r}; use one of {', '.join(ACTIONS)}")
        params = multi_params(request)
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                return json_error(400, "the body is not JSON")
            if not isinstance(body, dict):
                return json_error(400, "the body must be a JSON object")
            for key, value in body.items():
                values = value if isinstance(value, list) else [value]
                params[key] = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        return await run_in_threadpool(lambda: self.run(action, params))

    def run(self, action: str, params: dict[str, list[str]]) -> Response:
        """Steps 1-4 of ``action`` on what ``params`` select."""
        board = self.board
        try:
            query = query_of(params, time.time(), default_limit=1)
        except BadRequest as err:
            return json_error(400, str(err))
        if board.source.read_only:
            return json_error(403, "the dashboard is read-only (--read-only)")
        wanted = APPLIES[action]  # 1
        statuses = wanted if query.statuses is None else query.statuses & wanted
        query = dataclasses.replace(query, statuses=frozenset(statuses), cursor=None)
        fresh = board.listing.select(query, max_age=0.0) if statuses else []  # 2
        ids = [row.workflow_id for row in fresh]
        dry = (params.get("dry_run") or ["false"])[-1].lower() in ("1", "true", "yes", "on")
        if dry:  # 3
            return JSONResponse(
                {"action": action, "dry_run": True, "count": len(ids), "workflow_ids": ids[:200]}
            )
        job = BulkJob(action, ids)  # 4
        with self._lock:
            job_id = str(next(self._job_ids))
            self.jobs[job_id] = job

        def work() -> None:
            for workflow_id in ids:
                try:
                    getattr(board.source, action)(workflow_id)
                except Exception as err:
                    job.failed[workflow_id] = f"{type(err).__name__}: {err}"
                job.done += 1
            board.listing.invalidate()
            job.finished = True

        threading.Thread(target=work, name=f"durableflow-ui-bulk-{job_id}", daemon=True).start()
        return JSONResponse(job.to_json(job_id), status_code=202)

    def job(self, request: Request) -> Response:
        """``GET /api/bulk/jobs/{job}``: a job's progress."""
        job_id = request.path_params["job"]
        job = self.jobs.get(job_id)
        if job is None:
            return json_error(404, f"no bulk job {job_id!r}")
        return JSONResponse(job.to_json(job_id))
