"""Who may use the dashboard, and how actions are protected from other sites.

Rules, checked on every request before any page or API call runs:

1. **Token** (when one is set: ``--token`` or ``$DURABLEFLOW_UI_TOKEN``; required for a bind
   to anything but loopback, see :func:`check_bind`): the request must carry it as
   ``Authorization: Bearer TOKEN``, or in the ``durableflow_ui`` cookie, or as ``?token=``;
   a ``?token=`` on a page sets the cookie (HttpOnly, SameSite=Strict) and redirects to the
   same URL without it, so the token leaves the address bar. Anything else: 401.
2. **Host** (loopback bind without a token): the ``Host`` header must name a loopback host,
   which stops DNS-rebinding pages from reading the API through the browser.
3. **CSRF**: a POST must carry ``X-DurableFlow-CSRF`` equal to this process's secret (pages
   embed it; scripts ``GET /api/csrf`` or authenticate with the Bearer header, which a
   cross-site page cannot send), and an ``Origin`` header, when present, must be this host.
   A cross-site form cannot set a header, and a cross-site script cannot read the secret.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["COOKIE", "CSRF_HEADER", "Guard", "UnsafeBindError", "check_bind", "is_loopback"]

COOKIE = "durableflow_ui"
CSRF_HEADER = "x-durableflow-csrf"
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class UnsafeBindError(ValueError):
    """A bind to a non-loopback address without a token."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a token.

    Raises:
        UnsafeBindError: ``host`` is not loopback and ``token`` is empty.
    """
    if not is_loopback(host) and not token:
        raise UnsafeBindError(
            f"refusing to serve the dashboard on {host}, which other machines can reach, "
            "without a token: pass --token TOKEN or set DURABLEFLOW_UI_TOKEN "
            "(or bind 127.0.0.1)"
        )


class Guard:
    """The checks of the module docstring, as ASGI middleware (:meth:`wrap`)."""

    def __init__(self, token: str | None, host: str = "127.0.0.1") -> None:
        check_bind(host, token)
        self.token = token or None
        self.host = host
        self.csrf = secrets.token_urlsafe(24)

    def _token_ok(self, candidate: str | None) -> bool:
        return (
            self.token is not None
            and candidate is not None
            and hmac.compare_digest(candidate.encode(), self.token.encode())
        )

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind the checks."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            path = scope.get("path", "/")
            api = path.startswith("/api/")
            bearer = False
            if self.token is not None:
                auth = headers.get("authorization", "")
                if auth.lower().startswith("bearer "):
                    bearer = self._token_ok(auth[7:].strip())
                cookie = _cookie(headers.get("cookie", ""), COOKIE)
                given = (query.get("token") or [None])[-1]
                if given is not None and self._token_ok(given) and scope["method"] == "GET":
                    await _redirect_setting_cookie(scope, send, query, self.token)
                    return
                if not (bearer or self._token_ok(cookie)):
                    await _plain(
                        send,
                        401,
                        "a token is needed: Authorization: Bearer TOKEN, or "
                        "open the dashboard once with ?token=TOKEN",
                        api,
                    )
                    return
            elif not _host_is_local(headers.get("host", "")) and is_loopback(self.host):
                await _plain(send, 403, "this dashboard answers only to a loopback Host", api)
                return
            if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
                origin = headers.get("origin")
                if origin is not None and origin != "null":
                    origin_host = urllib.parse.urlsplit(origin).netloc
                    if origin_host != headers.get("host", ""):
                        await _plain(send, 403, "cross-site request refused", api)
                        return
                csrf = headers.get(CSRF_HEADER)
                if not bearer and not (
                    csrf is not None and hmac.compare_digest(csrf.encode(), self.csrf.encode())
                ):
                    await _plain(
                        send,
                        403,
                        f"missing or wrong {CSRF_HEADER} header (GET /api/csrf gives it)",
                        api,
                    )
                    return
            await app(scope, receive, send)

        return guarded


def _host_is_local(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host.startswith("[") and "]" in host:
        name = host[: host.index("]") + 1]
    return name in _LOCAL_NAMES


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return urllib.parse.unquote(value)
    return None


async def _plain(send: Send, status: int, message: str, api: bool) -> None:
    import json

    if api:
        body = json.dumps({"error": message}).encode()
        kind = b"application/json"
    else:
        body = message.encode()
        kind = b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect_setting_cookie(
    scope: Scope, send: Send, query: dict[str, list[str]], token: str
) -> None:
    rest = {k: v for k, v in query.items() if k != "token"}
    target = scope.get("path", "/") + (
        "?" + urllib.parse.urlencode(rest, doseq=True) if rest else ""
    )
    cookie = f"{COOKIE}={urllib.parse.quote(token)}; Path=/; HttpOnly; SameSite=Strict"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", target.encode("latin-1")),
                (b"set-cookie", cookie.encode("latin-1")),
                (b"content-length", b"0"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
