"""Query parameters of the list page, the list API and the bulk actions, parsed into a Query.

``status`` (repeated or comma-separated), ``prefix``, ``name``, ``since`` / ``until`` (Unix
seconds, an ISO date/time, or an age such as ``24h``), ``limit`` and ``cursor``. A value that
cannot be used raises :class:`BadRequest`, which the app answers with HTTP 400.
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request

from durableflow.dashboard.listing import Query
from durableflow.model.durations import parse_duration
from durableflow.model.status import WorkflowStatus

__all__ = ["BadRequest", "multi_params", "parse_statuses", "parse_time", "query_of"]


class BadRequest(ValueError):
    """A query parameter or body that cannot be used (HTTP 400)."""


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


def query_of(params: dict[str, list[str]], now: float, default_limit: int = 50) -> Query:
    """The listing query the parameters ask for (the last value of a repeated one wins).

    Raises:
        BadRequest: a parameter that cannot be used.
    """

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


def multi_params(request: Request) -> dict[str, list[str]]:
    """The request's query parameters, each name with all its values in order."""
    found: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        found.setdefault(key, []).append(value)
    return found
