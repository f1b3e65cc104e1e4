"""IntervalTrigger: fires every fixed amount of real elapsed time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, ClassVar

import attrs

from horae._validation import (
    check_kwargs,
    current_time,
    timezone_from_key,
    timezone_key,
)
from horae._wallclock import from_utc_microseconds, to_utc, utc_microseconds
from horae.calendars import Calendar

from ._base import Trigger
from ._common import (
    as_instant,
    check_exclude,
    format_datetime,
    parse_datetime,
    parse_optional_datetime,
    utc_key,
    zone_of,
)

_ONE_MICROSECOND = timedelta(microseconds=1)
_UNITS = ("weeks", "days", "hours", "minutes", "seconds", "microseconds")


def _check_amount(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__} {value!r}")
    return value


@check_kwargs
@attrs.frozen(init=False)
class IntervalTrigger(Trigger):
    """Fires at ``start_time + k * interval`` for k = 0, 1, 2, ... (until ``end_time``).

    The interval is measured in real elapsed time (UTC), so daylight saving time never
    stretches or shrinks it: an hourly trigger stays 3600 s apart across a DST change,
    and its wall-clock times shift by the DST offset instead.

    ``next(after)`` is plain integer arithmetic on microseconds since the epoch, so it
    costs the same for a schedule that was down for two years as for one that was not.

    Args:
        weeks: Number of weeks in the interval.
        days: Number of days in the interval (a day is 24 h of elapsed time here; use
            :class:`~horae.triggers.CalendarIntervalTrigger` for wall-clock days).
        hours: Number of hours in the interval.
        minutes: Number of minutes in the interval.
        seconds: Number of seconds in the interval.
        microseconds: Number of microseconds in the interval.
        start_time: The first fire time (a ``datetime``, a ``date`` meaning midnight, or
            an ISO 8601 string). Naive values are wall times in ``timezone``, read as cron
            reads them: one inside a DST gap is the first instant after the gap, a
            repeated one its first occurrence. Default: one interval after the trigger
            is made (as ``setInterval`` and APScheduler 3 do).
        end_time: The latest allowed fire time (inclusive). Must not be earlier than the
            first fire time.
        timezone: The zone of naive ``start_time``/``end_time`` and of the results.
            Default: the zone of an aware ``start_time``, else the machine's local zone.
        exclude: A :class:`~horae.calendars.Calendar` of times to skip.

    Raises:
        ValueError: The interval is zero or negative, or ``end_time`` is earlier than the
            first fire time.
        TypeError: An argument has the wrong type or an unknown name.

    The amounts (``weeks`` ... ``microseconds``) are kept as given, so
    ``IntervalTrigger(hours=1)`` and ``IntervalTrigger(minutes=60)`` fire at the same
    times but are not equal values; compare :attr:`interval` for that.
    """

    state_type: ClassVar[str] = "interval"

    weeks: float
    days: float
    hours: float
    minutes: float
    seconds: float
    microseconds: float
    start_time: datetime = attrs.field(eq=utc_key)
    end_time: datetime | None = attrs.field(eq=utc_key)
    timezone: tzinfo
    exclude: Calendar | None
    # True when start_time was not given (it is then "now + interval"). Not part of the
    # value; lets sync_schedules see that a declared trigger without a start time is
    # the same as the stored one made earlier.
    _start_defaulted: bool = attrs.field(default=False, eq=False)

    def __init__(
        self,
        *,
        weeks: float = 0,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        microseconds: float = 0,
        start_time: datetime | date | str | None = None,
        end_time: datetime | date | str | None = None,
        timezone: tzinfo | str | None = None,
        exclude: Calendar | None = None,
    ) -> None:
        amounts = [
            _check_amount(value, name)
            for value, name in zip(
                (weeks, days, hours, minutes, seconds, microseconds), _UNITS, strict=True
            )
        ]
        interval = _interval_of(*amounts)
        tz = zone_of(start_time, timezone)
        if start_time is None:
            # Add in UTC: aware arithmetic in a ZoneInfo zone is wall-clock arithmetic and
            # would be an hour off across a DST change.
            first = to_utc(current_time(tz)) + interval
        else:
            first = as_instant(start_time, tz, name="start_time")
        first = to_utc(first).astimezone(tz)
        last = None
        if end_time is not None:
            last = as_instant(end_time, tz, name="end_time")
            if to_utc(last) < to_utc(first):
                raise ValueError(
                    f"end_time {last.isoformat()!r} is earlier than the first fire time "
                    f"{first.isoformat()!r}; the trigger would never fire"
                )
        check_exclude(exclude)
        weeks, days, hours, minutes, seconds, microseconds = amounts
        self.__attrs_init__(
            weeks,
            days,
            hours,
            minutes,
            seconds,
            microseconds,
            first,
            last,
            tz,
            exclude,
            start_time is None,
        )

    @property
    def interval(self) -> timedelta:
        """The interval as a ``timedelta``."""
        return _interval_of(
            self.weeks, self.days, self.hours, self.minutes, self.seconds, self.microseconds
        )

    def _next(self, after: datetime | None) -> datetime | None:
        start = utc_microseconds(self.start_time)
        if after is None:
            fire = start
        else:
            step = self.interval // _ONE_MICROSECOND
            elapsed = utc_microseconds(after) - start
            # The smallest k >= 0 with start + k*step > after. Floor division of integers
            # is exact at any distance, so this is O(1) and never drifts.
            fire = start if elapsed < 0 else start + (elapsed // step + 1) * step
        if self.end_time is not None and fire > utc_microseconds(self.end_time):
            return None
        try:
            return from_utc_microseconds(fire, self.timezone)
        except OverflowError:
            return None  # past datetime.max: the trigger has run out of time

    def __str__(self) -> str:
        return f"interval[{self.interval}]"

    def describe(self) -> str:
        """An English sentence, e.g. ``"Every 0:00:03 from 2024-01-01T00:00:00+00:00"``."""
        text = f"Every {self.interval} from {self.start_time.isoformat()}"
        if self.end_time is not None:
            text += f" until {self.end_time.isoformat()}"
        return text

    def _to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name) for name in _UNITS}
        state["start_time"] = format_datetime(self.start_time)
        state["end_time"] = format_datetime(self.end_time)
        state["timezone"] = timezone_key(self.timezone)
        return state

    @classmethod
    def _from_state(
        cls, state: Mapping[str, Any], version: int, exclude: Calendar | None
    ) -> IntervalTrigger:
        tz = timezone_from_key(state["timezone"])
        return cls(
            **{name: state[name] for name in _UNITS},
            start_time=parse_datetime(state["start_time"], tz),
            end_time=parse_optional_datetime(state["end_time"], tz),
            timezone=tz,
            exclude=exclude,
        )


def _interval_of(
    weeks: float, days: float, hours: float, minutes: float, seconds: float, microseconds: float
) -> timedelta:
    try:
        interval = timedelta(
            weeks=weeks,
            days=days,
            hours=hours,
            minutes=minutes,
            seconds=seconds,
            microseconds=microseconds,
        )
    except OverflowError:
        raise ValueError("the interval is too long (the limit is 999999999 days)") from None
    if interval <= timedelta(0):
        raise ValueError(
            f"the interval must be positive, got {interval.total_seconds():g} seconds; give "
            f"weeks, days, hours, minutes, seconds or microseconds a total above zero"
        )
    return interval
