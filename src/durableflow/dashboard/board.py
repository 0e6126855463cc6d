"""The dashboard's settings and shared state, and how its HTML pages are rendered.

:class:`Dashboard` holds what every endpoint works on: the :class:`Source` (reads and
actions), the :class:`Listing` (the list's snapshot), the security :class:`Guard` and the
Jinja2 templates (autoescaped: everything read from storage is untrusted text). The endpoints
themselves are in :mod:`~durableflow.dashboard.pages`, :mod:`~durableflow.dashboard.api` and
:mod:`~durableflow.dashboard.bulk`.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import time
import urllib.parse
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from durableflow.dashboard.listing import MAX_LIMIT, Listing, Query, Row
from durableflow.dashboard.security import Guard
from durableflow.dashboard.source import Source
from durableflow.model.durations import format_seconds
from durableflow.model.info import WorkflowInfo
from durableflow.model.status import RESUMABLE_STATUSES, WorkflowStatus

__all__ = ["HERE", "POLL_SECONDS", "Dashboard", "Settings", "first_line", "layout_duration"]

POLL_SECONDS = 2.0
"""How often a page's script re-fetches its live part."""
HERE = Path(__file__).parent


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


def first_line(text: str | None) -> str:
    """The first line of a text, at most 200 characters ("" for none)."""
    return "" if not text else text.strip().splitlines()[0][:200] if text.strip() else ""


def _show_json(value: Any, indent: int | None = None) -> str:
    """A value as JSON text for people (the template escapes it); a str as itself."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=indent, ensure_ascii=False, default=repr)


def layout_duration(info: WorkflowInfo, now: float) -> float | None:
    """A workflow's duration; a RUNNING one's so far."""
    if info.start_time is None:
        return None
    if info.end_time is None:
        return now - info.start_time if info.status is WorkflowStatus.RUNNING else None
    return info.end_time - info.start_time


class Dashboard:
    """The app's state: the source, the listing, the guard and the templates."""

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
            first_line=first_line,
            show_json=_show_json,
        )
        for name in self.templates.list_templates():  # compiled now, not on a first view
            self.templates.get_template(name)

    # --- rendering ---------------------------------------------------------------------------
    def page(self, request: Request, name: str, **context: Any) -> HTMLResponse:
        """Template ``name`` as a page, or its live part alone with ``?fragment=1``."""
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

    def error_page(self, status: int, message: str) -> HTMLResponse:
        """The error page of a page request that failed."""
        html = self.templates.get_template("error.html").render(
            status=status,
            message=message,
            read_only=self.source.read_only,
            csrf=self.guard.csrf,
            fragment=False,
            storage_url=self.source.url,
            poll_ms=0,
            request_path="",
        )
        return HTMLResponse(html, status_code=status)

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
                    "error": first_line(info.error.summary()) if info.error else None,
                }
            )
        return out

    def counts(self) -> dict[str, Any]:
        """Home: workflows per status, FAILED and RESUMABLE of the last 24 h, recent names."""
        snap = self.listing.snapshot(roots=True)
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
