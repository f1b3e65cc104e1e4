"""The compiled form of a cron schedule and the search for its next fire time: field by
field through precomputed next-value tables, never minute by minute, and the DST rules
applied to the wall time that the search finds."""

from __future__ import annotations

import calendar
from bisect import bisect_left
from collections.abc import Mapping
from datetime import date, datetime, timezone
from functools import lru_cache

from ._fields import (
    CRONTAB_SPECS,
    DAY,
    KEYWORD_SPECS,
    MONTH,
    SECOND,
    WEEK,
    YEAR,
    Term,
    expand,
    parse_field,
)
from ._zones import Wall, Window, ZoneTable

#: The calendar (days, weekdays, ISO weeks) repeats every 400 years exactly, so a date
#: pattern that matches in no year of one 400-year cycle never matches.
_CYCLE = 400
_MAX_CACHED_MONTHS = 2048  # 170 years of months; each entry is a shared table
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_SATURDAY, _SUNDAY = 5, 6


class Plan:
    """A schedule compiled for searching. Shared by equal triggers (see :func:`compile_plan`).

    Each field becomes a "next allowed value" table: ``table[v]`` is the smallest allowed
    value ``>= v``, or -1. A lookup costs one index operation, and the tables have one
    slot past the field's range, so a search may pass ``second=60`` or ``day=32``.

    Attributes:
        wall_clock: True when neither the minute nor the hour field starts with ``*``:
            the schedule names wall-clock times (the DST rules differ, see ``next_fire``).
    """

    __slots__ = (
        "_dom",
        "_dom_any",
        "_dow_any",
        "_dow_days",
        "_dow_last",
        "_dow_nth",
        "_hour",
        "_minute",
        "_month",
        "_month_days",
        "_or_rule",
        "_second",
        "_shapes",
        "_weeks",
        "_years",
        "wall_clock",
    )

    def __init__(self, fields: Mapping[str, str], crontab: bool) -> None:
        specs = CRONTAB_SPECS if crontab else KEYWORD_SPECS
        self._years = None if fields["year"] == "*" else expand(YEAR, fields["year"])
        self._month = _next_table(expand(MONTH, fields["month"]), 14)
        self._hour = _next_table(expand(specs["hour"], fields["hour"]), 25)
        self._minute = _next_table(expand(specs["minute"], fields["minute"]), 61)
        self._second = _next_table(expand(SECOND, fields["second"]), 61)
        self.wall_clock = not (fields["minute"][0] == "*" or fields["hour"][0] == "*")
        self._weeks = None if fields["week"] == "*" else frozenset(expand(WEEK, fields["week"]))
        # Debian cron: when both day fields are restricted (neither starts with "*"), a
        # day matches if either matches. The keyword form always needs both (APScheduler).
        self._or_rule = crontab and fields["day"][0] != "*" and fields["day_of_week"][0] != "*"
        self._dom = parse_field(DAY, fields["day"])
        self._dom_any = _selects_all(self._dom)
        dow_spec = specs["day_of_week"]
        dow_terms = parse_field(dow_spec, fields["day_of_week"])
        self._dow_any = _selects_all(dow_terms)
        # the engine numbers weekdays as date.weekday() does (0 = Monday)
        convert = _monday_first if crontab else _unchanged
        self._dow_days = frozenset(convert(day) for day in expand(dow_spec, fields["day_of_week"]))
        self._dow_nth = tuple(
            (convert(term.start), term.end) for term in dow_terms if term.kind == "nth"
        )
        self._dow_last = tuple(convert(term.start) for term in dow_terms if term.kind == "last_of")
        self._month_days: dict[int, tuple[int, ...]] = {}
        self._shapes: dict[int, tuple[int, ...]] = {}
        self._check_satisfiable(fields)

    def _check_satisfiable(self, fields: Mapping[str, str]) -> None:
        if self._or_rule or not self._dow_any or self._weeks is not None:
            return
        if any(term.kind not in ("all", "range", "from") for term in self._dom):
            return
        months = [month for month in range(1, 13) if self._month[month] == month]
        longest = max(calendar.monthrange(2000, month)[1] for month in months)
        if min(expand(DAY, fields["day"])) > longest:
            raise ValueError(
                f"day {fields['day']!r} never occurs in month {fields['month']!r}, so the "
                f"schedule would never fire"
            )

    def next_wall(self, y: int, mo: int, d: int, h: int, mi: int, s: int) -> Wall | None:
        """The first matching wall time at or after the given one (``s`` may be 60)."""
        hours, minutes, seconds = self._hour, self._minute, self._second
        while True:
            days = self._month_days.get(y * 16 + mo)
            if days is None or days[d] != d:
                found = self._next_date(y, mo, d)
                if found is None:
                    return None
                if found[2] != d or found[1] != mo or found[0] != y:
                    y, mo, d = found
                    h = mi = s = 0
            # the date matches: the first matching time of the day at or after h:mi:s
            next_hour = hours[h]
            if next_hour == h:
                next_minute = minutes[mi]
                if next_minute == mi:
                    next_second = seconds[s]
                    if next_second >= 0:
                        return (y, mo, d, h, mi, next_second)
                    next_minute = minutes[mi + 1]
                if next_minute >= 0:
                    return (y, mo, d, h, next_minute, seconds[0])
                next_hour = hours[h + 1]
            if next_hour >= 0:
                return (y, mo, d, next_hour, minutes[0], seconds[0])
            d += 1
            h = mi = s = 0

    def _next_date(self, y: int, mo: int, d: int) -> tuple[int, int, int] | None:
        """The first matching date at or after (y, mo, d); ``d`` may be 32."""
        if y < 1970:
            y, mo, d = 1970, 1, 1
        failed: set[int] | None = None
        while y <= 9999:
            years = self._years
            if years is not None:
                i = bisect_left(years, y)
                if i == len(years):
                    return None
                if years[i] != y:
                    y, mo, d = years[i], 1, 1
            whole_year = mo == 1 and d == 1
            if whole_year and failed is not None and y % _CYCLE in failed:
                y += 1
                continue
            month = self._month[mo]
            if month != mo:
                d = 1
            while month > 0:
                days = self._month_days.get(y * 16 + month)
                if days is None:
                    days = self._days_of(y, month)
                if days[d] > 0:
                    return (y, month, days[d])
                month = self._month[month + 1]
                d = 1
            if whole_year:
                # The calendar repeats every 400 years: once every position in the cycle
                # has failed, the pattern can never match (e.g. "30 2" AND a weekday).
                failed = failed or set()
                failed.add(y % _CYCLE)
                if len(failed) == _CYCLE:
                    return None
            y, mo, d = y + 1, 1, 1
        return None

    def _days_of(self, y: int, month: int) -> tuple[int, ...]:
        """The next-matching-day table of a month (memoized: the fields are fixed)."""
        first = date(y, month, 1).weekday()
        length = _DAYS_IN_MONTH[month] + (month == 2 and calendar.isleap(y))
        if self._weeks is None:
            # Without ISO weeks a month's matching days depend only on its length and
            # the weekday it starts on: at most 28 shapes, shared by all the years.
            shape = first * 32 + length
            days = self._shapes.get(shape)
            if days is None:
                days = self._shapes[shape] = _next_table(self._matching_days(first, length), 33)
        else:
            weeks = self._weeks
            chosen = self._matching_days(first, length)
            days = _next_table(
                tuple(day for day in chosen if date(y, month, day).isocalendar()[1] in weeks), 33
            )
        month_days = self._month_days
        if len(month_days) >= _MAX_CACHED_MONTHS:
            # a new dict rather than clear(): a concurrent reader keeps a whole one
            month_days = self._month_days = {}
        month_days[y * 16 + month] = days
        return days

    def _matching_days(self, first: int, length: int) -> tuple[int, ...]:
        """The days (1..length) of a month starting on weekday *first* that match."""
        by_day = None if self._dom_any else self._day_of_month(first, length)
        by_weekday = None if self._dow_any else self._day_of_week(first, length)
        if by_day is None or by_weekday is None:
            chosen = by_day if by_weekday is None else by_weekday
            if chosen is None:
                return tuple(range(1, length + 1))
        elif self._or_rule:
            chosen = by_day | by_weekday
        else:
            chosen = by_day & by_weekday
        return tuple(sorted(chosen))

    def _day_of_month(self, first: int, length: int) -> set[int]:
        days: set[int] = set()
        for term in self._dom:
            kind = term.kind
            if kind in ("all", "range", "from"):
                days.update(range(term.start, min(term.end, length) + 1, term.step))
            elif kind == "last":
                days.add(length - term.start)
            elif kind == "nearest":
                days.add(_nearest_weekday(term.start, first, length))
            elif kind == "last_weekday":
                days.add(_nearest_weekday(length, first, length))
            elif kind == "nth":
                days.add(_nth_weekday(term.start, term.end, first))
            else:  # last_of
                days.add(_last_weekday(term.start, first, length))
        return {day for day in days if 1 <= day <= length}

    def _day_of_week(self, first: int, length: int) -> set[int]:
        days = {
            day
            for weekday in self._dow_days
            for day in range(1 + (weekday - first) % 7, length + 1, 7)
        }
        days.update(_nth_weekday(weekday, nth, first) for weekday, nth in self._dow_nth)
        days.update(_last_weekday(weekday, first, length) for weekday in self._dow_last)
        return {day for day in days if day <= length}


def _next_table(values: tuple[int, ...], size: int) -> tuple[int, ...]:
    """``table[v]``: the smallest of *values* that is ``>= v`` (-1 if none), v < size."""
    allowed = set(values)
    table = [-1] * size
    following = -1
    for value in range(size - 1, -1, -1):
        if value in allowed:
            following = value
        table[value] = following
    return tuple(table)


def _selects_all(terms: tuple[Term, ...]) -> bool:
    return all(term.kind == "all" and term.step == 1 for term in terms)


def _monday_first(weekday: int) -> int:
    """A crontab weekday (0 or 7 = Sunday) in ``date.weekday()`` numbering."""
    return (weekday + 6) % 7


def _unchanged(weekday: int) -> int:
    return weekday


def _nearest_weekday(day: int, first: int, length: int) -> int:
    """``nW``: the Monday-Friday day nearest *day*, never leaving the month (0 if *day*
    is not in the month)."""
    if day > length:
        return 0
    weekday = (first + day - 1) % 7
    if weekday == _SATURDAY:
        return day - 1 if day > 1 else day + 2
    if weekday == _SUNDAY:
        return day + 1 if day < length else day - 2
    return day


def _nth_weekday(weekday: int, nth: int, first: int) -> int:
    return 1 + (weekday - first) % 7 + 7 * (nth - 1)


def _last_weekday(weekday: int, first: int, length: int) -> int:
    return length - (first + length - 1 - weekday) % 7


@lru_cache(maxsize=256)
def compile_plan(fields: tuple[tuple[str, str], ...], crontab: bool) -> Plan:
    """The shared plan of a schedule: a thousand equal triggers share one plan and its
    memoized month tables."""
    return Plan(dict(fields), crontab)


def next_fire(plan: Plan, table: ZoneTable | None, local: datetime) -> datetime | None:
    """The first fire time strictly after the instant *local* (aware, in the trigger's
    zone with ``fold`` set as ``astimezone`` sets it), or ``None``.

    DST follows Debian cron (as cronsim reproduces it).

    * A schedule whose minute or hour field starts with ``*`` says "every so often", so
      it runs on elapsed time: it fires at every instant whose wall time matches. A
      skipped wall time never happens, so it never fires; a repeated one happens twice
      and fires twice. Searching wall times in order is then wrong only around a fold,
      where the clock revisits wall times that are smaller than the one it just showed:
      after the first pass through a repeated span comes the whole span again.
    * Any other schedule names wall-clock times ("at 02:30"), and users expect each to
      run once a day: a skipped one at the first instant after the gap (otherwise the
      job is lost for the day), a repeated one at its first occurrence only (otherwise
      it runs twice). Then the search is in wall time throughout; only an *after* in the
      second pass of a fold must skip ahead, since the wall times up to the end of the
      span already fired on the first pass.
    """
    tz = local.tzinfo
    y, mo, d = local.year, local.month, local.day
    h, mi, s = local.hour, local.minute, local.second
    if table is None:  # a fixed offset: wall times and instants correspond one to one
        found = plan.next_wall(y, mo, d, h, mi, s + 1)
        # positional tzinfo: three times faster than the keyword (hence the noqa)
        return None if found is None else datetime(*found, 0, tz)  # noqa: DTZ001
    # Most days have no odd wall times: one dict probe per day settles that (the table
    # is filled a year at a time, marked by the key y * 512).
    cells = table.cells
    window = None
    if y * 512 + mo * 32 + d in cells or y * 512 not in cells:
        window = table.window_at(y, mo, d, h, mi, s)
    if window is not None and window.gap:
        # a hand-made datetime inside a gap: read it as the instant it stands for
        local = local.astimezone(timezone.utc).astimezone(tz)
        y, mo, d = local.year, local.month, local.day
        h, mi, s = local.hour, local.minute, local.second
        window = table.window_at(y, mo, d, h, mi, s)
    if not plan.wall_clock:
        return _next_elapsed(plan, table, (y, mo, d, h, mi, s + 1), local.fold, window)
    if window is not None and local.fold:
        found = plan.next_wall(*window.end)  # skip what fired on the first pass
    else:
        found = plan.next_wall(y, mo, d, h, mi, s + 1)
    if found is None:
        return None
    y, mo, d = found[0], found[1], found[2]
    if y * 512 + mo * 32 + d in cells or y * 512 not in cells:
        span = table.window_at(*found)
        if span is not None and span.gap:
            return span.end_time  # 02:30 in a 02:00 -> 03:00 jump fires at 03:00
    # fold=0 is the first occurrence of a repeated wall time
    return datetime(*found, 0, tz)  # noqa: DTZ001


def _next_elapsed(
    plan: Plan, table: ZoneTable, start: Wall, fold: int, window: Window | None
) -> datetime | None:
    tz = table.tz
    if window is not None:
        # Inside a repeated span: first the rest of the current pass ...
        found = plan.next_wall(*start)
        if found is not None and found < window.end:
            return datetime(*found, 0, tz, fold=fold)  # noqa: DTZ001
        if not fold:
            # ... then, after the clock goes back, the whole span once more.
            found = plan.next_wall(*window.start)
            if found is not None and found < window.end:
                return datetime(*found, 0, tz, fold=1)  # noqa: DTZ001
        start = window.end
    while True:
        found = plan.next_wall(*start)
        if found is None:
            return None
        span = table.window_at(*found)
        if span is None or not span.gap:
            # a repeated wall time: its first pass (fold=0) comes first
            return datetime(*found, 0, tz)  # noqa: DTZ001
        start = span.end  # skipped wall times never happen
