"""Calendars: sets of excluded times that any trigger can skip with ``exclude=``.

Implementations: HolidayCalendar, CronCalendar, DateRangeCalendar (below).
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, ClassVar

import attrs

from ._exceptions import DeserializationError
from ._validation import (
    as_timezone,
    check_kwargs,
    require_aware,
    timezone_from_key,
    timezone_key,
)
from ._wallclock import resolve_wall_time, resolve_wall_time_after, to_utc

_registry: dict[str, type[Calendar]] = {}


class Calendar(ABC):
    """A set of excluded times. Calendars are immutable values, like triggers.

    Contract:

    * ``excluded_until(dt)`` returns ``None`` when the aware datetime *dt* is not
      excluded; otherwise the end (exclusive, strictly later than *dt*) of the excluded
      span that contains it, so that a trigger can jump over the whole span at once.
    * ``dt in calendar`` is ``True`` when *dt* is excluded.
    * Wall-clock rules (dates, cron fields) are read in *dt*'s own time zone unless the
      calendar was given a ``timezone``.
    * ``to_state()`` / ``Calendar.from_state()`` round-trip through a versioned,
      JSON-safe dict, as for triggers.
    """

    __slots__ = ()

    state_type: ClassVar[str]
    state_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "state_type" in cls.__dict__:
            _registry[cls.state_type] = cls

    @abstractmethod
    def excluded_until(self, dt: datetime) -> datetime | None:
        """``None`` if *dt* is allowed, else the end of the excluded span containing it."""

    def __contains__(self, dt: object) -> bool:
        return isinstance(dt, datetime) and self.excluded_until(dt) is not None

    def to_state(self) -> dict[str, Any]:
        """Return the versioned, JSON-safe state of this calendar."""
        state: dict[str, Any] = {"type": self.state_type, "version": self.state_version}
        state.update(self._to_state())
        return state

    @abstractmethod
    def _to_state(self) -> dict[str, Any]:
        """The calendar's own fields as JSON-safe values."""

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Calendar:
        """Rebuild a calendar from :meth:`to_state` output (of any registered kind)."""
        if not isinstance(state, Mapping):
            raise DeserializationError(
                f"a calendar state must be a mapping, not {type(state).__name__}"
            )
        kind = state.get("type")
        calendar_class = _registry.get(kind)  # type: ignore[arg-type]
        if calendar_class is None:
            raise DeserializationError(f"unknown calendar type {kind!r} in stored state")
        version = state.get("version")
        if not isinstance(version, int) or version > calendar_class.state_version:
            raise DeserializationError(
                f"calendar state version {version!r} of {kind!r} is newer than this version "
                f"of horae understands; upgrade horae"
            )
        try:
            return calendar_class._from_state(state, version)
        except (KeyError, TypeError, ValueError) as exc:
            raise DeserializationError(f"invalid {kind!r} calendar state: {exc}") from exc

    @classmethod
    @abstractmethod
    def _from_state(cls, state: Mapping[str, Any], version: int) -> Calendar:
        """Build the calendar from its state."""


def _instant_key(value: datetime) -> datetime:
    """Equality key: aware values by instant (Python compares same-zone datetimes by wall
    time, ignoring ``fold``), naive values as they are."""
    return value if value.utcoffset() is None else to_utc(value)


def _zone_key(tz: tzinfo | None) -> str | None:
    return None if tz is None else timezone_key(tz)


def _zone_from_key(key: str | None) -> tzinfo | None:
    return None if key is None else timezone_from_key(key)


def _span_end(wall: datetime, zone: tzinfo, dt: datetime) -> datetime:
    """The instant that ends an excluded span at the naive *wall* time, in UTC.

    Returned in UTC because ``Trigger.next`` steps one microsecond back from it, and
    that step is only exact on a UTC value (in a zone it is wall-clock arithmetic and can
    fall into a DST gap).
    """
    try:
        return to_utc(resolve_wall_time_after(wall, zone, dt))
    except OverflowError:
        return _END_OF_TIME


_END_OF_TIME = datetime.max.replace(tzinfo=timezone.utc)


def _as_holiday(value: object, index: int) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"invalid date {value!r} at position {index} of dates; use the ISO 8601 "
                f"form 'YYYY-MM-DD', e.g. '2024-12-25'"
            ) from None
    raise TypeError(
        f"dates must hold dates or ISO 8601 strings, not {type(value).__name__} {value!r} "
        f"(at position {index})"
    )


@check_kwargs
@attrs.frozen(init=False)
class HolidayCalendar(Calendar):
    """Excludes whole days: every time whose date is one of ``dates``.

    A day runs from its midnight to the next midnight, as wall-clock time in
    ``timezone`` (or, without one, in the zone of the time being checked). Consecutive
    holidays form one excluded span, so a trigger jumps over a whole run at once.

    Args:
        dates: The excluded days, as ``date`` objects or ISO 8601 strings
            (``"2024-12-25"``); a ``datetime`` counts as its date. Order and duplicates
            do not matter.
        timezone: The zone whose calendar days are excluded. Default: each checked
            time's own zone.

    Raises:
        TypeError: A date has the wrong type, or an argument has an unknown name.
        ValueError: A string is not an ISO 8601 date, or the zone is unknown.
    """

    state_type: ClassVar[str] = "holiday"

    dates: tuple[date, ...]
    timezone: tzinfo | None

    def __init__(
        self, dates: Iterable[date | str], *, timezone: tzinfo | str | None = None
    ) -> None:
        if isinstance(dates, (str, date)) or not isinstance(dates, Iterable):
            raise TypeError(
                f"dates must be an iterable of dates or ISO 8601 strings, such as "
                f"['2024-12-25', '2024-12-26'], not {type(dates).__name__} {dates!r}"
            )
        days = sorted({_as_holiday(value, index) for index, value in enumerate(dates)})
        tz = None if timezone is None else as_timezone(timezone)
        self.__attrs_init__(tuple(days), tz)

    def excluded_until(self, dt: datetime) -> datetime | None:
        """The next midnight after the run of holidays containing *dt*'s date, or None."""
        require_aware(dt, "dt")
        zone = self.timezone if self.timezone is not None else dt.tzinfo
        assert zone is not None
        day = dt.astimezone(zone).date()
        index = bisect.bisect_left(self.dates, day)
        if index == len(self.dates) or self.dates[index] != day:
            return None
        # walk to the end of a run of consecutive holidays (the dates are sorted)
        while index + 1 < len(self.dates) and (
            self.dates[index + 1].toordinal() == self.dates[index].toordinal() + 1
        ):
            index += 1
        if self.dates[index] == date.max:
            return _END_OF_TIME
        next_day = self.dates[index] + timedelta(days=1)
        return _span_end(datetime.combine(next_day, time()), zone, dt)

    def _to_state(self) -> dict[str, Any]:
        return {
            "dates": [day.isoformat() for day in self.dates],
            "timezone": _zone_key(self.timezone),
        }

    @classmethod
    def _from_state(cls, state: Mapping[str, Any], version: int) -> HolidayCalendar:
        return cls(state["dates"], timezone=_zone_from_key(state["timezone"]))


def _as_bound(value: object, name: str) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            try:
                value = date.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"invalid {name} {value!r}: expected an ISO 8601 date or date and time "
                    f"such as '2024-12-24 18:00:00'"
                ) from None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    raise TypeError(
        f"{name} must be a datetime, a date or an ISO 8601 string, not "
        f"{type(value).__name__} {value!r}"
    )


@check_kwargs
@attrs.frozen(init=False)
class DateRangeCalendar(Calendar):
    """Excludes one span of time, ``[start, end)``: start included, end not.

    Aware bounds are instants. Naive bounds (and dates, meaning midnight) are wall-clock
    times: with ``timezone`` they are fixed to instants in that zone when the calendar is
    made (a wall time in a DST gap becomes the first instant after the gap; a repeated
    one, its first occurrence); without it they are compared with each checked time's
    wall clock in that time's own zone, so one calendar can serve triggers in several
    zones.

    Args:
        start: The first excluded moment: a ``datetime``, a ``date`` or an ISO string.
        end: The first moment after the span (exclusive); must be later than ``start``.
        timezone: The zone of naive bounds. Default: each checked time's own zone.

    Raises:
        ValueError: ``end`` is not later than ``start``; or, without ``timezone``, one
            bound is naive and the other aware; or a string is not ISO 8601.
        TypeError: A bound has the wrong type, or an argument has an unknown name.
    """

    state_type: ClassVar[str] = "daterange"

    start: datetime = attrs.field(eq=_instant_key)
    end: datetime = attrs.field(eq=_instant_key)
    timezone: tzinfo | None

    def __init__(
        self,
        start: datetime | date | str,
        end: datetime | date | str,
        *,
        timezone: tzinfo | str | None = None,
    ) -> None:
        first = _as_bound(start, "start")
        last = _as_bound(end, "end")
        tz = None if timezone is None else as_timezone(timezone)
        if tz is not None:
            first, last = (
                bound if bound.utcoffset() is not None else resolve_wall_time(bound, tz)
                for bound in (first, last)
            )
        naive = [bound.utcoffset() is None for bound in (first, last)]
        if naive[0] != naive[1]:
            raise ValueError(
                f"start {first.isoformat()!r} and end {last.isoformat()!r} must both be "
                f"naive or both timezone-aware; pass timezone= to read naive values in a zone"
            )
        if _instant_key(last) <= _instant_key(first):
            raise ValueError(
                f"end {last.isoformat()!r} must be later than start {first.isoformat()!r}"
            )
        self.__attrs_init__(first, last, tz)

    def excluded_until(self, dt: datetime) -> datetime | None:
        """``end`` (in UTC) if *dt* lies in ``[start, end)``, else None."""
        require_aware(dt, "dt")
        if self.start.utcoffset() is not None:
            if to_utc(self.start) <= to_utc(dt) < to_utc(self.end):
                return to_utc(self.end)
            return None
        # naive bounds: compare wall clocks in dt's own zone
        zone = dt.tzinfo
        assert zone is not None
        wall = dt.replace(tzinfo=None)
        if self.start <= wall < self.end:
            return _span_end(self.end, zone, dt)
        return None

    def _to_state(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "timezone": _zone_key(self.timezone),
        }

    @classmethod
    def _from_state(cls, state: Mapping[str, Any], version: int) -> DateRangeCalendar:
        start, end = state["start"], state["end"]
        if not isinstance(start, str) or not isinstance(end, str):
            raise TypeError(f"start and end must be ISO 8601 strings, not {start!r}, {end!r}")
        return cls(
            datetime.fromisoformat(start),
            datetime.fromisoformat(end),
            timezone=_zone_from_key(state["timezone"]),
        )


#: Field texts that match every value, so the field does not restrict the span.
_UNRESTRICTED = {
    "minute": frozenset({"*", "*/1", "0-59", "0-59/1"}),
    "hour": frozenset({"*", "*/1", "0-23", "0-23/1"}),
}
#: How many steps (minutes, hours or days) one ``excluded_until`` call scans before it
#: returns the end reached so far (still excluded; the trigger then asks again).
_MAX_SCAN_STEPS = 10_000
_UTC = timezone.utc  # CronCalendar.__init__'s `timezone` argument hides the module
_EPOCH_1970 = datetime(1970, 1, 1, tzinfo=_UTC)


@check_kwargs
@attrs.frozen(init=False)
class CronCalendar(Calendar):
    """Excludes every minute whose wall-clock time matches a crontab expression.

    ``CronCalendar("* * 24-26 12 *")`` excludes December 24th to 26th entirely;
    ``CronCalendar("* * * * sat,sun")`` excludes weekends; ``CronCalendar("* 0-6 * * *")``
    excludes the hours from midnight to 07:00. The expression has the five crontab fields
    ``minute hour day month day_of_week`` (0 or 7 = Sunday, names allowed, day and
    day_of_week combined by cron's OR rule when both are restricted) or is a macro such
    as ``"@daily"`` (which excludes the single minute 00:00).

    Times are matched by their wall clock in ``timezone`` (or, without one, in the zone
    of the time being checked); DST plays no part in matching. An excluded span runs to
    the first minute that does not match, found in steps of a day when the minute and
    hour fields are both unrestricted (``*``), of an hour when only the minute field is,
    else of a minute. One call scans at most 10,000 steps; a longer span is reported in
    parts.

    Args:
        expr: The crontab expression.
        timezone: The zone whose wall clock is matched. Default: each checked time's own.

    Raises:
        ValueError: The expression is invalid, or has other than five fields.
        TypeError: An argument has the wrong type or an unknown name.
    """

    state_type: ClassVar[str] = "cron"

    expr: str
    timezone: tzinfo | None
    _matcher: Any = attrs.field(eq=False, repr=False)
    _step: timedelta = attrs.field(eq=False, repr=False)

    def __init__(self, expr: str, *, timezone: tzinfo | str | None = None) -> None:
        if not isinstance(expr, str):
            raise TypeError(
                f"expr must be a crontab expression string, not {type(expr).__name__} {expr!r}"
            )
        text = " ".join(expr.split())
        fields = text.split(" ")
        if not text.startswith("@") and len(fields) != 5:
            raise ValueError(
                f"CronCalendar needs a crontab expression with 5 fields (minute hour day "
                f"month day_of_week) or a macro such as '@daily'; got {len(fields)} fields "
                f"in {expr!r}"
            )
        if text.startswith("@"):
            step = timedelta(minutes=1)  # every macro names a single minute
        elif fields[0] not in _UNRESTRICTED["minute"]:
            step = timedelta(minutes=1)
        elif fields[1] not in _UNRESTRICTED["hour"]:
            step = timedelta(hours=1)
        else:
            step = timedelta(days=1)
        from horae.triggers.cron import CronTrigger

        # Matching is done on wall times relabelled as UTC, a zone without DST, so the
        # cron engine's DST rules (which decide when a wall time *fires*) cannot change
        # which wall times *match*. The explicit start keeps past times matchable.
        matcher = CronTrigger.from_crontab(text, timezone=_UTC, start_time=_EPOCH_1970)
        tz = None if timezone is None else as_timezone(timezone)
        self.__attrs_init__(text, tz, matcher, step)

    def _matches(self, wall: datetime) -> bool:
        """Whether the naive wall-clock minute *wall* matches the expression."""
        moment = wall.replace(tzinfo=_UTC)
        if moment < _EPOCH_1970:
            return False
        fire: datetime | None = self._matcher.next(moment - timedelta(microseconds=1))
        return fire == moment

    def excluded_until(self, dt: datetime) -> datetime | None:
        """The first instant after *dt* whose minute does not match, or None."""
        require_aware(dt, "dt")
        zone = self.timezone if self.timezone is not None else dt.tzinfo
        assert zone is not None
        wall = dt.astimezone(zone).replace(tzinfo=None, fold=0)
        minute = wall.replace(second=0, microsecond=0)
        if not self._matches(minute):
            return None
        # With the minute field unrestricted, a matching minute means its whole hour
        # matches (and with the hour field too, its whole day), so the scan starts at
        # the next hour (day) boundary and steps by whole hours (days).
        if self._step == timedelta(days=1):
            cursor = datetime.combine(minute.date(), time()) + self._step
        elif self._step == timedelta(hours=1):
            cursor = minute.replace(minute=0) + self._step
        else:
            cursor = minute + self._step
        try:
            for _ in range(_MAX_SCAN_STEPS):
                if not self._matches(cursor):
                    break
                cursor += self._step
        except OverflowError:
            return _END_OF_TIME
        return _span_end(cursor, zone, dt)

    def _to_state(self) -> dict[str, Any]:
        return {"expr": self.expr, "timezone": _zone_key(self.timezone)}

    @classmethod
    def _from_state(cls, state: Mapping[str, Any], version: int) -> CronCalendar:
        return cls(state["expr"], timezone=_zone_from_key(state["timezone"]))
