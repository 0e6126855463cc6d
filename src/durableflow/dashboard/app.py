"""The dashboard's ASGI app: server-rendered pages and the public JSON API under ``/api/``.

Pages: ``/`` (home), ``/workflows`` (list), ``/workflows/{id}``,
``/workflows/{id}/tasks/{task_id}``, ``/schedules``. Each page has a live part that its
script re-fetches every :data:`POLL_SECONDS` (``?fragment=1`` returns that part alone).

API (JSON; errors are ``{"error": message}`` with 400, 401, 403, 404 or 409):

- ``GET /api/workflows?status=S&prefix=P&name=N&since=T&until=T&limit=N&cursor=C`` ->
  ``{"workflows": [...], "next_cursor": str | null}``, newest first;
- ``GET /api/workflows/{id}`` -> info, ``tasks`` (status, attempts with times and outcome,
  error), ``edges``; ``GET /api/workflows/{id}/tasks/{task_id}`` -> the task, its attempts,
  output preview, traceback and ``logs``; ``GET /api/schedules``; ``GET /api/workers``;
- ``POST /api/workflows/{id}/resume|cancel|delete``;
  ``POST /api/bulk/resume|cancel|delete`` with the list's filters (query or JSON body) and
  ``dry_run`` -> ``{"count", "workflow_ids"}``, else a job ``{"job", "count"}`` whose progress
  is ``GET /api/bulk/jobs/{job}``; ``POST /api/schedules/{name}/pause|resume``.

Security (:mod:`durableflow.dashboard.security`): a token when one is set (Bearer header,
``?token=`` once then a cookie), a CSRF header on every POST, the Host header checked on a
loopback bind, and Jinja2 autoescaping for everything read from storage.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from durableflow.dashboard import layout
from durableflow.dashboard.listing import MAX_LIMIT, Listing, Query, Row
from durableflow.dashboard.security import Guard
from durableflow.dashboard.source import ActionRefused, Source
from durableflow.errors import StorageError, WorkflowError, WorkflowNotFoundError
from durableflow.model.attempts import AttemptRecord
from durableflow.model.durations import format_seconds, parse_duration
from durableflow.model.info import TaskInfo, WorkflowInfo
from durableflow.model.status import ACTIVE, RESUMABLE_STATUSES, WorkflowStatus

__all__ = ["POLL_SECONDS", "Settings", "create_app"]

POLL_SECONDS = 2.0
HERE = Path(__file__).parent
TASK_TABLE_LIMIT = 500
_ACTIONS = ("resume", "cancel", "delete")
_APPLIES = {
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


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the dashboard runs."""

    storage: str | None = None
    read_only: bool = False
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8233
    warm: bool = True
    """Take the listing's first snapshot at startup and keep it fresh in the background."""
    list_max_age: float = 2.0
    """Seconds a listing snapshot serves requests (0: every list request scans the index)."""


class BadRequest(ValueError):
    """A query parameter or body that cannot be used (HTTP 400)."""


def _fmt_time(value: float | None) -> str:
    if value is None:
        return "—"
    return dt.datetime.fromtimestamp(value, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _fmt_duration(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    return format_seconds(value)


def _first_line(text: str | None) -> str:
    return "" if not text else text.strip().splitlines()[0][:200] if text.strip() else ""


def _show_json(value: Any, indent: int | None = None) -> str:
    """A value as JSON text for people (the template escapes it); a str as itself."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=indent, ensure_ascii=False, default=repr)


def parse_time(value: str | None, now: float) -> float | None:
    """A time parameter: Unix seconds, an ISO date/time (UTC unless it says), or an age.

    An age (``24h``, ``7d``) means that long ago.

    Raises:
        BadRequest: none of those.
    """
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"not a time: {value!r} (use Unix seconds, an ISO date, or an age such as 24h)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def parse_statuses(values: list[str]) -> frozenset[WorkflowStatus] | None:
    """``status`` parameters (repeated or comma-separated) as a set; None: all.

    Raises:
        BadRequest: an unknown status.
    """
    names = [n.strip().upper() for v in values for n in v.split(",") if n.strip()]
    if not names:
        return None
    try:
        return frozenset(WorkflowStatus(n) for n in names)
    except ValueError:
        known = ", ".join(s.value for s in WorkflowStatus)
        raise BadRequest(f"unknown status in {names}; expected some of {known}") from None


def _query(params: dict[str, list[str]], now: float, default_limit: int = 50) -> Query:
    def one(name: str) -> str | None:
        values = params.get(name) or []
        return values[-1] if values and values[-1] != "" else None

    limit_text = one("limit")
    try:
        limit = int(limit_text) if limit_text is not None else default_limit
    except ValueError:
        raise BadRequest(f"limit must be an int, got {limit_text!r}") from None
    return Query(
        statuses=parse_statuses(params.get("status") or []),
        prefix=one("prefix"),
        name=one("name"),
        since=parse_time(one("since"), now),
        until=parse_time(one("until"), now),
        limit=limit,
        cursor=one("cursor"),
    )


def _multi(request: Request) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        found.setdefault(key, []).append(value)
    return found


def _task_json(task: TaskInfo, record: AttemptRecord | None) -> dict[str, Any]:
    return {
        **task.to_row(),
        "attempt_list": layout.attempts_of(task, record),
        "error_detail": task.error.to_json() if task.error else None,
    }


def _workflow_json(info: WorkflowInfo) -> dict[str, Any]:
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


@dataclasses.dataclass
class BulkJob:
    """A bulk action in progress."""

    action: str
    ids: list[str]
    done: int = 0
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    finished: bool = False

    def to_json(self, job_id: str) -> dict[str, Any]:
        return {
            "job": job_id,
            "action": self.action,
            "count": len(self.ids),
            "done": self.done,
            "failed": dict(self.failed),
            "finished": self.finished,
        }


class Dashboard:
    """The app's state: the source, the listing, the templates, running bulk jobs."""

    def __init__(self, settings: Settings, source: Source | None = None) -> None:
        self.settings = settings
        self.source = source or Source(settings.storage, read_only=settings.read_only)
        self.listing = Listing(self.source.reader, max_age=settings.list_max_age)
        self.guard = Guard(settings.token, settings.host)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(HERE / "templates")),
            autoescape=True,  # every template, whatever its name: storage text is untrusted
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters.update(
            time=_fmt_time,
            duration=_fmt_duration,
            first_line=_first_line,
            show_json=_show_json,
        )
        for name in self.templates.list_templates():  # compiled now, not on a first view
            self.templates.get_template(name)
        self.jobs: dict[str, BulkJob] = {}
        self._job_ids = itertools.count(1)
        self._lock = threading.Lock()

    # --- rendering ---------------------------------------------------------------------------
    def page(self, request: Request, name: str, **context: Any) -> HTMLResponse:
        fragment = request.query_params.get("fragment") == "1"
        template = self.templates.get_template(name)
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "fragment"]
        live_url = request.url.path + "?" + urllib.parse.urlencode([*kept, ("fragment", "1")])
        html = template.render(
            live_url=live_url,
            fragment=fragment,
            read_only=self.source.read_only,
            csrf=self.guard.csrf,
            poll_ms=int(POLL_SECONDS * 1000),
            storage_url=self.source.url,
            statuses=[s.value for s in WorkflowStatus],
            request_path=request.url.path,
            **context,
        )
        return HTMLResponse(html)

    def rows(self, page: list[Row]) -> list[dict[str, Any]]:
        """A list page's rows, with what the run record and the specs say."""
        now = time.time()
        out = []
        for row in page:
            info = self.source.row_info(row.workflow_id, row.status)
            if info is None:
                continue
            out.append(
                {
                    "workflow_id": row.workflow_id,
                    "status": info.status.value,
                    "name": info.name or row.root_task_id,
                    "root_task_id": info.root_task_id,
                    "created_at": info.created_at,
                    "start_time": info.start_time,
                    "end_time": info.end_time,
                    "duration": layout_duration(info, now),
                    "tasks_done": info.tasks_done,
                    "tasks_total": info.tasks_total,
                    "error": _first_line(info.error.summary()) if info.error else None,
                }
            )
        return out

    def counts(self) -> dict[str, Any]:
        """Home: workflows per status, FAILED and RESUMABLE of the last 24 h, recent names."""
        snap = self.listing.snapshot()
        now = time.time()
        per_status = {s.value: 0 for s in WorkflowStatus}
        for status, n in collections.Counter(snap.status.values()).items():
            per_status[status.value] = n
        recent_bad = {"FAILED": 0, "RESUMABLE": 0}
        day = Query(since=now - 86400, statuses=frozenset(RESUMABLE_STATUSES), limit=MAX_LIMIT)
        for row in self.listing.matching(day, snap):
            recent_bad[row.status.value] += 1
        runs = collections.Counter(snap.roots.get(w) or "?" for w in snap.status)
        latest: dict[str, Row] = {}
        for row in self.listing.matching(Query(), snap):
            latest.setdefault(row.root_task_id or "?", row)
            if len(latest) >= 15 or len(latest) == len(runs):
                break
        names = [{"name": n, "runs": runs[n], "latest": r} for n, r in latest.items()]
        return {
            "total": len(snap.status),
            "per_status": per_status,
            "last_day": recent_bad,
            "names": names,
        }


def layout_duration(info: WorkflowInfo, now: float) -> float | None:
    """A workflow's duration; a RUNNING one's so far."""
    if info.start_time is None:
        return None
    if info.end_time is None:
        return now - info.start_time if info.status is WorkflowStatus.RUNNING else None
    return info.end_time - info.start_time


def create_app(settings: Settings | None = None, *, source: Source | None = None) -> Starlette:
    """The dashboard app for ``settings`` (a ``source`` may be given by tests)."""
    settings = settings or Settings()
    board = Dashboard(settings, source)
    if settings.warm:
        board.listing.start()

    def json_error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def handled(func: Callable[[Request], Response], api: bool) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return func(request)
            except WorkflowNotFoundError as err:
                return _error(404, str(err), api)
            except (BadRequest, ValueError) as err:
                return _error(400, str(err), api)
            except ActionRefused as err:
                return _error(403 if board.source.read_only else 409, str(err), api)
            except StorageError as err:  # the storage failed or is unreachable: try again
                return _error(503, str(err), api)
            except WorkflowError as err:
                return _error(409, str(err), api)

        def _error(status: int, message: str, api: bool) -> Response:
            if api:
                return json_error(status, message)
            html = board.templates.get_template("error.html").render(
                status=status,
                message=message,
                read_only=board.source.read_only,
                csrf=board.guard.csrf,
                fragment=False,
                storage_url=board.source.url,
                poll_ms=0,
                request_path="",
            )
            return HTMLResponse(html, status_code=status)

        return endpoint

    # --- pages ---------------------------------------------------------------------------------
    def home(request: Request) -> Response:
        return board.page(
            request,
            "home.html",
            counts=board.counts(),
            workers=board.source.workers(),
            schedules=board.source.schedules(),
        )

    def workflows_page(request: Request) -> Response:
        params = _multi(request)
        query = _query(params, time.time())
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

    def workflow_context(workflow_id: str) -> dict[str, Any]:
        info = board.source.workflow(workflow_id)
        tasks = board.source.tasks(workflow_id, info)
        upstream = board.source.edges(workflow_id, tasks)
        now = time.time()
        return {
            "info": info,
            "tasks": tasks[:TASK_TABLE_LIMIT],
            "tasks_total": len(tasks),
            "dag": layout.layout_dag(tasks, upstream),
            "timeline": layout.layout_timeline(
                tasks, now, records=board.source.attempt_records(tasks, info)
            ),
            "duration": layout_duration(info, now),
            "active": info.status in ACTIVE,
            "upstream": upstream,
        }

    def workflow_page(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        context = workflow_context(workflow_id)
        workers = board.source.workers() if not context["active"] else None
        env = (
            None
            if request.query_params.get("fragment") == "1"
            else (board.source.environment(workflow_id))
        )
        return board.page(request, "workflow.html", env=env, workers=workers, **context)

    def task_page(request: Request) -> Response:
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
            attempts=layout.attempts_of(task, board.source.attempt_record(task)),
            output=output,
            logs=board.source.task_logs(workflow_id, task_id),
            options=task.options.to_json() if task.options else None,
        )

    def schedules_page(request: Request) -> Response:
        schedules = board.source.schedules()
        recent = {}
        for schedule in schedules:
            rows, _ = board.listing.page(Query(prefix=f"{schedule.name}@", limit=5))
            recent[schedule.name] = rows
        return board.page(request, "schedules.html", schedules=schedules, recent=recent)

    # --- API -----------------------------------------------------------------------------------
    def api_workflows(request: Request) -> Response:
        query = _query(_multi(request), time.time())
        page, next_cursor = board.listing.page(query)
        return JSONResponse({"workflows": board.rows(page), "next_cursor": next_cursor})

    def api_workflow(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        info = board.source.workflow(workflow_id)
        tasks = board.source.tasks(workflow_id, info)
        upstream = board.source.edges(workflow_id, tasks)
        records = board.source.attempt_records(tasks, info)
        return JSONResponse(
            {
                **_workflow_json(info),
                "tasks": [
                    {
                        **_task_json(t, records.get(t.task_id)),
                        "upstream": list(upstream.get(t.task_id, ())),
                    }
                    for t in tasks
                ],
            }
        )

    def api_task(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        task_id = request.path_params["task_id"]
        task = board.source.task(workflow_id, task_id)
        output = (
            board.source.output_preview(workflow_id, task_id)
            if task.status.value == "SUCCESSFUL"
            else None
        )
        return JSONResponse(
            {
                **_task_json(task, board.source.attempt_record(task)),
                "options": task.options.to_json() if task.options else None,
                "output": output,
                "logs": board.source.task_logs(workflow_id, task_id),
            }
        )

    def api_schedules(request: Request) -> Response:
        return JSONResponse({"schedules": [s.to_json() for s in board.source.schedules()]})

    def api_workers(request: Request) -> Response:
        return JSONResponse({"workers": board.source.workers()})

    def api_csrf(request: Request) -> Response:
        return JSONResponse({"csrf": board.guard.csrf})

    def api_action(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        action = request.path_params["action"]
        if action not in _ACTIONS:
            return json_error(404, f"no action {action!r}; use one of {', '.join(_ACTIONS)}")
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

    async def api_bulk(request: Request) -> Response:
        action = request.path_params["action"]
        if action not in _ACTIONS:
            return json_error(404, f"no bulk action {action!r}; use one of {', '.join(_ACTIONS)}")
        params = _multi(request)
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
        return await _in_thread(lambda: bulk(action, params))

    def bulk(action: str, params: dict[str, list[str]]) -> Response:
        try:
            query = _query(params, time.time(), default_limit=1)
        except BadRequest as err:
            return json_error(400, str(err))
        if board.source.read_only:
            return json_error(403, "the dashboard is read-only (--read-only)")
        wanted = _APPLIES[action]
        statuses = wanted if query.statuses is None else query.statuses & wanted
        query = dataclasses.replace(query, statuses=frozenset(statuses), cursor=None)
        fresh = board.listing.select(query, max_age=0.0) if statuses else []
        ids = [row.workflow_id for row in fresh]
        dry = (params.get("dry_run") or ["false"])[-1].lower() in ("1", "true", "yes", "on")
        if dry:
            return JSONResponse(
                {"action": action, "dry_run": True, "count": len(ids), "workflow_ids": ids[:200]}
            )
        job = BulkJob(action, ids)
        with board._lock:
            job_id = str(next(board._job_ids))
            board.jobs[job_id] = job

        def run() -> None:
            for workflow_id in ids:
                try:
                    getattr(board.source, action)(workflow_id)
                except Exception as err:
                    job.failed[workflow_id] = f"{type(err).__name__}: {err}"
                job.done += 1
            board.listing.invalidate()
            job.finished = True

        threading.Thread(target=run, name=f"durableflow-ui-bulk-{job_id}", daemon=True).start()
        return JSONResponse(job.to_json(job_id), status_code=202)

    def api_job(request: Request) -> Response:
        job_id = request.path_params["job"]
        job = board.jobs.get(job_id)
        if job is None:
            return json_error(404, f"no bulk job {job_id!r}")
        return JSONResponse(job.to_json(job_id))

    def api_schedule_action(request: Request) -> Response:
        name = request.path_params["name"]
        action = request.path_params["action"]
        if action not in ("pause", "resume"):
            return json_error(404, f"no schedule action {action!r}; use pause or resume")
        client = board.source._actor()
        (client.pause_schedule if action == "pause" else client.resume_schedule)(name)
        board.listing.invalidate()
        return JSONResponse({"schedule": name, "paused": action == "pause"})

    async def _in_thread(call: Callable[[], Response]) -> Response:
        return await run_in_threadpool(call)

    def api_not_found(request: Request) -> Response:
        return json_error(404, f"no API endpoint {request.url.path}")

    routes = [
        Route("/", handled(home, False)),
        Route("/workflows", handled(workflows_page, False)),
        Route("/workflows/{workflow_id}", handled(workflow_page, False)),
        Route("/workflows/{workflow_id}/tasks/{task_id}", handled(task_page, False)),
        Route("/schedules", handled(schedules_page, False)),
        Route("/api/workflows", handled(api_workflows, True)),
        Route("/api/workflows/{workflow_id}", handled(api_workflow, True)),
        Route("/api/workflows/{workflow_id}/tasks/{task_id}", handled(api_task, True)),
        Route("/api/workflows/{workflow_id}/{action}", handled(api_action, True), methods=["POST"]),
        Route("/api/bulk/{action}", api_bulk, methods=["POST"]),
        Route("/api/bulk/jobs/{job}", handled(api_job, True)),
        Route("/api/schedules", handled(api_schedules, True)),
        Route(
            "/api/schedules/{name}/{action}", handled(api_schedule_action, True), methods=["POST"]
        ),
        Route("/api/workers", handled(api_workers, True)),
        Route("/api/csrf", handled(api_csrf, True)),
        Route("/api/{rest:path}", api_not_found, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        board.listing.stop()
        board.source.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.board = board
    guarded = board.guard.wrap(app)
    setattr(guarded, "board", board)  # noqa: B010 - for the server's banner and tests
    return guarded  # type: ignore[return-value]
