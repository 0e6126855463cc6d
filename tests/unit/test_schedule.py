"""Cron parsing, tick computation and missed-tick planning: pure functions, plain numbers."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from durableflow.model.cron import CronExpression, zone
from durableflow.model.durations import parse_duration
from durableflow.model.schedule import (
    MissedTicks,
    Overlap,
    ScheduleOptions,
    ScheduleRecord,
    ScheduleState,
    format_tick,
    parse_tick_workflow_id,
    plan_ticks,
    tick_workflow_id,
    validate_schedule_name,
)

UTC = dt.timezone.utc


def ts(*args: int, tz: dt.tzinfo = UTC) -> float:
    return dt.datetime(*args, tzinfo=tz).timestamp()


def ticks(expr: str, start: float, n: int, tz: dt.tzinfo = UTC) -> list[str]:
    cron, out, t = CronExpression.parse(expr), [], start
    for _ in range(n):
        t = cron.next_after(t, tz)
        out.append(format_tick(t))
    return out


# --- parsing -------------------------------------------------------------------------------------
def test_parse_every_field_form():
    cron = CronExpression.parse("*/15 9-17/4 1,15 jan-mar MON-fri")
    assert cron.minutes == (0, 15, 30, 45)
    assert cron.hours == {9, 13, 17}
    assert cron.days == {1, 15}
    assert cron.months == {1, 2, 3}
    assert cron.weekdays == {1, 2, 3, 4, 5}
    assert not cron.any_day and not cron.any_weekday


def test_parse_start_with_step_runs_to_the_end_of_the_range():
    assert CronExpression.parse("50/5 * * * *").minutes == (50, 55)


def test_day_of_week_seven_is_sunday():
    assert CronExpression.parse("0 0 * * 7").weekdays == {0}
    assert CronExpression.parse("0 0 * * 5-7").weekdays == {5, 6, 0}


@pytest.mark.parametrize(
    ("macro", "same_as"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@ANNUALLY", "0 0 1 1 *"),
    ],
)
def test_macros_expand(macro, same_as):
    a, b = CronExpression.parse(macro), CronExpression.parse(same_as)
    assert (a.minutes, a.hours, a.days, a.months, a.weekdays) == (
        b.minutes,
        b.hours,
        b.days,
        b.months,
        b.weekdays,
    )


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("60 * * * *", "minute 60 is outside 0-59"),
        ("* 24 * * *", "hour 24 is outside 0-23"),
        ("* * 0 * *", "day of month 0 is outside 1-31"),
        ("* * * 13 *", "month 13 is outside 1-12"),
        ("* * * * 8", "day of week 8 is outside 0-7"),
        ("5-1 * * * *", "reversed"),
        ("*/0 * * * *", "bad step"),
        ("*/x * * * *", "bad step"),
        ("* * * foo *", "'foo' is not a number"),
        ("1,,2 * * * *", "is not a number"),
    ],
)
def test_parse_errors_name_the_field(expr, message):
    with pytest.raises(ValueError, match=message):
        CronExpression.parse(expr)


# --- next tick -----------------------------------------------------------------------------------
def test_every_five_minutes():
    assert ticks("*/5 * * * *", ts(2026, 1, 1, 0, 3, 7), 3) == [
        "2026-01-01T00:05:00Z",
        "2026-01-01T00:10:00Z",
        "2026-01-01T00:15:00Z",
    ]


def test_next_tick_is_strictly_after():
    assert ticks("*/5 * * * *", ts(2026, 1, 1, 0, 5), 1) == ["2026-01-01T00:10:00Z"]


def test_every_minute_crosses_hours_days_and_years():
    assert ticks("* * * * *", ts(2026, 12, 31, 23, 58, 30), 3) == [
        "2026-12-31T23:59:00Z",
        "2027-01-01T00:00:00Z",
        "2027-01-01T00:01:00Z",
    ]


def test_day_of_month_or_day_of_week_when_both_restricted():
    # The 13th, or any Friday (Vixie cron's rule).
    got = ticks("0 12 13 * fri", ts(2026, 2, 1), 4)
    assert got == [
        "2026-02-06T12:00:00Z",
        "2026-02-13T12:00:00Z",
        "2026-02-20T12:00:00Z",
        "2026-02-27T12:00:00Z",
    ]
    got = ticks("0 12 13 * fri", ts(2026, 3, 1), 2)
    assert got == ["2026-03-06T12:00:00Z", "2026-03-13T12:00:00Z"]


def test_restricted_weekday_with_star_day_means_weekday_only():
    assert ticks("0 8 * * mon", ts(2026, 1, 1), 2) == [
        "2026-01-05T08:00:00Z",
        "2026-01-12T08:00:00Z",
    ]


def test_leap_day_schedule_waits_for_a_leap_year():
    assert ticks("0 0 29 2 *", ts(2026, 1, 1), 2) == [
        "2028-02-29T00:00:00Z",
        "2032-02-29T00:00:00Z",
    ]


def test_schedule_that_never_fires_is_refused():
    with pytest.raises(ValueError, match="never fires"):
        CronExpression.parse("0 0 30 2 *").next_after(ts(2026, 1, 1), UTC)


def test_time_zone_wall_clock_follows_daylight_saving():
    paris = zone("Europe/Paris")
    # 09:00 in Paris is 08:00Z in winter and 07:00Z in summer.
    assert ticks("0 9 * * *", ts(2026, 3, 27), 3, paris) == [
        "2026-03-27T08:00:00Z",
        "2026-03-28T08:00:00Z",
        "2026-03-29T07:00:00Z",
    ]


def test_time_skipped_by_dst_fires_once_after_the_gap():
    ny = zone("America/New_York")
    # 2026-03-08: 02:00 -> 03:00 local. 02:30 does not exist that day.
    got = ticks("30 2 * * *", ts(2026, 3, 7, 12, tz=ny), 3, ny)
    assert got == ["2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]
    every_half_hour = ticks("0,30 * * * *", ts(2026, 3, 8, 1, 0, tz=ny), 4, ny)
    assert every_half_hour == [
        "2026-03-08T06:30:00Z",
        "2026-03-08T07:00:00Z",
        "2026-03-08T07:30:00Z",
        "2026-03-08T08:00:00Z",
    ]
    assert len(set(every_half_hour)) == 4


def test_time_repeated_by_dst_fires_once():
    ny = zone("America/New_York")
    # 2026-11-01: 02:00 EDT -> 01:00 EST. 01:30 happens twice; it fires once (the first).
    got = ticks("30 1 * * *", ts(2026, 10, 31, 12, tz=ny), 2, ny)
    assert got == ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]


def test_unknown_time_zone():
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("Mars/Olympus")
    assert zone("UTC") is UTC


# --- records -------------------------------------------------------------------------------------
def record(**changes):
    fields = {"name": "job", "cron": None, "every": 60, "created_at": 0.0}
    fields.update(changes)
    return ScheduleRecord(**fields)


def test_interval_ticks_are_aligned_to_the_epoch():
    r = record(every=300)
    assert format_tick(r.next_tick(ts(2026, 1, 1, 10, 2, 59))) == "2026-01-01T10:05:00Z"
    assert format_tick(r.next_tick(ts(2026, 1, 1, 10, 5))) == "2026-01-01T10:10:00Z"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cron": "* * * * *"}, "exactly one of"),
        ({"every": None}, "exactly one of"),
        ({"every": 0}, "whole number of seconds"),
        ({"timezone": "Nowhere/Land"}, "unknown time zone"),
        ({"name": "a/b"}, "invalid schedule name"),
        ({"name": "x@y"}, "invalid schedule name"),
        ({"catchup": "sometimes"}, "sometimes"),
        ({"cron": "0 0 31 2 *", "every": None}, "never fires"),
    ],
)
def test_record_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        record(**changes)


def test_schedule_options_are_defined_once_and_a_record_carries_them():
    assert ScheduleOptions.names() == ("timezone", "catchup", "overlap", "grace", "max_catchup")
    defaults = ScheduleOptions()
    assert record().options() == defaults
    assert defaults.as_dict() == {
        "timezone": "UTC",
        "catchup": "latest",
        "overlap": "skip",
        "grace": 60.0,
        "max_catchup": 100,
    }
    chosen = ScheduleOptions(timezone="Europe/Paris", catchup="all", overlap="allow", grace=5)
    assert chosen.catchup is MissedTicks.ALL and chosen.overlap is Overlap.ALLOW
    assert record(**chosen.as_dict()).options() == chosen
    # The stored JSON stays flat (layout v1): the options beside the other fields.
    stored = json.loads(record(**chosen.as_dict()).to_bytes())
    assert {k: stored[k] for k in ScheduleOptions.names()} == chosen.as_dict()
    assert "options" not in stored


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timezone": "Nowhere/Land"}, "unknown time zone"),
        ({"catchup": "sometimes"}, "sometimes"),
        ({"overlap": "never"}, "never"),
        ({"grace": -1}, "^grace must be >= 0 and max_catchup >= 1$"),
        ({"max_catchup": 0}, "^grace must be >= 0 and max_catchup >= 1$"),
    ],
)
def test_schedule_options_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        ScheduleOptions(**changes)
    if "grace" in changes or "max_catchup" in changes:
        with pytest.raises(ValueError, match=r"^schedule 'job': grace must be >= 0"):
            record(**changes)


def test_record_round_trips_and_keeps_unknown_fields():
    r = record(
        cron="*/5 * * * *",
        every=None,
        timezone="Europe/Paris",
        catchup="all",
        overlap="allow",
        metadata={"team": "data"},
    )
    raw = r.to_bytes().replace(b'{"', b'{"future_field":1,"', 1)
    back = ScheduleRecord.from_bytes(raw)
    assert back.replace(extra={}) == r
    assert back.extra == {"future_field": 1}
    assert back.catchup is MissedTicks.ALL and back.overlap is Overlap.ALLOW
    assert back.describe() == "cron '*/5 * * * *' (Europe/Paris)"
    assert record(every=90).describe() == "every 1m30s"


def test_state_round_trips():
    s = ScheduleState(
        12.0, ("a@1", "a@2"), "a@2", fired=2, missed=1, last_error=None, updated_at=3.0
    )
    assert ScheduleState.from_bytes(s.to_bytes()) == s


# --- planning ------------------------------------------------------------------------------------
def test_nothing_due_keeps_the_cursor():
    r = record(every=60)
    plan = plan_ticks(r, 120.0, 150.0)
    assert plan.fire == () and plan.cursor == 120.0 and plan.missed == 0


def test_one_tick_on_time():
    r = record(every=60)
    plan = plan_ticks(r, 120.0, 181.0)
    assert plan.fire == (180.0,) and plan.cursor == 180.0 and plan.missed == 0


@pytest.mark.parametrize("every_or_cron", ["every", "cron"])
def test_missed_ticks_policies(every_or_cron):
    kind = (
        {"every": 60, "cron": None}
        if every_or_cron == "every"
        else {"every": None, "cron": "* * * * *"}
    )
    start, now = ts(2026, 1, 1, 0, 0), ts(2026, 1, 1, 1, 0, 30)  # 60 ticks passed
    latest = plan_ticks(record(**kind, catchup="latest"), start, now)
    assert (
        latest.fire == (ts(2026, 1, 1, 1, 0),)
        and latest.missed == 59
        and latest.cursor == ts(2026, 1, 1, 1, 0)
    )
    everything = plan_ticks(record(**kind, catchup="all"), start, now)
    assert len(everything.fire) == 60 and everything.missed == 0
    assert list(everything.fire) == sorted(everything.fire)
    capped = plan_ticks(record(**kind, catchup="all", max_catchup=10), start, now)
    assert capped.fire == everything.fire[-10:] and capped.missed == 50
    skip = plan_ticks(record(**kind, catchup="skip", grace=10), start, now)
    assert skip.fire == () and skip.missed == 60 and skip.cursor == ts(2026, 1, 1, 1, 0)
    on_time = plan_ticks(record(**kind, catchup="skip", grace=60), start, now)
    assert on_time.fire == (ts(2026, 1, 1, 1, 0),) and on_time.missed == 59


# --- ids and durations ---------------------------------------------------------------------------
def test_tick_workflow_ids_round_trip():
    wid = tick_workflow_id("nightly-report", ts(2026, 1, 31, 9, 5))
    assert wid == "nightly-report@2026-01-31T09:05:00Z"
    assert parse_tick_workflow_id(wid) == ("nightly-report", ts(2026, 1, 31, 9, 5))
    assert parse_tick_workflow_id("plain-id") is None
    assert parse_tick_workflow_id("x@not-a-time") is None
    assert validate_schedule_name("a.b-c_1") == "a.b-c_1"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        ("250ms", 0.25),
        (dt.timedelta(minutes=2), 120),
        (7, 7),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "-5s", "0s", "5m 3", "1h30"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)
