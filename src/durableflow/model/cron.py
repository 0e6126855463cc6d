"""Time specifications, pure: five-field cron expressions and time zones.

Cron rules: ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n``, ``a/n`` (a to the end, step n) and lists
``x,y,z`` in every field; month names (``jan``) and day names (``mon``); day of week 0-7 with 0 and
7 both Sunday; the macros ``@hourly @daily @midnight @weekly @monthly @yearly @annually``. When
both day fields are restricted a day matching *either* fires (as in Vixie cron). Daylight saving:
a wall-clock time that a DST change skips fires at the same instant as the first time after the
gap; a wall-clock time that occurs twice fires once, the first time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

__all__ = ["CronExpression", "zone"]

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
