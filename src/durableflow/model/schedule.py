"""Recurring workflows: cron expressions, fixed intervals, and which ticks are due.

Pure functions and frozen records only: the clock is an argument, so every rule here is tested
with plain numbers. A schedule fires at *ticks*, instants computed either

- from a five-field cron expression (``minute hour day-of-month month day-of-week``) evaluated
  on the wall clock of an explicit time zone (UTC by default), or
- from a fixed interval counted from the Unix epoch, so that every worker computes the same
  ticks (``every=300`` fires at :00, :05, :10 ...).

Each tick runs the workflow ``<name>@<tick>`` (the tick in UTC, ISO 8601 to the second, e.g.
``report@2026-01-31T09:05:00Z``): one id per tick is what makes a tick run at most once.

Cron rules: ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n``, ``a/n`` (a to the end, step n) and lists
``x,y,z`` in every field; month names (``jan``) and day names (``mon``); day of week 0-7 with 0 and
7 both Sunday; the macros ``@hourly @daily @midnight @weekly @monthly @yearly @annually``. When
both day fields are restricted a day matching *either* fires (as in Vixie cron). Daylight saving:
a wall-clock time that a DST change skips fires at the same instant as the first time after the
gap; a wall-clock time that occurs twice fires once, the first time.
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

from durableflow.model.ids import validate_workflow_id

__all__ = [
    "CronExpression",
    "MissedTicks",
    "Overlap",
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

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, low, high, names mapped to numbers)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
)
_SEARCH_YEARS = 9  # Feb 29 on a given weekday recurs within 28 years, but any date within 8
_MAX_ITERATIONS = 2_000_000


def _parse_field(text: str, index: int, expr: str) -> frozenset[int]:
    name, low, high, names = _FIELDS[index]

    def number(token: str) -> int:
        token = token.lower()
        if token in names:
            return names[token]
        if not token.isdigit():
            raise ValueError(f"invalid cron expression {expr!r}: {name} {token!r} is not a number")
        value = int(token)
        if not low <= value <= high:
            raise ValueError(
                f"invalid cron expression {expr!r}: {name} {value} is outside {low}-{high}"
            )
        return value

    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(
                    f"invalid cron expression {expr!r}: bad step {step_text!r} in {name}"
                )
            step = int(step_text)
        if body == "*":
            start, stop = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, stop = number(first), number(last)
            if start > stop:
                raise ValueError(
                    f"invalid cron expression {expr!r}: {name} range {body!r} is reversed"
                )
        else:
            start = number(body)
            stop = high if step_text else start
        values.update(range(start, stop + 1, step))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclasses.dataclass(frozen=True)
class CronExpression:
    """A parsed five-field cron expression; build it with :meth:`parse`."""

    text: str
    minutes: tuple[int, ...]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday."""
    any_day: bool
    """The day-of-month field starts with ``*``."""
    any_weekday: bool
    """The day-of-week field starts with ``*``."""

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse ``text``.

        Raises:
            ValueError: naming the field at fault.
        """
        if not isinstance(text, str):
            raise TypeError(f"a cron expression is a str, got {type(text).__name__}")
        expanded = _MACROS.get(text.strip().lower(), text)
        parts = expanded.split()
        if len(parts) != 5:
            raise ValueError(
                f"invalid cron expression {text!r}: expected 5 fields "
                "(minute hour day-of-month month day-of-week), got {len(parts)}"
            )
        fields = [_parse_field(part, i, text) for i, part in enumerate(parts)]
        return cls(
            text.strip(),
            tuple(sorted(fields[0])),
            fields[1],
            fields[2],
            fields[3],
            fields[4],
            parts[2].startswith("*"),
            parts[4].startswith("*"),
        )

    def _day_matches(self, day: dt.datetime) -> bool:
        dom = day.day in self.days
        dow = day.isoweekday() % 7 in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow

    def next_after(self, after: float, tz: dt.tzinfo) -> float:
        """The first instant strictly after ``after`` (Unix time) that matches, in ``tz``.

        Raises:
            ValueError: the expression never matches (e.g. February 30).
        """
        local = dt.datetime.fromtimestamp(after, tz).replace(tzinfo=None, second=0, microsecond=0)
        candidate = local + dt.timedelta(minutes=1)
        last_year = candidate.year + _SEARCH_YEARS
        while candidate.year <= last_year:
            if candidate.month not in self.months:
                year, month = (
                    (candidate.year + 1, 1)
                    if candidate.month == 12
                    else (candidate.year, candidate.month + 1)
                )
                candidate = dt.datetime(year, month, 1)
                continue
            if not self._day_matches(candidate):
                candidate = dt.datetime(
                    candidate.year, candidate.month, candidate.day
                ) + dt.timedelta(days=1)
                continue
            if candidate.hour not in self.hours:
                candidate = candidate.replace(minute=0) + dt.timedelta(hours=1)
                continue
            later = [m for m in self.minutes if m >= candidate.minute]
            if not later:
                candidate = candidate.replace(minute=0) + dt.timedelta(hours=1)
                continue
            candidate = candidate.replace(minute=later[0])
            instant = candidate.replace(tzinfo=tz).timestamp()
            if instant > after:
                return instant
            candidate += dt.timedelta(minutes=1)  # inside a DST gap or a repeated hour
        raise ValueError(f"cron expression {self.text!r} never fires")


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


def zone(name: str) -> dt.tzinfo:
    """The time zone called ``name`` (an IANA name such as ``Europe/Paris``, or ``UTC``).

    Raises:
        ValueError: unknown zone.
    """
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return dt.timezone.utc
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from None


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


_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")


def parse_duration(text: str | float | dt.timedelta) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``5m``, ``1h30m``, ``2d``, ``1w``, or a timedelta.

    Raises:
        ValueError: not a duration, or not positive.
    """
    if isinstance(text, dt.timedelta):
        seconds = text.total_seconds()
    elif isinstance(text, (int, float)):
        seconds = float(text)
    else:
        compact = text.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", compact):
            seconds = float(compact)
        else:
            pos, seconds = 0, 0.0
            for match in _DURATION.finditer(compact):
                if match.start() != pos or match.group(2) not in _UNITS:
                    raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h30m, 2d")
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(compact) or not compact:
                raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h30m, 2d")
    if seconds <= 0 or math.isinf(seconds) or math.isnan(seconds):
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds


@dataclasses.dataclass(frozen=True)
class ScheduleRecord:
    """A stored schedule (key ``schedules/<name>/spec``): when to run and how."""

    name: str
    """Unique on the storage; the prefix of every run's workflow id."""
    cron: str | None
    """The cron expression, or None for an interval schedule."""
    every: int | None
    """The interval in whole seconds, or None for a cron schedule."""
    created_at: float
    """When it was added: ticks before this never fire."""
    timezone: str = "UTC"
    """The zone whose wall clock the cron expression reads."""
    catchup: MissedTicks = MissedTicks.LATEST
    """The policy for ticks missed while no worker ran."""
    overlap: Overlap = Overlap.SKIP
    """The policy for a tick while the previous run is still going."""
    grace: float = 60.0
    """Seconds a tick may be late and still count as on time (for ``catchup=skip``)."""
    max_catchup: int = 100
    """With ``catchup=all``, run at most this many of the latest missed ticks."""
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
        object.__setattr__(self, "catchup", MissedTicks(self.catchup))
        object.__setattr__(self, "overlap", Overlap(self.overlap))
        if self.grace < 0 or self.max_catchup < 1:
            raise ValueError(f"schedule {self.name!r}: grace must be >= 0 and max_catchup >= 1")
        self.tz  # noqa: B018 - validates the zone
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


def format_seconds(seconds: float) -> str:
    """``90`` -> ``1m30s``; ``3600`` -> ``1h``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    out, rest = [], round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


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
