"""Business-hours calendar: how much *business time* lies between two instants.

A calendar is described by a :class:`CalendarSpec` (parsed from the ``calendar:`` block of a
workflow definition) and evaluated by a :class:`BusinessCalendar`.

Semantics (the one definition everything else follows)
------------------------------------------------------
A UTC instant ``u`` is **business time** iff, with ``local = u.astimezone(zone)`` (zoneinfo's
conversion of that UTC instant to the calendar's zone):

* ``local.date()`` is not a holiday (an explicit date or, with ``holiday_country``, a date of
  the `holidays` package for that country/subdivision), and
* ``local.time()`` lies in one of the half-open wall-clock intervals ``[start, end)``
  configured for ``local.weekday()`` (an end of ``24:00`` means "to the end of that day").

Business time is then *real elapsed time* (UTC) spent inside that set, counted in whole
microseconds (no floats anywhere). Consequences at daylight-saving changes:

* **Gaps** (clocks jump forward): wall-clock times that do not exist are never shown by the
  clock, so they contribute nothing. ``00:00-24:00`` on a spring-forward day lasts 23 real
  hours; an interval lying wholly inside the gap contributes nothing; an interval bound that
  falls inside the gap is in effect moved to the transition instant (``02:30-04:00`` on
  New York's spring-forward day is open from 03:00 EDT to 04:00 EDT, one hour).
* **Folds** (clocks fall back): wall-clock times that occur twice are business time on both
  passes. ``00:00-24:00`` on a fall-back day lasts 25 real hours, ``01:00-03:00`` on New York's
  fall-back day lasts 3 real hours, ``01:30-02:00`` there is open 01:30-02:00 EDT and again
  01:30-02:00 EST (one hour in two pieces).

The ``fold`` attribute of the datetimes you pass in is honoured when they are converted to
UTC (an aware datetime names one instant); all results are aware datetimes in UTC.

Implementation. ``between`` costs the same for any span: the UTC time line is cut into
pieces of constant UTC offset ``o`` (the zone's transitions, found once per UTC year by probing
the offset every six hours and bisecting to the second - TZif transitions fall on whole
seconds - and cached), and within a piece local time is ``u + o`` (monotonic), so the business
time of UTC ``[u1, u2)`` is ``G(u2 + o) - G(u1 + o)`` where ``G(x)`` is the business time of
local wall time before ``x`` since 1970-01-01 00:00: whole weeks in closed form, the rest of
the week from a prefix table, minus the holidays before ``x`` counted by bisection over a
sorted tuple of holiday dates with prefix sums of their open time. Business time up to the
start of each UTC year is cached, so a span of fifty years costs two lookups and two ``G``.
Folds count twice and gaps not at all, exactly as defined above (assuming no two transitions
cancel each other within six hours, which no real zone does).

``add`` walks the (cached) days for up to one week of business time - the usual SLA target,
and cheapest warm - and beyond that is the inverse of ``between`` in closed form: whole UTC
years from the cached yearly totals, then the piece of constant offset where the duration
runs out, then the local day found by bisection on ``G`` and the interval within it (a year
with no business time at all falls back to walking the days, which reports a calendar closed
for ``MAX_CLOSED_DAYS``). Country
holidays are resolved once, for the years ``HOLIDAY_YEARS``, into the spec itself
(``CalendarSpec.country_holidays``): a definition version keeps its dates.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

__all__ = [
    "DEFAULT_TIMEZONE",
    "HOLIDAY_YEARS",
    "MAX_CLOSED_DAYS",
    "WEEKDAYS",
    "BusinessCalendar",
    "CalendarSpec",
]

#: Weekday keys of ``CalendarSpec.hours``, in ``date.weekday()`` order.
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: The policy's GMT-4 (IANA's ``Etc/GMT±N`` zones invert the sign).
DEFAULT_TIMEZONE = "Etc/GMT+4"

#: ``add`` gives up (ValueError) after this many consecutive days without business time.
MAX_CLOSED_DAYS = 7305  # 20 years

_US = timedelta(microseconds=1)
_SECOND_US = 1_000_000
_HOUR_US = 3_600 * _SECOND_US
_DAY_US = 24 * _HOUR_US
_PROBE_US = _HOUR_US  # step between UTC-offset probes when looking for transitions
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

#: The years for which ``holiday_country`` is resolved into dates (every instant the service
#: accepts lies in them); outside them only explicit ``holidays`` close a day.
HOLIDAY_YEARS = range(1970, 2101)

_PIECE_PROBE_US = 6 * _HOUR_US  # step between UTC-offset probes when cutting a year
_THURSDAY = 3  # 1970-01-01 was a Thursday

_INTERVAL_RE = re.compile(r"\s*(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})\s*")

# weekday index (0 = Monday) -> sorted, non-overlapping (start, end) in microseconds of the day
_Week = tuple[tuple[tuple[int, int], ...], ...]


def _default_hours() -> dict[str, tuple[str, ...]]:
    return {day: ("09:00-18:00",) for day in WEEKDAYS[:5]}


def _parse_interval(day: str, text: str) -> tuple[int, int]:
    """``"HH:MM-HH:MM"`` -> (start, end) in minutes of the day; ValueError naming day/interval."""
    match = _INTERVAL_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"hours.{day}: malformed interval {text!r}; expected 'HH:MM-HH:MM' "
            "(e.g. '09:00-18:00'; the end may be '24:00')"
        )
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(
            f"hours.{day}: malformed interval {text!r}; times must be 00:00-23:59 "
            "(an end may also be '24:00')"
        )
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        raise ValueError(f"hours.{day}: interval {text!r} ends at or before it starts")
    return start, end


def _parse_day(day: str, intervals: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Parse and check one weekday's intervals; sorted (start, end) minute pairs."""
    parsed = sorted(
        ((*_parse_interval(day, text), text) for text in intervals), key=lambda p: p[:2]
    )
    for (_s1, e1, t1), (s2, _e2, t2) in pairwise(parsed):
        if s2 < e1:
            raise ValueError(f"hours.{day}: intervals {t1!r} and {t2!r} overlap")
    return tuple((s, e) for s, e, _ in parsed)


def _parse_hours(hours: Mapping[str, Sequence[str]]) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Weekday index -> sorted minute intervals (every check of ``CalendarSpec.hours``)."""
    for key in hours:
        if key not in WEEKDAYS:
            raise ValueError(
                f"hours: unknown weekday {key!r}; expected one of {', '.join(WEEKDAYS)}"
            )
    week = tuple(_parse_day(day, hours.get(day, ())) for day in WEEKDAYS)
    if not any(week):
        raise ValueError(
            "hours: the calendar has no business hours at all (every weekday is closed)"
        )
    return week


def _load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as exc:
        raise ValueError(
            f"timezone: unknown timezone {name!r}; expected an IANA zone name such as "
            "'America/Santiago' or 'Etc/GMT+4' (= UTC-4, IANA inverts the sign)"
        ) from exc


def _country_holidays(country: str, subdivision: str | None) -> tuple[date, ...]:
    """The `holidays` package's dates for a country in ``HOLIDAY_YEARS`` (imported lazily)."""
    try:
        import holidays as holidays_pkg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ValueError(
            f"holiday_country {country!r} needs the 'holidays' package, which is not "
            "installed (pip install holidays)"
        ) from exc
    try:
        holidays_pkg.country_holidays(country)
    except (NotImplementedError, KeyError, ValueError) as exc:
        raise ValueError(
            f"holiday_country: unknown country {country!r} for the holidays package ({exc})"
        ) from exc
    try:
        found = holidays_pkg.country_holidays(country, subdiv=subdivision, years=HOLIDAY_YEARS)
    except (NotImplementedError, KeyError, ValueError) as exc:
        raise ValueError(
            f"holiday_subdivision: unknown subdivision {subdivision!r} of country "
            f"{country!r} ({exc})"
        ) from exc
    return tuple(sorted(found.keys()))


class CalendarSpec(BaseModel):
    """When the support team works: a time zone, weekly hours and closed dates.

    ``hours`` maps a weekday key (``mon`` .. ``sun``) to local wall-clock intervals
    ``"HH:MM-HH:MM"`` (half-open; the end may be ``24:00``); a missing day is closed.
    ``holidays`` are local dates closed all day; ``holiday_country`` (and optionally
    ``holiday_subdivision``) adds the public holidays of the `holidays` package, resolved once
    into ``country_holidays`` (the dates of ``HOLIDAY_YEARS``) when the spec is first parsed.
    Those dates are part of the spec - stored and hashed with the definition version - so a
    newer `holidays` package never changes the calendar of a stored version.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(
        default=DEFAULT_TIMEZONE,
        description="IANA time zone of the business hours (Etc/GMT+4 is UTC-4).",
    )
    hours: dict[str, tuple[str, ...]] = Field(
        default_factory=_default_hours,
        description="Weekday (mon..sun) -> local 'HH:MM-HH:MM' intervals; missing day = closed.",
    )
    holidays: tuple[date, ...] = Field(
        default=(), description="Local dates closed all day (ISO dates)."
    )
    holiday_country: str | None = Field(
        default=None, description="ISO country code for public holidays, e.g. 'CL'."
    )
    holiday_subdivision: str | None = Field(
        default=None, description="Subdivision of holiday_country, e.g. 'RM'."
    )
    country_holidays: tuple[date, ...] | None = Field(
        default=None,
        description="Filled in when the definition is first loaded: the dates of "
        "holiday_country (years 1970-2100) from the holidays package. Stored and hashed with "
        "the definition version, so upgrading the package never changes it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve_country(cls, data: Any) -> Any:
        if (
            isinstance(data, Mapping)
            and data.get("holiday_country") is not None
            and data.get("country_holidays") is None
        ):
            resolved = _country_holidays(data["holiday_country"], data.get("holiday_subdivision"))
            return {**data, "country_holidays": resolved}
        return data

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if out.get("country_holidays") is None:  # specs without a country keep their hash
            out.pop("country_holidays", None)
        return out

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        _load_zone(value)
        return value

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        _parse_hours(value)
        return value

    @model_validator(mode="after")
    def _check_holiday_country(self) -> CalendarSpec:
        if self.holiday_country is None:
            if self.holiday_subdivision is not None:
                raise ValueError("holiday_subdivision is set but holiday_country is not")
            if self.country_holidays is not None:
                raise ValueError("country_holidays is set but holiday_country is not")
        return self


def _to_us(instant: datetime, name: str) -> int:
    """Microseconds since the Unix epoch of an aware datetime; refuses naive ones."""
    if not isinstance(instant, datetime):
        raise TypeError(f"{name}: expected a datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(
            f"naive datetime {instant.isoformat()} ({name}): instants must be timezone-aware"
        )
    return (instant - _EPOCH) // _US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _year(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=UTC)


class BusinessCalendar:
    """Business-time arithmetic over a :class:`CalendarSpec` (see the module docstring)."""

    def __init__(self, spec: CalendarSpec) -> None:
        self._spec = spec
        self._zone = _load_zone(spec.timezone)
        self._week: _Week = tuple(
            tuple((s * 60 * _SECOND_US, e * 60 * _SECOND_US) for s, e in day)
            for day in _parse_hours(spec.hours)
        )
        self._holidays = frozenset(spec.holidays) | frozenset(spec.country_holidays or ())
        self._day_segments: Callable[[int], tuple[tuple[int, int], ...]] = lru_cache(maxsize=4096)(
            self._compute_day_segments
        )
        # closed form of local business time (see the module docstring)
        self._day_total = tuple(sum(e - s for s, e in day) for day in self._week)
        self._week_total = sum(self._day_total)
        self._week_prefix = [0]  # open time of the first k days of a week starting on Thursday
        for k in range(7):
            self._week_prefix.append(self._week_prefix[-1] + self._day_total[(_THURSDAY + k) % 7])
        self._holiday_days = tuple(sorted(d.toordinal() - _EPOCH_ORDINAL for d in self._holidays))
        self._holiday_prefix = [0]  # open time of the first k holidays (weekday hours)
        for day in self._holiday_days:
            self._holiday_prefix.append(
                self._holiday_prefix[-1] + self._day_total[(_THURSDAY + day) % 7]
            )
        self._year_pieces: Callable[[int], tuple[tuple[int, int, int], ...]] = lru_cache(
            maxsize=512
        )(self._compute_year_pieces)
        self._year_start: dict[int, int] = {}  # UTC year -> business time before it (anchored)

    @property
    def spec(self) -> CalendarSpec:
        return self._spec

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def __repr__(self) -> str:
        return f"BusinessCalendar({self._spec!r})"

    # -- public API ------------------------------------------------------------------------

    def is_holiday(self, day: date) -> bool:
        """Whether the local date ``day`` is closed all day (explicit or country holiday)."""
        return day in self._holidays

    def is_open(self, instant: datetime) -> bool:
        """Whether ``instant`` is business time (the module docstring's definition)."""
        local = _from_us(_to_us(instant, "instant")).astimezone(self._zone)
        if self.is_holiday(local.date()):
            return False
        of_day = (
            local.hour * 3600 + local.minute * 60 + local.second
        ) * _SECOND_US + local.microsecond
        return any(s <= of_day < e for s, e in self._week[local.weekday()])

    def add(self, instant: datetime, duration: timedelta) -> datetime:
        """The instant reached after ``duration`` of business time counted from ``instant``.

        ``duration`` must be >= 0 (ValueError otherwise). A zero duration returns ``instant``
        itself (as UTC; it is not moved to the next opening). Otherwise counting starts at
        ``instant`` or, outside business hours, at the next opening, and when the duration is
        used up exactly at the end of an interval that end is returned. The result is an
        aware UTC datetime. Raises ValueError if no business time is found for
        ``MAX_CLOSED_DAYS`` consecutive days.
        """
        start = _to_us(instant, "instant")
        if not isinstance(duration, timedelta):
            raise TypeError(f"duration: expected a timedelta, got {type(duration).__name__}")
        if duration < timedelta(0):
            raise ValueError(f"negative duration {duration}: business durations must be >= 0")
        remaining = duration // _US
        if remaining == 0:
            return _from_us(start)
        if remaining > self._week_total:  # beyond a week of business time: closed form
            found = self._add_closed(start, remaining)
            if found is not None:
                return _from_us(found)
        return _from_us(self._add_by_days(start, remaining))

    def _add_by_days(self, start: int, remaining: int) -> int:
        """``add`` by walking the days (the reference; also for calendars closed a year)."""
        for seg_start, seg_end in self._segments(start, None):
            length = seg_end - seg_start
            if remaining <= length:
                return seg_start + remaining
            remaining -= length
        raise AssertionError("unreachable: _segments without a stop never ends")

    def _add_closed(self, start: int, remaining: int) -> int | None:
        """``add`` in closed form: whole UTC years from the cached totals, then the piece of
        constant offset where the time runs out, then the local day by bisection. None when a
        whole year without business time lies on the way (the day walk reports that)."""
        year = _from_us(start).year
        position = start
        while True:
            for lo, hi, offset in self._year_pieces(year):
                if hi <= position:
                    continue
                begin = max(lo, position) + offset
                available = self._local_open(hi + offset) - self._local_open(begin)
                if remaining <= available:
                    return self._local_reach(begin, hi + offset, remaining) - offset
                remaining -= available
            year += 1
            position = _to_us(_year(year), "year")
            total = self._in_year(year, _to_us(_year(year + 1), "year"))
            if total == 0:
                return None
            while remaining > total:
                remaining -= total
                year += 1
                position = _to_us(_year(year), "year")
                total = self._in_year(year, _to_us(_year(year + 1), "year"))
                if total == 0:
                    return None

    def _local_reach(self, begin: int, end: int, amount: int) -> int:
        """The first local instant ``x`` in ``(begin, end]`` with ``amount`` of business time in
        ``[begin, x)`` (it exists: the caller checked)."""
        goal = self._local_open(begin) + amount
        lo_day, hi_day = begin // _DAY_US, (end - 1) // _DAY_US
        while lo_day < hi_day:  # the first day by whose end the goal is reached
            mid = (lo_day + hi_day) // 2
            if self._local_open((mid + 1) * _DAY_US) >= goal:
                hi_day = mid
            else:
                lo_day = mid + 1
        day_start = lo_day * _DAY_US
        reached = self._local_open(day_start)
        for s, e in self._week[(_THURSDAY + lo_day) % 7]:
            if reached + (e - s) >= goal:
                return day_start + s + (goal - reached)
            reached += e - s
        raise AssertionError("unreachable: the goal lies within the checked span")

    def between(self, a: datetime, b: datetime) -> timedelta:
        """Business time elapsed in ``[a, b)``; ``timedelta(0)`` if ``b <= a``.

        Its cost does not depend on the span (see the module docstring)."""
        start, stop = _to_us(a, "a"), _to_us(b, "b")
        if stop <= start:
            return timedelta(0)
        y1, y2 = _from_us(start).year, _from_us(stop).year
        if y1 == y2:
            return timedelta(microseconds=self._in_year(y1, stop) - self._in_year(y1, start))
        total = self._before_year(y2) - self._before_year(y1)
        return timedelta(microseconds=total + self._in_year(y2, stop) - self._in_year(y1, start))

    def _between_by_days(self, a: datetime, b: datetime) -> timedelta:
        """``between`` by walking the time line day by day (the reference the tests compare)."""
        start, stop = _to_us(a, "a"), _to_us(b, "b")
        total = 0
        if stop > start:
            for seg_start, seg_end in self._segments(start, stop):
                if seg_start >= stop:
                    break
                total += min(seg_end, stop) - seg_start
        return timedelta(microseconds=total)

    # -- closed form (instants are int microseconds since the Unix epoch) -------------------

    def _local_open(self, x: int) -> int:
        """Business time of local wall time ``[1970-01-01 00:00, x)`` (negative before it)."""
        day, of_day = divmod(x, _DAY_US)
        weeks, rest = divmod(day, 7)
        weekday = (_THURSDAY + day) % 7
        partial = sum(min(max(of_day - s, 0), e - s) for s, e in self._week[weekday])
        total = weeks * self._week_total + self._week_prefix[rest] + partial
        i = bisect_left(self._holiday_days, day)
        total -= self._holiday_prefix[i]
        if i < len(self._holiday_days) and self._holiday_days[i] == day:
            total -= partial
        return total

    def _compute_year_pieces(self, year: int) -> tuple[tuple[int, int, int], ...]:
        """UTC year ``year`` cut into ``(start, end, utc_offset)`` pieces of constant offset."""
        lo, hi = _to_us(_year(year), "year"), _to_us(_year(year + 1), "year")
        pieces: list[tuple[int, int, int]] = []
        piece_start, offset, probe = lo, self._offset(lo), lo
        while probe < hi:
            nxt = min(probe + _PIECE_PROBE_US, hi)
            if nxt == hi or self._offset(nxt) == offset:
                probe = nxt
                continue
            before, after = probe, nxt  # a transition lies in (before, after]
            while after - before > _SECOND_US:
                mid = before + (after - before) // (2 * _SECOND_US) * _SECOND_US
                if self._offset(mid) == offset:
                    before = mid
                else:
                    after = mid
            pieces.append((piece_start, after, offset))
            piece_start, offset, probe = after, self._offset(after), after
        pieces.append((piece_start, hi, offset))
        return tuple(pieces)

    def _in_year(self, year: int, u: int) -> int:
        """Business time from the start of UTC year ``year`` to ``u`` (inside that year)."""
        total = 0
        for lo, hi, offset in self._year_pieces(year):
            if lo >= u:
                break
            total += self._local_open(min(hi, u) + offset) - self._local_open(lo + offset)
        return total

    def _before_year(self, year: int) -> int:
        """Business time before UTC year ``year``, relative to the first year asked for."""
        known = self._year_start
        if not known:
            known[year] = 0
        if year in known:
            return known[year]
        hi, lo = max(known), min(known)
        while year > hi:
            known[hi + 1] = known[hi] + self._in_year(hi, _to_us(_year(hi + 1), "year"))
            hi += 1
        while year < lo:
            known[lo - 1] = known[lo] - self._in_year(lo - 1, _to_us(_year(lo), "year"))
            lo -= 1
        return known[year]

    # -- internals (all instants are int microseconds since the Unix epoch, UTC) -----------

    def _segments(self, start: int, stop: int | None) -> Iterator[tuple[int, int]]:
        """Business segments ``[s, e)`` in UTC order, clipped to begin at ``start``.

        With ``stop`` the walk ends at the UTC day containing ``stop``; without it the walk is
        endless but raises ValueError after ``MAX_CLOSED_DAYS`` days with no business time.
        """
        day = start // _DAY_US
        last_open = start
        while stop is None or day * _DAY_US < stop:
            for seg_start, seg_end in self._day_segments(day):
                if seg_end > start:
                    yield max(seg_start, start), seg_end
                    last_open = seg_end
            day += 1
            if stop is None and day * _DAY_US - last_open > MAX_CLOSED_DAYS * _DAY_US:
                raise ValueError(
                    f"no business time within {MAX_CLOSED_DAYS} days after "
                    f"{_from_us(last_open).isoformat()}: the calendar is closed for too "
                    "long (check its holidays)"
                )

    def _offset(self, us: int) -> int:
        offset = _from_us(us).astimezone(self._zone).utcoffset()
        assert offset is not None
        return offset // _US

    def _offset_pieces(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """Split UTC ``[lo, hi)`` (whole seconds) into ``(start, end, utc_offset)`` pieces."""
        pieces: list[tuple[int, int, int]] = []
        piece_start, offset, probe = lo, self._offset(lo), lo
        last_probe = hi - _SECOND_US
        while probe < last_probe:
            nxt = min(probe + _PROBE_US, last_probe)
            if self._offset(nxt) == offset:
                probe = nxt
                continue
            # A transition lies in (probe, nxt]: bisect to the first second with a new offset.
            before, after = probe, nxt
            while after - before > _SECOND_US:
                mid = before + (after - before) // (2 * _SECOND_US) * _SECOND_US
                if self._offset(mid) == offset:
                    before = mid
                else:
                    after = mid
            pieces.append((piece_start, after, offset))
            piece_start, offset, probe = after, self._offset(after), after
        pieces.append((piece_start, hi, offset))
        return pieces

    def _compute_day_segments(self, day: int) -> tuple[tuple[int, int], ...]:
        """Business segments inside UTC day number ``day`` (days since 1970-01-01), merged."""
        segments: list[tuple[int, int]] = []
        for lo, hi, offset in self._offset_pieces(day * _DAY_US, (day + 1) * _DAY_US):
            # Within the piece local wall-clock time is u + offset (monotonic).
            first_local_day = (lo + offset) // _DAY_US
            last_local_day = (hi - 1 + offset) // _DAY_US
            for local_day in range(first_local_day, last_local_day + 1):
                local_date = date.fromordinal(local_day + _EPOCH_ORDINAL)
                if self.is_holiday(local_date):
                    continue
                base = local_day * _DAY_US - offset
                for start, end in self._week[local_date.weekday()]:
                    seg_start, seg_end = max(base + start, lo), min(base + end, hi)
                    if seg_start >= seg_end:
                        continue
                    if segments and segments[-1][1] == seg_start:
                        segments[-1] = (segments[-1][0], seg_end)
                    else:
                        segments.append((seg_start, seg_end))
        return tuple(segments)
