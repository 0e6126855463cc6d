"""Serve the dashboard with uvicorn.

In the foreground (``durableflow ui``) or in a thread (``durableflow worker --ui``, tests).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.parse
import webbrowser
from typing import Any

import uvicorn

from durableflow.dashboard.app import Settings, create_app
from durableflow.dashboard.security import check_bind

__all__ = ["BackgroundServer", "serve", "settings_from", "token_from_env"]

log = logging.getLogger("durableflow.dashboard")

TOKEN_ENV = "DURABLEFLOW_UI_TOKEN"


def token_from_env(token: str | None) -> str | None:
    """``token``, else ``$DURABLEFLOW_UI_TOKEN``, else None."""
    return token or os.environ.get(TOKEN_ENV) or None


def settings_from(
    storage: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8233,
    token: str | None = None,
    read_only: bool = False,
) -> Settings:
    """Checked settings: a non-loopback ``host`` needs a token.

    Raises:
        UnsafeBindError: a non-loopback bind without a token.
    """
    token = token_from_env(token)
    check_bind(host, token)
    return Settings(storage=storage, read_only=read_only, token=token, host=host, port=port)


def _url(settings: Settings, port: int) -> str:
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    return f"http://{host}:{port}/"


def serve(
    storage: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8233,
    token: str | None = None,
    read_only: bool = False,
    open_browser: bool = False,
    log_level: str = "warning",
) -> None:
    """Serve until interrupted.

    Raises:
        UnsafeBindError: a non-loopback bind without a token (before anything is opened).
        StorageError: no durableflow storage there.
    """
    settings = settings_from(storage, host, port, token, read_only)
    app = create_app(settings)
    url = _url(settings, port)
    print(f"durableflow dashboard on {url} (storage {app_storage(app)})", flush=True)
    if settings.token:
        print(f"open {url}?token=<your token> once; the browser keeps it in a cookie", flush=True)
    if open_browser:
        landing = url + (
            f"?{urllib.parse.urlencode({'token': settings.token})}" if settings.token else ""
        )
        threading.Timer(0.8, webbrowser.open, [landing]).start()
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


def app_storage(app: Any) -> str:
    """The storage URL an app built by create_app reads."""
    board = getattr(app, "board", None)
    return board.source.url if board is not None else "?"


class BackgroundServer:
    """The dashboard served from a daemon thread; ``url`` once :meth:`start` returns."""

    def __init__(self, settings: Settings, **app_kwargs: Any) -> None:
        self.settings = settings
        self.app = create_app(settings, **app_kwargs)
        self._sock = socket.socket(
            socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM
        )
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((settings.host, settings.port))
        self.port = self._sock.getsockname()[1]
        self.url = _url(settings, self.port)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self._sock]},
            name="durableflow-ui",
            daemon=True,
        )

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the storage."""
        self.server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()
