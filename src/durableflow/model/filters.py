"""One filter shape for every bulk call, listing and prune: pure, testable with ``assert``.

Keyword arguments everywhere (``list_all``, ``cancel_all``, ``delete_all``, ``resume_all``,
``prune``, the CLI's ``--status``, ``--prefix``, ``--name``, ``--older-than``):

- ``status``: a status, a status name, or a set of either (any case);
- ``prefix``: the workflow id starts with it;
- ``name``: the root task's name: its full ``module.qualname``, or a dotted tail of it
  (``"etl"`` and ``"jobs.etl"`` both match ``jobs.etl``);
- ``older_than``: a duration (``"30d"``, ``"12h"``, ``"0s"``, seconds, or a ``timedelta``),
  measured from the end of the run, or from its start while it has not ended (its submission
  before it started; for a CANCELED workflow, when it stopped).

All given criteria must hold. :func:`matches` decides over a
:class:`~durableflow.model.info.WorkflowInfo`; :func:`durableflow.runtime.bulk.select` finds the
matching ids in a storage, reading run records only when ``name`` or ``older_than`` need them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from durableflow.model.durations import parse_duration
from durableflow.model.info import WorkflowInfo
from durableflow.model.status import WorkflowStatus, parse_status_filter

__all__ = ["WorkflowFilter", "age_reference", "matches", "parse_age"]

StatusArg = str | WorkflowStatus | Iterable[str | WorkflowStatus] | None
AgeArg = str | float | dt.timedelta | None
_ZERO = re.compile(r"0+(\.0*)?(ms|s|sec|m|min|h|d|w)?")


def parse_age(value: AgeArg) -> float | None:
    """Seconds of an ``older_than`` value; ``"0s"``, ``0`` and a zero timedelta are 0.

    Raises:
        ValueError: not a duration, or negative.
    """
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower()
        if _ZERO.fullmatch(text):
            return 0.0  # "0", "0s", "0d", "0.0h": parse_duration refuses zero
        seconds = parse_duration(text)
    if seconds < 0:
        raise ValueError(f"older_than must not be negative, got {value!r}")
    return seconds


@dataclasses.dataclass(frozen=True)
class WorkflowFilter:
    """Which workflows a bulk call acts on (every field None: all of them)."""

    status: frozenset[WorkflowStatus] | None = None
    prefix: str | None = None
    name: str | None = None
    older_than: float | None = None
    """Seconds."""

    @classmethod
    def of(
        cls,
        *,
        status: StatusArg = None,
        prefix: str | None = None,
        name: str | None = None,
        older_than: AgeArg = None,
    ) -> WorkflowFilter:
        """Parse the keyword arguments of the public calls.

        Raises:
            ValueError: an unknown status name or a bad duration.
        """
        return cls(parse_status_filter(status), prefix or None, name or None, parse_age(older_than))

    @property
    def needs_record(self) -> bool:
        """True when the run record (and for ``name`` the root spec) must be read."""
        return self.name is not None or self.older_than is not None

    @property
    def is_empty(self) -> bool:
        """True when it matches every workflow."""
        return self == WorkflowFilter()

    def describe(self) -> str:
        """The filter as the CLI's options spell it (for prompts and logs)."""
        parts = []
        if self.status is not None:
            parts.append("--status " + ",".join(sorted(s.value for s in self.status)))
        if self.prefix is not None:
            parts.append(f"--prefix {self.prefix}")
        if self.name is not None:
            parts.append(f"--name {self.name}")
        if self.older_than is not None:
            parts.append(f"--older-than {self.older_than:g}s")
        return " ".join(parts) or "(all workflows)"

    def to_json(self) -> dict[str, Any]:
        """JSON form (dry-run reports)."""
        return {
            "status": sorted(s.value for s in self.status) if self.status is not None else None,
            "prefix": self.prefix,
            "name": self.name,
            "older_than": self.older_than,
        }


def age_reference(info: WorkflowInfo) -> float:
    """The time ``older_than`` measures from: the end, else the start, else the submission."""
    if info.end_time is not None:
        return info.end_time
    if info.status is WorkflowStatus.CANCELED:
        return info.updated_at  # a canceled run's end is not shown; updated_at says when
    if info.start_time is not None:
        return info.start_time
    return info.created_at


def name_matches(name: str | None, wanted: str) -> bool:
    """Whether a root task named ``name`` matches ``wanted`` (full name or dotted tail)."""
    if name is None:
        return False
    return name == wanted or name.endswith("." + wanted)


def matches(info: WorkflowInfo, flt: WorkflowFilter, now: float) -> bool:
    """Whether the workflow described by ``info`` passes every criterion of ``flt``.

    Args:
        info: what the run record holds, with the effective status (and ``name`` read from
            the root spec when ``flt.name`` is set; None never matches a name).
        flt: the filter.
        now: the current time (Unix seconds), injected.
    """
    if flt.status is not None and info.status not in flt.status:
        return False
    if flt.prefix is not None and not info.workflow_id.startswith(flt.prefix):
        return False
    if flt.name is not None and not name_matches(info.name, flt.name):
        return False
    return flt.older_than is None or now - age_reference(info) >= flt.older_than
