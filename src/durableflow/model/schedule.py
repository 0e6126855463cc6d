"""Recurring workflows: cron expressions, fixed intervals, and which ticks are due.

Pure functions and frozen records only: the clock is an argument, so every rule here is tested
with plain numbers. A schedule fires at *ticks*, instants computed either

- from a five-field cron expression (``minute hour day-of-month month day-of-week``) evaluated
  on the wall clock of an explicit time zone (UTC by default), or
- from a fixed interval counted from the Unix epoch, so that every worker computes the same
  ticks (``every=300`` fires at :00, :05, :10 ...).

Each tick runs the workflow ``<name>@<tick>`` (the tick in UTC, ISO 8601 to the second, e.g.
``report@2026-01-31T09:05:00Z``): one id per tick is what makes a tick run at most once.

Cron expressions and zones are parsed by :mod:`durableflow.model.cron`, durations by
:mod:`durableflow.model.durations`.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from durableflow.model.cron import CronExpression, zone
from durableflow.model.durations import format_seconds, parse_duration
from durableflow.model.ids import validate_workflow_id

__all__ = [
    "CronExpression",
    "MissedTicks",
    "Overlap",
    "ScheduleOptions",
    "ScheduleRecord",
    "ScheduleState",
    "TickPlan",
    "format_tick",
    "parse_duration",
    "parse_tick_workflow_id",
    "plan_ticks",
    "tick_workflow_id",
    "validate_schedule_name",
    "zone",
]

_MAX_ITERATIONS = 2_000_000


class MissedTicks(str, enum.Enum):
    """What to do with ticks that passed while no worker ran."""

    SKIP = "skip"
    """Run none of them (a tick more than ``grace`` seconds late counts as missed)."""
    LATEST = "latest"
    """Run the most recent one only."""
    ALL = "all"
    """Run every one of them, oldest first (at most ``max_catchup``)."""


class Overlap(str, enum.Enum):
    """What to do when a tick comes while the schedule's previous run is still going."""

    SKIP = "skip"
    """Do not run the new tick."""
    ALLOW = "allow"
    """Run it anyway, alongside."""


_SCHEDULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def validate_schedule_name(name: object) -> str:
    """Return ``name`` if it can name a schedule (letters, digits, ``_ . -``); else ValueError."""
    if (
        not isinstance(name, str)
        or not _SCHEDULE_NAME.match(name)
        or ".." in name
        or len(name) > 200
    ):
        raise ValueError(
            f"invalid schedule name {name!r}: use 1-200 letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def format_tick(tick: float) -> str:
    """A tick as ISO 8601 UTC to the second: ``2026-01-31T09:05:00Z``."""
    return dt.datetime.fromtimestamp(math.floor(tick), dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def tick_workflow_id(name: str, tick: float) -> str:
    """The id of the workflow a schedule runs for one tick: ``<name>@<tick in UTC>``."""
    return validate_workflow_id(f"{name}@{format_tick(tick)}")


def parse_tick_workflow_id(workflow_id: str) -> tuple[str, float] | None:
    """``(schedule name, tick)`` of a scheduled workflow's id, or None for another id."""
    name, sep, stamp = workflow_id.rpartition("@")
    if not sep or not name:
        return None
    try:
        when = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    return name, when.timestamp()


def _cli(help: str, *flags: str) -> dict[str, Any]:
    """A :class:`ScheduleOptions` field's metadata: its CLI help text and extra flags."""
    return {"help": help, "flags": flags}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScheduleOptions:
    """How a schedule fires, defined once for every face.

    ``Client.schedule`` and ``workflow.schedule`` take these as keyword arguments, ``durableflow
    schedule add`` builds its flags from them (each field's ``metadata``: ``help``, and
    ``flags``, extra spellings of the option), :class:`ScheduleRecord` stores them, and the
    description of a schedule shows them.

    Raises:
        ValueError: an unknown policy or zone, ``grace`` < 0 or ``max_catchup`` < 1.
    """

    timezone: str = dataclasses.field(
        default="UTC",
        metadata=_cli("Zone whose wall clock the cron expression reads (IANA name).", "--tz"),
    )
    """The zone whose wall clock the cron expression reads."""
    catchup: MissedTicks = dataclasses.field(
        default=MissedTicks.LATEST,
        metadata=_cli("Ticks missed while no worker ran: run none, the latest, or all."),
    )
    """The policy for ticks missed while no worker ran."""
    overlap: Overlap = dataclasses.field(
        default=Overlap.SKIP,
        metadata=_cli("A tick while the previous run still goes: skip it, or run alongside."),
    )
    """The policy for a tick while the previous run is still going."""
    grace: float = dataclasses.field(
        default=60.0, metadata=_cli("How late a tick may be and still run under --catchup skip.")
    )
    """Seconds a tick may be late and still count as on time (for ``catchup=skip``)."""
    max_catchup: int = dataclasses.field(
        default=100, metadata=_cli("Under --catchup all, the most missed ticks run.")
    )
    """With ``catchup=all``, run at most this many of the latest missed ticks."""

    def __post_init__(self) -> None:
        self._check_options("")

    def _check_options(self, what: str) -> None:
        """Turn policy names into enums and refuse bad values (``what`` prefixes messages)."""
        object.__setattr__(self, "catchup", MissedTicks(self.catchup))
        object.__setattr__(self, "overlap", Overlap(self.overlap))
        if self.grace < 0 or self.max_catchup < 1:
            raise ValueError(f"{what}grace must be >= 0 and max_catchup >= 1")
        zone(self.timezone)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in definition order."""
        return tuple(f.name for f in dataclasses.fields(ScheduleOptions))

    def options(self) -> ScheduleOptions:
        """These options alone (of a :class:`ScheduleRecord`: without its other fields)."""
        return ScheduleOptions(**{name: getattr(self, name) for name in self.names()})

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: the policies by their names."""
        return {
            name: value.value if isinstance(value, enum.Enum) else value
            for name in self.names()
            for value in (getattr(self, name),)
        }


@dataclasses.dataclass(frozen=True)
class ScheduleRecord(ScheduleOptions):
    """A stored schedule (key ``schedules/<name>/spec``): when to run, and its options.

    Its JSON is flat: the :class:`ScheduleOptions` fields beside the others.
    """

    name: str
    """Unique on the storage; the prefix of every run's workflow id."""
    cron: str | None
    """The cron expression, or None for an interval schedule."""
    every: int | None
    """The interval in whole seconds, or None for a cron schedule."""
    created_at: float
    """When it was added: ticks before this never fire."""
    paused: bool = False
    """A paused schedule fires nothing; resuming it skips the ticks it missed."""
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    """User metadata, copied into each run's metadata."""
    updated_at: float = 0.0
    """When this record was last written."""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Fields of later versions, kept when this version rewrites the record."""

    def __post_init__(self) -> None:
        validate_schedule_name(self.name)
        if (self.cron is None) == (self.every is None):
            raise ValueError(f"schedule {self.name!r} needs exactly one of cron= or every=")
        if self.every is not None and (not isinstance(self.every, int) or self.every < 1):
            raise ValueError(
                f"schedule {self.name!r}: every must be a whole number of seconds >= 1"
            )
        self._check_options(f"schedule {self.name!r}: ")
        if self.cron is not None:
            CronExpression.parse(self.cron).next_after(self.created_at, self.tz)  # never fires?

    @property
    def tz(self) -> dt.tzinfo:
        """The time zone object."""
        return zone(self.timezone)

    def next_tick(self, after: float) -> float:
        """The first tick strictly after ``after``."""
        if self.every is not None:
            return (math.floor(after / self.every) + 1) * float(self.every)
        return _cron(self.cron or "").next_after(after, self.tz)

    def describe(self) -> str:
        """``cron '*/5 * * * *' (UTC)`` or ``every 5m``."""
        if self.cron is not None:
            return f"cron '{self.cron}' ({self.timezone})"
        return f"every {format_seconds(float(self.every or 0))}"

    def to_bytes(self) -> bytes:
        """JSON bytes."""
        data = dataclasses.asdict(self)
        data["catchup"], data["overlap"] = self.catchup.value, self.overlap.value
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ScheduleRecord:
        """Parse JSON bytes; raises ValueError (or KeyError) on anything malformed."""
        data = json.loads(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in known}
        fields["extra"] = {
            **fields.get("extra", {}),
            **{k: v for k, v in data.items() if k not in known},
        }
        return cls(**fields)

    def replace(self, **changes: Any) -> ScheduleRecord:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


_CRON_CACHE: dict[str, CronExpression] = {}


def _cron(text: str) -> CronExpression:
    parsed = _CRON_CACHE.get(text)
    if parsed is None:
        parsed = _CRON_CACHE[text] = CronExpression.parse(text)
    return parsed


@dataclasses.dataclass(frozen=True)
class ScheduleState:
    """Where a schedule's firing stands (key ``schedules/<name>/state``, compare-and-swap)."""

    cursor: float
    """The newest tick already decided (fired or skipped); only later ticks are due."""
    pending: tuple[str, ...] = ()
    """Workflow ids decided but maybe not yet stored (a worker died between the two steps)."""
    last_workflow_id: str | None = None
    """The newest run, for the overlap policy."""
    fired: int = 0
    """Ticks run so far."""
    missed: int = 0
    """Ticks not run (missed-tick or overlap policy) so far."""
    last_error: str | None = None
    """Why the last tick could not be started (its DAG factory raised), if it could not."""
    updated_at: float = 0.0
    """When the state was last written."""

    def to_bytes(self) -> bytes:
        """JSON bytes."""
        data = dataclasses.asdict(self)
        data["pending"] = list(self.pending)
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ScheduleState:
        """Parse JSON bytes."""
        data: Mapping[str, Any] = json.loads(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in known}
        fields["pending"] = tuple(fields.get("pending", ()))
        return cls(**fields)

    def replace(self, **changes: Any) -> ScheduleState:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class TickPlan:
    """The outcome of :func:`plan_ticks`."""

    fire: tuple[float, ...]
    """Ticks to run, oldest first."""
    missed: int
    """Due ticks not to run, by the missed-tick policy."""
    cursor: float
    """The newest due tick (the old cursor when none is due)."""


def plan_ticks(schedule: ScheduleRecord, cursor: float, now: float) -> TickPlan:
    """Which of the ticks in ``(cursor, now]`` to run, by the schedule's missed-tick policy."""
    keep = schedule.max_catchup if schedule.catchup is MissedTicks.ALL else 1
    due: collections.deque[float] = collections.deque(maxlen=keep)
    total = 0
    if schedule.every is not None:
        every = float(schedule.every)
        first = (math.floor(cursor / every) + 1) * every
        if first <= now:
            total = int((now - first) // every) + 1
            last = first + (total - 1) * every
            due.extend(last - i * every for i in reversed(range(min(keep, total))))
    else:
        tick = cursor
        for _ in range(_MAX_ITERATIONS):
            tick = schedule.next_tick(tick)
            if tick > now:
                break
            due.append(tick)
            total += 1
    if not due:
        return TickPlan((), 0, cursor)
    newest = due[-1]
    if schedule.catchup is MissedTicks.SKIP:
        fire: tuple[float, ...] = (newest,) if now - newest <= schedule.grace else ()
    else:
        fire = tuple(due)
    return TickPlan(fire, total - len(fire), newest)
