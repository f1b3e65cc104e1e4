"""CalendarIntervalTrigger: fires every N calendar units at a fixed wall-clock time."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, ClassVar

import attrs

from horae._validation import (
    as_aware_datetime,
    check_kwargs,
    current_time,
    timezone_from_key,
    timezone_key,
)
from horae._wallclock import resolve_wall_time, to_utc
from horae.calendars import Calendar

from ._base import Trigger
from ._common import check_exclude, zone_of

_UNITS = ("years", "months", "weeks", "days")
_TIME_FIELDS = (("hour", 23), ("minute", 59), ("second", 59))
# The Gregorian calendar repeats every 400 years = 4800 months = 146097 days, so a month
# is 146097/4800 days on average; the estimate below uses that exact ratio in integers.
_DAYS_PER_400_YEARS = 146_097
_MAX_ORDINAL = date.max.toordinal()
_MONTHS_PER_400_YEARS = 4_800


@check_kwargs
@attrs.frozen(init=False)
class CalendarIntervalTrigger(Trigger):
    """Fires every N calendar units (years, months, weeks, days) at a fixed wall time.

    The k-th fire date is ``start_date`` plus ``k * (years, months)`` (keeping the day of
    the month) plus ``k * (weeks, days)``; it fires at ``hour:minute:second`` wall-clock
    time in ``timezone``. So ``months=1`` from January 31st fires on March 31st, May 31st,
    ...: a month without that day is **skipped, never shifted** to the month's end, and a
    yearly trigger from February 29th fires only in leap years. When months and days are
    mixed, each step adds both, counted from ``start_date`` (``months=1, days=1`` from
    January 15th gives February 16th, March 17th, ...), so skipping a month never shifts
    the later fire dates.

    Daylight saving time: a wall time inside a DST gap fires at the first instant after
    the gap (02:30 on the Berlin spring-forward day fires at 03:00 CEST); a wall time
    that occurs twice fires once, at its first occurrence. Elapsed time between fires
    therefore varies (a daily trigger may be 23 or 25 hours apart); use
    :class:`~horae.triggers.IntervalTrigger` for fixed elapsed time.

    ``next(after)`` estimates the fire index from the distance to ``after`` (using the
    Gregorian average month, exact to a few days) and corrects it with a few steps, so its
    cost does not grow with the number of fires in between.

    Args:
        years: Number of years between fires.
        months: Number of months between fires.
        weeks: Number of weeks between fires.
        days: Number of days between fires.
        hour: Hour of day of each fire (0-23).
        minute: Minute of each fire (0-59).
        second: Second of each fire (0-59).
        start_date: The first fire date (a ``date``, a ``datetime`` whose date in
            ``timezone`` is used, or an ISO 8601 string). Default: today in ``timezone``.
        end_date: The last allowed fire date (inclusive).
        timezone: The zone of the wall-clock times and of the results. Default: the zone
            of an aware ``start_date``, else the machine's local zone.
        exclude: A :class:`~horae.calendars.Calendar` of times to skip.

    Raises:
        ValueError: All units are zero, a unit is negative, a time field is out of
            range, or ``end_date`` is before ``start_date``.
        TypeError: An argument has the wrong type or an unknown name.
    """

    state_type: ClassVar[str] = "calendarinterval"

    years: int
    months: int
    weeks: int
    days: int
    hour: int
    minute: int
    second: int
    start_date: date
    end_date: date | None
    timezone: tzinfo
    exclude: Calendar | None
    # Without a start_date the trigger starts today, but a fire time of today that had
    # already passed when the trigger was made is not due: the first fire is the first
    # one at or after construction. Not part of the value (two triggers made a second
    # apart are equal), but kept in the state so next(None) survives a round trip.
    _not_before: datetime | None = attrs.field(default=None, eq=False)

    def __init__(
        self,
        *,
        years: int = 0,
        months: int = 0,
        weeks: int = 0,
        days: int = 0,
        hour: int = 0,
        minute: int = 0,
        second: int = 0,
        start_date: date | datetime | str | None = None,
        end_date: date | datetime | str | None = None,
        timezone: tzinfo | str | None = None,
        exclude: Calendar | None = None,
    ) -> None:
        units = [
            _check_int(value, name)
            for value, name in zip((years, months, weeks, days), _UNITS, strict=True)
        ]
        for value, name in zip(units, _UNITS, strict=True):
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value!r}")
        if not any(units):
            raise ValueError(
                "the interval must not be zero; give at least one of years, months, weeks "
                "or days a value above zero"
            )
        clock = []
        for value, (name, highest) in zip((hour, minute, second), _TIME_FIELDS, strict=True):
            value = _check_int(value, name)
            if not 0 <= value <= highest:
                raise ValueError(f"invalid value {value!r} for {name!r} (allowed: 0-{highest})")
            clock.append(value)
        tz = zone_of(start_date, timezone)
        made_at: datetime | None = None
        if start_date is None:
            made_at = current_time(tz)
            first = made_at.date()
        else:
            first = _as_date(start_date, tz)
        last = None if end_date is None else _as_date(end_date, tz, "end_date")
        if last is not None and last < first:
            raise ValueError(
                f"end_date {last.isoformat()!r} is before start_date {first.isoformat()!r}"
            )
        check_exclude(exclude)
        years, months, weeks, days = units
        hour, minute, second = clock
        self.__attrs_init__(
            years, months, weeks, days, hour, minute, second, first, last, tz, exclude, made_at
        )

    def _next(self, after: datetime | None) -> datetime | None:
        if after is None:
            if self._not_before is not None:
                return self._next(to_utc(self._not_before) - timedelta(microseconds=1))
            return self._fire_time(self.start_date)
        after_utc = to_utc(after)
        # Start one day early: a fire time on the previous date can land after *after*
        # when a DST gap that spans midnight pushes it forward.
        target = after_utc.astimezone(self.timezone).date().toordinal() - 1
        index = self._first_index_reaching(target)
        # Fire times increase with the index, so the first one after *after* is at most a
        # few skipped slots (months without the day, or the one-day margin) away.
        while (slot := self._slot(index)) is not None:
            ordinal, exists = slot
            if exists:
                fire = self._fire_time(date.fromordinal(ordinal))
                if fire is None or to_utc(fire) > after_utc:
                    return fire
            index += 1
        return None

    def _fire_time(self, fire_date: date) -> datetime | None:
        if self.end_date is not None and fire_date > self.end_date:
            return None
        wall = datetime.combine(fire_date, time(self.hour, self.minute, self.second))
        try:
            return resolve_wall_time(wall, self.timezone)
        except OverflowError:
            return None  # the last day of year 9999 in a zone east of UTC

    def _slot(self, index: int) -> tuple[int, bool] | None:
        """The *index*-th fire date as (ordinal, whether its month has the day).

        The ordinal is strictly increasing in *index* even when the month lacks the day
        (it then runs over into the next month), which makes it a search key. ``None``
        means past 9999-12-31.
        """
        step_months = self.years * 12 + self.months
        total = self.start_date.year * 12 + self.start_date.month - 1 + index * step_months
        year, month = divmod(total, 12)
        if year > 9999:
            return None
        ordinal = (
            date(year, month + 1, 1).toordinal()
            + self.start_date.day
            - 1
            + index * (self.weeks * 7 + self.days)
        )
        if ordinal > _MAX_ORDINAL:
            return None
        return ordinal, self.start_date.day <= calendar.monthrange(year, month + 1)[1]

    def _first_index_reaching(self, target: int) -> int:
        """The smallest fire index whose virtual date ordinal is >= *target*."""
        step_months, step_days = self.years * 12 + self.months, self.weeks * 7 + self.days
        distance = target - self.start_date.toordinal()
        if distance <= 0:
            return 0
        # Estimate with the average step length in days (exact for weeks/days; for
        # months the calendar drifts at most a few days from the average), then correct
        # by single steps: a handful at most, whatever the distance.
        average = step_months * _DAYS_PER_400_YEARS + step_days * _MONTHS_PER_400_YEARS
        index = distance * _MONTHS_PER_400_YEARS // average
        while index > 0 and _reaches(self._slot(index - 1), target):
            index -= 1
        while not _reaches(self._slot(index), target):
            index += 1
        return index

    def __str__(self) -> str:
        parts = [f"{name}={getattr(self, name)}" for name in _UNITS if getattr(self, name)]
        return (
            f"calendarinterval[{', '.join(parts)}, at "
            f"{self.hour:02d}:{self.minute:02d}:{self.second:02d}]"
        )

    def describe(self) -> str:
        """An English sentence, e.g. ``"Every 1 month at 09:00:00 from 2024-01-31"``."""
        parts = []
        for name in _UNITS:
            value = getattr(self, name)
            if value:
                parts.append(f"{value} {name if value != 1 else name[:-1]}")
        text = (
            f"Every {', '.join(parts)} at {self.hour:02d}:{self.minute:02d}:{self.second:02d} "
            f"from {self.start_date.isoformat()}"
        )
        if self.end_date is not None:
            text += f" until {self.end_date.isoformat()}"
        return text

    def _to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name) for name in _UNITS}
        state.update(hour=self.hour, minute=self.minute, second=self.second)
        state["start_date"] = self.start_date.isoformat()
        state["end_date"] = None if self.end_date is None else self.end_date.isoformat()
        state["timezone"] = timezone_key(self.timezone)
        if self._not_before is not None:
            state["not_before"] = self._not_before.isoformat()
        return state

    @classmethod
    def _from_state(
        cls, state: Mapping[str, Any], version: int, exclude: Calendar | None
    ) -> CalendarIntervalTrigger:
        if not isinstance(state["start_date"], str):
            raise TypeError(f"start_date must be an ISO 8601 date, not {state['start_date']!r}")
        end_date = state["end_date"]
        trigger = cls(
            **{name: state[name] for name in (*_UNITS, "hour", "minute", "second")},
            start_date=date.fromisoformat(state["start_date"]),
            end_date=None if end_date is None else date.fromisoformat(end_date),
            timezone=timezone_from_key(state["timezone"]),
            exclude=exclude,
        )
        not_before = state.get("not_before")
        if not_before is not None:
            object.__setattr__(trigger, "_not_before", datetime.fromisoformat(not_before))
        return trigger


def _reaches(slot: tuple[int, bool] | None, target: int) -> bool:
    # None means past 9999-12-31, which is beyond every target
    return slot is None or slot[0] >= target


def _check_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__} {value!r}")
    return value


def _as_date(value: date | datetime | str, tz: tzinfo, name: str = "start_date") -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    # astimezone(tz) is a no-op for a naive value just labelled with tz, and converts an
    # aware value from another zone to its date in the trigger's zone.
    return as_aware_datetime(value, tz, name=name).astimezone(tz).date()
