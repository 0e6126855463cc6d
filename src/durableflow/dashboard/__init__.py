"""The web dashboard: ``durableflow ui`` / ``python -m durableflow.dashboard``.

Reads a storage directly (no server, no database of its own) through the public
:class:`~durableflow.client.Reader`, and acts through a :class:`~durableflow.client.Client`
unless read-only. Needs the ``dashboard`` extra (Starlette, uvicorn, Jinja2);
``import durableflow`` imports none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durableflow.dashboard.app import Settings

__all__ = ["create_app", "serve"]


def create_app(settings: Settings | None = None, **kwargs: Any) -> Any:
    """The ASGI app (see :func:`durableflow.dashboard.app.create_app`)."""
    from durableflow.dashboard.app import create_app as make

    return make(settings, **kwargs)


def serve(**kwargs: Any) -> None:
    """Run the dashboard until stopped (see :func:`durableflow.dashboard.server.serve`)."""
    from durableflow.dashboard.server import serve as run

    run(**kwargs)
