"""The dashboard's ASGI app: its routes, how their errors are answered, its lifespan.

Pages (:mod:`~durableflow.dashboard.pages`): ``/`` (home), ``/workflows`` (list),
``/workflows/{id}``, ``/workflows/{id}/tasks/{task_id}``, ``/schedules``. Each page has a live
part that its script re-fetches every :data:`POLL_SECONDS` (``?fragment=1`` returns that part
alone).

API (JSON; errors are ``{"error": message}`` with 400, 401, 403, 404, 409 or 503):

- ``GET /api/workflows?status=S&prefix=P&name=N&since=T&until=T&limit=N&cursor=C`` ->
  ``{"workflows": [...], "next_cursor": str | null}``, newest first;
- ``GET /api/workflows/{id}`` -> info, ``tasks`` (status, attempts with times and outcome,
  error), ``edges``; ``GET /api/workflows/{id}/tasks/{task_id}`` -> the task, its attempts,
  output preview, traceback and ``logs``; ``GET /api/schedules``; ``GET /api/workers``;
- ``POST /api/workflows/{id}/resume|cancel|delete``;
  ``POST /api/bulk/resume|cancel|delete`` with the list's filters (query or JSON body) and
  ``dry_run`` -> ``{"count", "workflow_ids"}``, else a job ``{"job", "count"}`` whose progress
  is ``GET /api/bulk/jobs/{job}``; ``POST /api/schedules/{name}/pause|resume``.

(:mod:`~durableflow.dashboard.api`, :mod:`~durableflow.dashboard.bulk`.)

Security (:mod:`durableflow.dashboard.security`): a token when one is set (Bearer header,
``?token=`` once then a cookie), a CSRF header on every POST, the Host header checked on a
loopback bind, and Jinja2 autoescaping for everything read from storage.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from durableflow.dashboard.api import Api, json_error
from durableflow.dashboard.board import HERE, POLL_SECONDS, Dashboard, Settings
from durableflow.dashboard.bulk import Bulk
from durableflow.dashboard.pages import Pages
from durableflow.dashboard.params import BadRequest
from durableflow.dashboard.source import ActionRefused, Source
from durableflow.errors import StorageError, WorkflowError, WorkflowNotFoundError

__all__ = ["POLL_SECONDS", "Settings", "create_app"]


def _handled(
    board: Dashboard, func: Callable[[Request], Response], api: bool
) -> Callable[[Request], Response]:
    """``func`` with our errors answered: as JSON for the API, as an error page for pages."""

    def endpoint(request: Request) -> Response:
        try:
            return func(request)
        except WorkflowNotFoundError as err:
            return _error(404, str(err))
        except (BadRequest, ValueError) as err:
            return _error(400, str(err))
        except ActionRefused as err:
            return _error(403 if board.source.read_only else 409, str(err))
        except StorageError as err:  # the storage failed or is unreachable: try again
            return _error(503, str(err))
        except WorkflowError as err:
            return _error(409, str(err))

    def _error(status: int, message: str) -> Response:
        return json_error(status, message) if api else board.error_page(status, message)

    return endpoint


def create_app(settings: Settings | None = None, *, source: Source | None = None) -> Starlette:
    """The dashboard app for ``settings`` (a ``source`` may be given by tests)."""
    settings = settings or Settings()
    board = Dashboard(settings, source)
    if settings.warm:
        board.listing.start()
    pages, api, bulk = Pages(board), Api(board), Bulk(board)

    def page(func: Callable[[Request], Response]) -> Callable[[Request], Response]:
        return _handled(board, func, api=False)

    def json(func: Callable[[Request], Response]) -> Callable[[Request], Response]:
        return _handled(board, func, api=True)

    post = ["POST"]
    routes = [
        Route("/", page(pages.home)),
        Route("/workflows", page(pages.workflows)),
        Route("/workflows/{workflow_id}", page(pages.workflow)),
        Route("/workflows/{workflow_id}/tasks/{task_id}", page(pages.task)),
        Route("/schedules", page(pages.schedules)),
        Route("/api/workflows", json(api.workflows)),
        Route("/api/workflows/{workflow_id}", json(api.workflow)),
        Route("/api/workflows/{workflow_id}/tasks/{task_id}", json(api.task)),
        Route("/api/workflows/{workflow_id}/{action}", json(api.action), methods=post),
        Route("/api/bulk/{action}", bulk.start, methods=post),
        Route("/api/bulk/jobs/{job}", json(bulk.job)),
        Route("/api/schedules", json(api.schedules)),
        Route("/api/schedules/{name}/{action}", json(api.schedule_action), methods=post),
        Route("/api/workers", json(api.workers)),
        Route("/api/csrf", json(api.csrf)),
        Route("/api/{rest:path}", api.not_found, methods=["GET", "POST"]),
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
