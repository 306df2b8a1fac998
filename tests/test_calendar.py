"""Tests of workflow.calendar: worked examples, DST, validation and a brute-force oracle."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from workflow.calendar import BusinessCalendar, CalendarSpec

GMT4 = timezone(timedelta(hours=-4))  # the default zone Etc/GMT+4 is a fixed UTC-4
NY = ZoneInfo("America/New_York")
SCL = ZoneInfo("America/Santiago")
H = timedelta(hours=1)
M = timedelta(minutes=1)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def at(
    y: int,
    mo: int,
    d: int,
    h: int = 0,
    mi: int = 0,
    s: int = 0,
    us: int = 0,
    *,
    tz: tzinfo = GMT4,
    fold: int = 0,
) -> datetime:
    """An aware datetime, by default at the calendar's UTC-4."""
    return datetime(y, mo, d, h, mi, s, us, tzinfo=tz, fold=fold)


def z(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A UTC instant."""
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


DEFAULT = BusinessCalendar(CalendarSpec())

# 2026-03-03 is a Tuesday, 2026-03-06 a Friday, 2026-03-07 a Saturday.
WORKED = [
    pytest.param(at(2026, 3, 3, 10), 9 * H, at(2026, 3, 4, 10), id="tue-10:00+9h=wed-10:00"),
    pytest.param(at(2026, 3, 6, 17, 30), 9 * H, at(2026, 3, 9, 17, 30), id="fri-17:30+9h=mon"),
    pytest.param(at(2026, 3, 7, 12), 9 * H, at(2026, 3, 9, 18), id="sat-12:00+9h=mon-18:00"),
    pytest.param(at(2026, 3, 3, 20), 9 * H, at(2026, 3, 4, 18), id="tue-20:00+9h=wed-18:00"),
]


@pytest.mark.parametrize(("start", "duration", "expected"), WORKED)
def test_worked_examples(start: datetime, duration: timedelta, expected: datetime) -> None:
    result = DEFAULT.add(start, duration)
    assert result == expected
    assert result.tzinfo is UTC
    assert DEFAULT.between(start, result) == duration


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        # A zero duration never moves the instant, even outside business hours.
        (at(2026, 3, 7, 12), timedelta(0), z(2026, 3, 7, 16)),
        (at(2026, 3, 3, 10), timedelta(0), z(2026, 3, 3, 14)),
        # Used up exactly at the close: the close itself, not the next opening.
        (at(2026, 3, 3, 9), 9 * H, at(2026, 3, 3, 18)),
        (at(2026, 3, 3, 17, 59), M, at(2026, 3, 3, 18)),
        # Starting before the opening counts from the opening.
        (at(2026, 3, 3, 7), timedelta(microseconds=1), at(2026, 3, 3, 9, 0, 0, 1)),
        # Starting exactly at the close waits for the next opening.
        (at(2026, 3, 3, 18), M, at(2026, 3, 4, 9, 1)),
        # A full business week (45 h) from Monday 09:00 lands on Friday 18:00.
        (at(2026, 3, 2, 9), 45 * H, at(2026, 3, 6, 18)),
        (at(2026, 3, 2, 9), 45 * H + M, at(2026, 3, 9, 9, 1)),
    ],
)
def test_add_default(start: datetime, duration: timedelta, expected: datetime) -> None:
    result = DEFAULT.add(start, duration)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (at(2026, 3, 3, 10), at(2026, 3, 4, 10), 9 * H),
        (at(2026, 3, 6, 17, 30), at(2026, 3, 9, 17, 30), 9 * H),
        (at(2026, 3, 7, 0), at(2026, 3, 9, 0), timedelta(0)),  # a weekend
        (at(2026, 3, 4, 10), at(2026, 3, 3, 10), timedelta(0)),  # b before a
        (at(2026, 3, 3, 10), at(2026, 3, 3, 10), timedelta(0)),  # empty
        (at(2026, 3, 2, 8), at(2026, 3, 2, 9), timedelta(0)),
        (at(2026, 3, 2, 8), at(2026, 3, 2, 9, 30), 30 * M),
        (at(2026, 3, 2, 17), at(2026, 3, 2, 20), H),
        (at(2026, 3, 2, 0), at(2026, 3, 9, 0), 45 * H),  # one week
        (at(2026, 3, 2, 0), at(2027, 3, 1, 0), 52 * 45 * H),  # 52 weeks
        (at(2026, 3, 2, 9), at(2026, 3, 2, 9, 0, 0, 1), timedelta(microseconds=1)),
        # Other aware zones are accepted: 14:00Z Tue is 10:00 at UTC-4 and 11:00 Wed in Tokyo
        # is 02:00Z Wed = 22:00 Tue at UTC-4, so Tue 10:00-18:00 counts.
        (z(2026, 3, 3, 14), at(2026, 3, 4, 11, tz=ZoneInfo("Asia/Tokyo")), 8 * H),
    ],
)
def test_between_default(a: datetime, b: datetime, expected: timedelta) -> None:
    assert DEFAULT.between(a, b) == expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (at(2026, 3, 3, 9), True),
        (at(2026, 3, 3, 8, 59, 59, 999999), False),
        (at(2026, 3, 3, 17, 59, 59, 999999), True),
        (at(2026, 3, 3, 18), False),
        (at(2026, 3, 7, 12), False),  # Saturday
        (z(2026, 3, 3, 13), True),  # 09:00 at UTC-4
        (z(2026, 3, 3, 12, 59), False),
    ],
)
def test_is_open_default(instant: datetime, expected: bool) -> None:
    assert DEFAULT.is_open(instant) is expected


SPLIT = BusinessCalendar(CalendarSpec(hours={"tue": ["09:00-12:00", "13:00-18:00"]}))


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (at(2026, 3, 3, 11, 30), H, at(2026, 3, 3, 13, 30)),  # skips the lunch break
        (at(2026, 3, 3, 9), 3 * H, at(2026, 3, 3, 12)),  # ends exactly at 12:00
        (at(2026, 3, 3, 12), M, at(2026, 3, 3, 13, 1)),
        (at(2026, 3, 3, 12, 30), 5 * H, at(2026, 3, 3, 18)),
        (at(2026, 3, 3, 12, 30), 5 * H + M, at(2026, 3, 10, 9, 1)),  # next Tuesday
        (at(2026, 3, 2, 9), 8 * H, at(2026, 3, 3, 18)),  # Monday is closed
    ],
)
def test_add_multiple_intervals(start: datetime, duration: timedelta, expected: datetime) -> None:
    assert SPLIT.add(start, duration) == expected


def test_multiple_intervals_between_and_is_open() -> None:
    assert SPLIT.between(at(2026, 3, 3, 0), at(2026, 3, 4, 0)) == 8 * H
    assert SPLIT.between(at(2026, 3, 3, 11), at(2026, 3, 3, 14)) == 2 * H
    assert SPLIT.between(at(2026, 3, 2, 0), at(2026, 3, 16, 0)) == 16 * H
    assert SPLIT.is_open(at(2026, 3, 3, 11, 59, 59, 999999))
    assert not SPLIT.is_open(at(2026, 3, 3, 12))
    assert not SPLIT.is_open(at(2026, 3, 3, 12, 59))
    assert SPLIT.is_open(at(2026, 3, 3, 13))


def test_adjacent_intervals_and_24h_end() -> None:
    cal = BusinessCalendar(
        CalendarSpec(hours={"mon": ["12:00-13:00", "09:00-12:00"], "tue": ["22:00-24:00"]})
    )
    assert cal.between(at(2026, 3, 2, 0), at(2026, 3, 3, 0)) == 4 * H
    assert cal.add(at(2026, 3, 2, 11), 2 * H) == at(2026, 3, 2, 13)
    # Tuesday 22:00-24:00 ends at Wednesday 00:00 local.
    assert cal.add(at(2026, 3, 3, 23), H) == at(2026, 3, 4, 0)
    assert cal.is_open(at(2026, 3, 3, 23, 59, 59, 999999))
    assert not cal.is_open(at(2026, 3, 4, 0))


HOLIDAYS = BusinessCalendar(CalendarSpec(holidays=[date(2026, 12, 25), "2027-01-01"]))


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        # Thu 24 Dec 17:00 + 2h: 1h on Thursday, Fri 25 is a holiday, so Mon 28 10:00.
        (at(2026, 12, 24, 17), 2 * H, at(2026, 12, 28, 10)),
        # Thu 31 Dec 18:00 + 1h: Fri 1 Jan is a holiday, so Mon 4 Jan 10:00.
        (at(2026, 12, 31, 18), H, at(2027, 1, 4, 10)),
        (at(2026, 12, 25, 12), H, at(2026, 12, 28, 10)),
    ],
)
def test_explicit_holidays(start: datetime, duration: timedelta, expected: datetime) -> None:
    assert HOLIDAYS.add(start, duration) == expected


def test_explicit_holidays_between_and_is_open() -> None:
    # Thu 24 (9h) + Mon 28 (9h); Fri 25 is closed.
    assert HOLIDAYS.between(at(2026, 12, 24, 0), at(2026, 12, 29, 0)) == 18 * H
    assert not HOLIDAYS.is_open(at(2026, 12, 25, 12))
    assert HOLIDAYS.is_open(at(2026, 12, 24, 12))
    assert HOLIDAYS.is_holiday(date(2027, 1, 1))
    assert not HOLIDAYS.is_holiday(date(2027, 1, 2))
    # A holiday is a *local* date: 2026-12-25 03:00Z is still Dec 24 at UTC-4 (23:00).
    assert HOLIDAYS.between(z(2026, 12, 24, 21), z(2026, 12, 25, 4)) == H


def test_holiday_country() -> None:
    pytest.importorskip("holidays")
    cal = BusinessCalendar(
        CalendarSpec(timezone="America/Santiago", holiday_country="CL", holiday_subdivision="RM")
    )
    # Fri 2026-09-18 is Chile's Independence Day (Santiago is on -03:00 since Sep 6).
    assert cal.is_holiday(date(2026, 9, 18))
    assert not cal.is_open(at(2026, 9, 18, 12, tz=SCL))
    # Thu 17 17:00 + 2h: 1h on Thursday, then Mon 21 09:00-10:00.
    assert cal.add(at(2026, 9, 17, 17, tz=SCL), 2 * H) == at(2026, 9, 21, 10, tz=SCL)
    assert cal.between(at(2026, 9, 14, tz=SCL), at(2026, 9, 21, tz=SCL)) == 36 * H


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        ({"holiday_country": "XX"}, ["holiday_country", "'XX'"]),
        ({"holiday_country": "CL", "holiday_subdivision": "ZZ"}, ["holiday_subdivision", "'ZZ'"]),
    ],
)
def test_holiday_country_errors(fields: dict[str, Any], fragments: list[str]) -> None:
    pytest.importorskip("holidays")
    with pytest.raises(ValidationError) as info:
        CalendarSpec(**fields)
    for fragment in fragments:
        assert fragment in str(info.value)


# ---- daylight saving time ---------------------------------------------------------------
# 2026 transitions (UTC): New York springs forward at 07:00Z Mar 8 (02:00 EST -> 03:00 EDT)
# and falls back at 06:00Z Nov 1 (02:00 EDT -> 01:00 EST). Santiago springs forward at
# 04:00Z Sep 6 (Sun 00:00 -04 -> 01:00 -03) and falls back at 03:00Z Apr 5 (Sun 00:00 -03 ->
# Sat 23:00 -04). Lord Howe falls back at 15:00Z Apr 4 (Sun 02:00 +11 -> 01:30 +10:30) and
# springs forward at 15:30Z Oct 3 (Sun 02:00 +10:30 -> 02:30 +11).
DST_BETWEEN = [
    # NY spring forward: Sunday runs 05:00Z Mar 8 .. 04:00Z Mar 9 = 23 h.
    ("America/New_York", {"sun": ["00:00-24:00"]}, z(2026, 3, 7), z(2026, 3, 10), 23 * H),
    # 01:00-03:00 EST/EDT: only 01:00-02:00 EST exists (06:00Z-07:00Z).
    ("America/New_York", {"sun": ["01:00-03:00"]}, z(2026, 3, 7), z(2026, 3, 10), H),
    # 02:00-03:00 lies wholly in the gap.
    ("America/New_York", {"sun": ["02:00-03:00"]}, z(2026, 3, 7), z(2026, 3, 10), 0 * H),
    # 02:30-04:00: the clock shows 03:00-04:00 EDT (07:00Z-08:00Z).
    ("America/New_York", {"sun": ["02:30-04:00"]}, z(2026, 3, 7), z(2026, 3, 10), H),
    # NY fall back: Sunday runs 04:00Z Nov 1 .. 05:00Z Nov 2 = 25 h.
    ("America/New_York", {"sun": ["00:00-24:00"]}, z(2026, 10, 31), z(2026, 11, 3), 25 * H),
    # 01:00-03:00 = 01:00 EDT (05:00Z) .. 03:00 EST (08:00Z): 3 real hours.
    ("America/New_York", {"sun": ["01:00-03:00"]}, z(2026, 10, 31), z(2026, 11, 3), 3 * H),
    # 01:30-02:00 twice: 05:30Z-06:00Z and 06:30Z-07:00Z.
    ("America/New_York", {"sun": ["01:30-02:00"]}, z(2026, 10, 31), z(2026, 11, 3), H),
    (
        "America/New_York",
        {"sun": ["01:30-02:00"]},
        z(2026, 11, 1, 5, 45),
        z(2026, 11, 1, 6, 45),
        30 * M,
    ),
    # Mon-Fri 09:00-18:00 over the spring-forward weekend: Fri 9h (14:00Z-23:00Z) + Mon 9h.
    ("America/New_York", None, z(2026, 3, 6, 14), z(2026, 3, 9, 22), 18 * H),
    # Santiago spring forward: Sunday Sep 6 starts at 01:00 -03 (04:00Z) and ends at
    # 03:00Z Sep 7 = 23 h; Saturday Sep 5 (04:00Z .. 04:00Z) is a normal 24 h.
    ("America/Santiago", {"sun": ["00:00-24:00"]}, z(2026, 9, 4), z(2026, 9, 9), 23 * H),
    ("America/Santiago", {"sat": ["00:00-24:00"]}, z(2026, 9, 4), z(2026, 9, 9), 24 * H),
    ("America/Santiago", {"sun": ["00:00-01:00"]}, z(2026, 9, 4), z(2026, 9, 9), 0 * H),
    ("America/Santiago", {"sun": ["00:30-02:00"]}, z(2026, 9, 4), z(2026, 9, 9), H),
    # Santiago fall back: Saturday Apr 4 runs 03:00Z Apr 4 .. 04:00Z Apr 5 = 25 h; Sunday
    # Apr 5 (04:00Z .. 04:00Z Apr 6) is 24 h; Saturday 23:00-24:00 happens twice (02:00Z-04:00Z).
    ("America/Santiago", {"sat": ["00:00-24:00"]}, z(2026, 4, 3), z(2026, 4, 7), 25 * H),
    ("America/Santiago", {"sun": ["00:00-24:00"]}, z(2026, 4, 3), z(2026, 4, 7), 24 * H),
    ("America/Santiago", {"sat": ["23:00-24:00"]}, z(2026, 4, 3), z(2026, 4, 7), 2 * H),
    ("America/Santiago", {"sat": ["23:00-24:00"]}, z(2026, 4, 5, 3), z(2026, 4, 7), H),
    # Lord Howe (30-minute DST): fall-back Sunday Apr 5 lasts 24.5 h, 01:30-02:00 happens
    # twice (14:30Z-15:30Z Apr 4); spring-forward Sunday Oct 4 lasts 23.5 h and 02:00-02:30
    # does not exist.
    (
        "Australia/Lord_Howe",
        {"sun": ["00:00-24:00"]},
        z(2026, 4, 3),
        z(2026, 4, 7),
        24 * H + 30 * M,
    ),
    ("Australia/Lord_Howe", {"sun": ["01:30-02:00"]}, z(2026, 4, 3), z(2026, 4, 7), H),
    (
        "Australia/Lord_Howe",
        {"sun": ["00:00-24:00"]},
        z(2026, 10, 2),
        z(2026, 10, 6),
        23 * H + 30 * M,
    ),
    ("Australia/Lord_Howe", {"sun": ["02:00-02:30"]}, z(2026, 10, 2), z(2026, 10, 6), 0 * H),
]


def _cal(zone: str, hours: dict[str, list[str]] | None) -> BusinessCalendar:
    if hours is None:
        return BusinessCalendar(CalendarSpec(timezone=zone))
    return BusinessCalendar(CalendarSpec(timezone=zone, hours=hours))


@pytest.mark.parametrize(("zone", "hours", "a", "b", "expected"), DST_BETWEEN)
def test_dst_between(
    zone: str, hours: dict[str, list[str]] | None, a: datetime, b: datetime, expected: timedelta
) -> None:
    cal = _cal(zone, hours)
    assert cal.between(a, b) == expected
    # ... and add() walks the same time line.
    if expected:
        assert cal.between(a, cal.add(a, expected)) == expected


DST_ADD = [
    # 01:30-02:00 on NY's fall-back Sunday: 30 min on the EDT pass (05:30Z-06:00Z), then
    # 15 min on the EST pass (06:30Z-06:45Z).
    (
        "America/New_York",
        {"sun": ["01:30-02:00"]},
        z(2026, 11, 1, 4),
        45 * M,
        z(2026, 11, 1, 6, 45),
    ),
    # 01:30 EDT + 2h of 01:00-03:00 = 01:30 EST (07:30Z): the hour is lived twice.
    (
        "America/New_York",
        {"sun": ["01:00-03:00"]},
        z(2026, 11, 1, 5, 30),
        2 * H,
        z(2026, 11, 1, 7, 30),
    ),
    ("America/New_York", {"sun": ["01:00-03:00"]}, z(2026, 11, 1), 3 * H, z(2026, 11, 1, 8)),
    # Fri 17:00 EST + 2h = Mon 10:00 EDT (14:00Z).
    ("America/New_York", None, z(2026, 3, 6, 22), 2 * H, z(2026, 3, 9, 14)),
    # Spring forward: 01:00-03:00 only has 06:00Z-07:00Z; the second hour is next Sunday
    # 01:00-02:00 EDT (05:00Z-06:00Z Mar 15).
    ("America/New_York", {"sun": ["01:00-03:00"]}, z(2026, 3, 8), 2 * H, z(2026, 3, 15, 6)),
    # Santiago Sat 23:00-24:00 over the fall-back: 23:30 -03 (02:30Z Apr 5) + 1h is
    # 23:30 -04 (03:30Z): the hour 23:00-24:00 is lived twice.
    ("America/Santiago", {"sat": ["23:00-24:00"]}, z(2026, 4, 5, 2, 30), H, z(2026, 4, 5, 3, 30)),
    # Santiago Sun 00:30-02:00 in the spring forward opens at 01:00 -03 (04:00Z).
    ("America/Santiago", {"sun": ["00:30-02:00"]}, z(2026, 9, 6), 30 * M, z(2026, 9, 6, 4, 30)),
    ("America/Santiago", {"sun": ["00:30-02:00"]}, z(2026, 9, 6), 61 * M, z(2026, 9, 13, 3, 31)),
]


@pytest.mark.parametrize(("zone", "hours", "start", "duration", "expected"), DST_ADD)
def test_dst_add(
    zone: str,
    hours: dict[str, list[str]] | None,
    start: datetime,
    duration: timedelta,
    expected: datetime,
) -> None:
    assert _cal(zone, hours).add(start, duration) == expected


def test_dst_fold_is_open_and_local_inputs() -> None:
    cal = _cal("America/New_York", {"sun": ["01:30-02:00"]})
    assert cal.is_open(z(2026, 11, 1, 5, 45))  # 01:45 EDT
    assert not cal.is_open(z(2026, 11, 1, 6, 10))  # 01:10 EST
    assert cal.is_open(z(2026, 11, 1, 6, 40))  # 01:40 EST
    assert cal.is_open(at(2026, 11, 1, 1, 45, tz=NY, fold=1))
    # fold selects the pass: 01:30 EDT .. 01:30 EST contains 30 min of business time.
    first, second = at(2026, 11, 1, 1, 30, tz=NY), at(2026, 11, 1, 1, 30, tz=NY, fold=1)
    assert second - first == timedelta(0)  # (same-zone arithmetic ignores fold) ...
    assert cal.between(first, second) == 30 * M  # ... but instants honour it
    assert cal.add(first, 30 * M) == z(2026, 11, 1, 6)  # used up at the EDT pass's end
    assert cal.add(first, 31 * M) == z(2026, 11, 1, 6, 31)


# ---- refusals and validation ----------------------------------------------------------------


def test_naive_datetimes_refused() -> None:
    naive = datetime(2026, 3, 3, 10)
    with pytest.raises(ValueError, match=r"naive datetime .*: instants must be timezone-aware"):
        DEFAULT.add(naive, H)
    with pytest.raises(ValueError, match="instants must be timezone-aware"):
        DEFAULT.between(naive, at(2026, 3, 4))
    with pytest.raises(ValueError, match="instants must be timezone-aware"):
        DEFAULT.between(at(2026, 3, 4), naive)
    with pytest.raises(ValueError, match="instants must be timezone-aware"):
        DEFAULT.is_open(naive)


def test_negative_duration_refused() -> None:
    with pytest.raises(ValueError, match="negative duration"):
        DEFAULT.add(at(2026, 3, 3, 10), -timedelta(microseconds=1))


def test_closed_for_decades_is_refused() -> None:
    # Only Mondays are open and every Monday of 21 years is a holiday.
    first_monday = date(2026, 1, 5)
    mondays = [first_monday + timedelta(weeks=w) for w in range(21 * 53)]
    cal = BusinessCalendar(CalendarSpec(hours={"mon": ["09:00-10:00"]}, holidays=mondays))
    with pytest.raises(ValueError, match="no business time within 7305 days"):
        cal.add(at(2026, 1, 1), H)
    assert cal.between(at(2026, 1, 1), at(2040, 1, 1)) == timedelta(0)
    assert cal.add(at(2026, 1, 1), timedelta(0)) == at(2026, 1, 1)


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        ({"hours": {"mon": ["9-18"]}}, ["hours.mon", "malformed interval '9-18'"]),
        ({"hours": {"mon": ["09:00 to 18:00"]}}, ["hours.mon", "malformed", "'09:00 to 18:00'"]),
        ({"hours": {"wed": ["09:00-24:30"]}}, ["hours.wed", "malformed", "'09:00-24:30'"]),
        ({"hours": {"wed": ["24:00-24:00"]}}, ["hours.wed", "malformed", "'24:00-24:00'"]),
        ({"hours": {"wed": ["09:60-10:00"]}}, ["hours.wed", "malformed", "'09:60-10:00'"]),
        ({"hours": {"fri": ["18:00-09:00"]}}, ["hours.fri", "'18:00-09:00'", "ends at or before"]),
        ({"hours": {"fri": ["09:00-09:00"]}}, ["hours.fri", "'09:00-09:00'", "ends at or before"]),
        (
            {"hours": {"tue": ["09:00-12:00", "11:00-13:00"]}},
            ["hours.tue", "'09:00-12:00'", "'11:00-13:00'", "overlap"],
        ),
        (
            {"hours": {"tue": ["13:00-18:00", "09:00-19:00"]}},
            ["hours.tue", "'09:00-19:00'", "'13:00-18:00'", "overlap"],
        ),
        ({"hours": {"monday": ["09:00-18:00"]}}, ["unknown weekday 'monday'", "mon, tue"]),
        ({"hours": {}}, ["no business hours"]),
        ({"hours": {"mon": [], "sat": []}}, ["no business hours"]),
        ({"timezone": "Mars/Olympus_Mons"}, ["timezone", "'Mars/Olympus_Mons'"]),
        ({"timezone": "GMT-4"}, ["unknown timezone 'GMT-4'"]),
        ({"timezone": "../etc/passwd"}, ["unknown timezone '../etc/passwd'"]),
        ({"holidays": ["2026-13-01"]}, ["holidays"]),
        ({"holiday_subdivision": "RM"}, ["holiday_subdivision", "holiday_country"]),
        ({"opening": "09:00"}, ["opening", "Extra inputs are not permitted"]),
    ],
)
def test_invalid_specs(fields: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        CalendarSpec.model_validate(fields)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_spec_defaults_yaml_shape_and_schema() -> None:
    spec = CalendarSpec()
    assert spec.timezone == "Etc/GMT+4"
    assert spec.hours == {day: ("09:00-18:00",) for day in DAYS[:5]}
    assert spec.holidays == ()
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(
        """
        timezone: Etc/GMT+4
        hours:
          mon: ["09:00-18:00"]
          tue: ["09:00-12:00", "13:00-18:00"]
          sun: ["20:00-24:00"]
        holidays: [2026-12-25, "2027-01-01"]
        holiday_country: null
        holiday_subdivision: null
        """
    )
    parsed = CalendarSpec.model_validate(data)
    assert parsed.holidays == (date(2026, 12, 25), date(2027, 1, 1))
    assert parsed.hours["tue"] == ("09:00-12:00", "13:00-18:00")
    with pytest.raises(ValidationError):
        parsed.timezone = "UTC"  # type: ignore[misc]
    schema = CalendarSpec.model_json_schema()
    assert set(schema["properties"]) == {
        "timezone",
        "hours",
        "holidays",
        "holiday_country",
        "holiday_subdivision",
        "country_holidays",
    }
    assert schema["additionalProperties"] is False
    json.dumps(schema)


# ---- property-based tests ---------------------------------------------------------------------

ZONES = [
    "Etc/GMT+4",
    "UTC",
    "America/Santiago",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
]
# UTC instants of DST transitions in 2026 (see the DST comment above; London: 01:00Z Mar 29
# and Oct 25); property-test spans are often placed around them.
TRANSITIONS = [
    z(2026, 3, 8, 7),
    z(2026, 11, 1, 6),
    z(2026, 4, 5, 3),
    z(2026, 9, 6, 4),
    z(2026, 4, 4, 15),
    z(2026, 10, 3, 15, 30),
    z(2026, 3, 29, 1),
    z(2026, 10, 25, 1),
]
NOTABLE_MINUTES = [0, 30, 60, 90, 120, 150, 180, 540, 1080, 1380, 1410, 1440]

Week = dict[str, list[tuple[int, int]]]


def _fmt(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _spec_hours(week: Week) -> dict[str, list[str]]:
    return {day: [f"{_fmt(s)}-{_fmt(e)}" for s, e in ivs] for day, ivs in week.items()}


@st.composite
def weeks(draw: st.DrawFn) -> Week:
    """Random weekly hours on whole minutes: 0-3 disjoint intervals a day, never all closed."""
    week: Week = {}
    for day in DAYS:
        points = draw(
            st.lists(
                st.one_of(st.integers(0, 1440), st.sampled_from(NOTABLE_MINUTES)),
                unique=True,
                max_size=6,
            )
        )
        points = sorted(points)[: len(points) // 2 * 2]
        if points:
            week[day] = list(zip(points[::2], points[1::2], strict=True))
    if not week:
        start = draw(st.integers(0, 1439))
        week[draw(st.sampled_from(DAYS))] = [(start, draw(st.integers(start + 1, 1440)))]
    return week


@st.composite
def minute_starts(draw: st.DrawFn) -> datetime:
    """A UTC instant on a whole minute, often within a few days before a DST transition."""
    if draw(st.booleans()):
        base = draw(st.sampled_from(TRANSITIONS))
        return base - timedelta(minutes=draw(st.integers(-1440, 6 * 1440)))
    return z(2024, 1, 1) + timedelta(minutes=draw(st.integers(0, 4 * 365 * 1440)))


def oracle_is_open(instant: datetime, zone: ZoneInfo, week: Week, holidays: set[date]) -> bool:
    """The definition, independently: local wall clock of the UTC instant vs. the hours."""
    local = instant.astimezone(zone)
    assert local.second == 0  # all tested zones have whole-minute offsets in 2024-2027
    if local.date() in holidays:
        return False
    minute = local.hour * 60 + local.minute
    return any(s <= minute < e for s, e in week.get(DAYS[local.weekday()], []))


@settings(max_examples=150, deadline=None, print_blob=True)
@given(
    zone_name=st.sampled_from(ZONES),
    week=weeks(),
    holiday_offsets=st.sets(st.integers(-1, 11), max_size=4),
    start=minute_starts(),
    span=st.integers(0, 10 * 1440),
    picks=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6)),
)
def test_against_minute_oracle(
    zone_name: str,
    week: Week,
    holiday_offsets: set[int],
    start: datetime,
    span: int,
    picks: tuple[int, int, int],
) -> None:
    zone = ZoneInfo(zone_name)
    first_day = start.astimezone(zone).date()
    holidays = {first_day + timedelta(days=o) for o in holiday_offsets}
    cal = BusinessCalendar(
        CalendarSpec(timezone=zone_name, hours=_spec_hours(week), holidays=sorted(holidays))
    )
    # Minute i is [start + i, start + i + 1); openness is constant within a UTC minute
    # because every offset and every bound is a whole number of minutes.
    flags = [oracle_is_open(start + i * M, zone, week, holidays) for i in range(span)]
    before = [0, *accumulate(flags)]  # before[i] = open minutes in [start, start + i)
    local_start = start.astimezone(zone)  # inputs in any aware zone are accepted

    assert cal.between(local_start, start + span * M) == before[span] * M
    i, j = sorted((picks[0] % (span + 1), picks[1] % (span + 1)))
    assert cal.between(start + i * M, start + j * M) == (before[j] - before[i]) * M

    open_minutes = [k for k, flag in enumerate(flags) if flag]
    assert cal.add(local_start, 0 * M) == start
    if open_minutes:
        n = picks[2] % len(open_minutes) + 1  # use up n open minutes ...
        expected = start + (open_minutes[n - 1] + 1) * M  # ... ending with the n-th one
        assert cal.add(local_start, n * M) == expected

    for k in range(span):  # is_open wherever the oracle's answer changes
        if k == 0 or flags[k] != flags[k - 1]:
            assert cal.is_open(start + k * M) is flags[k]
            if k:
                assert cal.is_open(start + k * M - timedelta(microseconds=1)) is flags[k - 1]


aware_instants = st.datetimes(
    min_value=datetime(2024, 1, 1),
    max_value=datetime(2027, 12, 31),
    timezones=st.sampled_from([ZoneInfo(name) for name in ZONES]),
)


@st.composite
def calendars(draw: st.DrawFn) -> tuple[BusinessCalendar, int]:
    """A random calendar and its open microseconds per (holiday-free) week."""
    week = draw(weeks())
    holidays = draw(st.lists(st.dates(date(2023, 12, 25), date(2028, 1, 10)), max_size=20))
    zone = draw(st.sampled_from(ZONES))
    spec = CalendarSpec(timezone=zone, hours=_spec_hours(week), holidays=holidays)
    weekly_minutes = sum(e - s for ivs in week.values() for s, e in ivs)
    return BusinessCalendar(spec), weekly_minutes * 60_000_000


@settings(max_examples=150, deadline=None, print_blob=True)
@given(cal_week=calendars(), t=aware_instants, data=st.data())
def test_law_add_is_additive(
    cal_week: tuple[BusinessCalendar, int], t: datetime, data: st.DataObject
) -> None:
    cal, weekly = cal_week
    a = timedelta(microseconds=data.draw(st.integers(0, 2 * weekly), label="a"))
    b = timedelta(microseconds=data.draw(st.integers(0, 2 * weekly), label="b"))
    assert cal.add(cal.add(t, a), b) == cal.add(t, a + b)


@settings(max_examples=150, deadline=None, print_blob=True)
@given(cal_week=calendars(), t=aware_instants, data=st.data())
def test_law_between_inverts_add(
    cal_week: tuple[BusinessCalendar, int], t: datetime, data: st.DataObject
) -> None:
    cal, weekly = cal_week
    d = timedelta(microseconds=data.draw(st.integers(0, 3 * weekly), label="d"))
    end = cal.add(t, d)
    assert end >= t
    assert cal.between(t, end) == d
    # u is computed in UTC: arithmetic on a zoneinfo datetime is wall-clock arithmetic and
    # would drop t's fold (t + 0 can be an hour *before* t in a fold).
    later = timedelta(microseconds=data.draw(st.integers(0, 20 * 86_400_000_000), label="u-t"))
    u = t.astimezone(UTC) + later
    elapsed = cal.between(t, u)
    assert cal.add(t, elapsed) <= u
    assert cal.between(t, cal.add(t, elapsed)) == elapsed


LONG_ZONES = ["America/Santiago", "America/New_York", "Etc/GMT+4", "Europe/London"]
long_instants = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=60, deadline=None, print_blob=True)
@given(
    zone=st.sampled_from(LONG_ZONES),
    week=weeks(),
    holidays=st.lists(st.dates(date(1969, 12, 25), date(2091, 1, 10)), max_size=40),
    a=long_instants,
    span=st.one_of(
        st.integers(0, 3 * 86_400_000_000),  # up to 3 days
        st.integers(0, 3 * 366 * 86_400_000_000),  # up to 3 years, across year ends
    ),
    near_holiday=st.booleans(),
)
def test_between_closed_form_matches_the_day_walk(
    zone: str, week: Week, holidays: list[date], a: datetime, span: int, near_holiday: bool
) -> None:
    """The span-independent ``between`` agrees with walking the days, to the microsecond."""
    if near_holiday and holidays:  # start inside or next to a holiday
        a = datetime.combine(holidays[0], a.time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)
    cal = BusinessCalendar(
        CalendarSpec(timezone=zone, hours=_spec_hours(week), holidays=sorted(holidays))
    )
    b = a + timedelta(microseconds=span)
    assert cal.between(a, b) == cal._between_by_days(a, b)
    assert cal.between(b, a) == timedelta(0)


@pytest.mark.parametrize("zone", LONG_ZONES)
def test_between_over_decades_matches_the_day_walk(zone: str) -> None:
    cal = BusinessCalendar(CalendarSpec(timezone=zone, holidays=[date(1999, 12, 31)]))
    a = datetime(1970, 1, 2, 13, 17, 5, 123456, tzinfo=UTC)
    for b in (
        datetime(2026, 11, 24, 14, 0, 0, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 15, tzinfo=UTC),
    ):
        assert cal.between(a, b) == cal._between_by_days(a, b)
    # and from the later end first: the yearly sums are anchored at the first year asked for
    fresh = BusinessCalendar(CalendarSpec(timezone=zone))
    late, early = datetime(2040, 6, 1, tzinfo=UTC), datetime(1971, 3, 3, tzinfo=UTC)
    assert fresh.between(late, late + timedelta(days=1)) == fresh._between_by_days(
        late, late + timedelta(days=1)
    )
    assert fresh.between(early, late) == fresh._between_by_days(early, late)


@settings(max_examples=60, deadline=None, print_blob=True)
@given(
    zone=st.sampled_from(LONG_ZONES),
    week=weeks(),
    holidays=st.lists(st.dates(date(1969, 12, 25), date(2091, 1, 10)), max_size=40),
    a=long_instants,
    amount=st.one_of(
        st.integers(1, 60 * 3_600_000_000),  # up to 60 business hours
        st.integers(1, 4_000 * 3_600_000_000),  # up to ~2 business years
    ),
)
def test_add_closed_form_matches_the_day_walk(
    zone: str, week: Week, holidays: list[date], a: datetime, amount: int
) -> None:
    cal = BusinessCalendar(
        CalendarSpec(timezone=zone, hours=_spec_hours(week), holidays=sorted(holidays))
    )
    expected = cal._add_by_days(_us(a), amount)
    assert cal._add_closed(_us(a), amount) in (expected, None)
    assert cal.add(a, timedelta(microseconds=amount)) == datetime(
        1970, 1, 1, tzinfo=UTC
    ) + timedelta(microseconds=expected)


def _us(instant: datetime) -> int:
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
