"""Helpers the built-in trigger modules share: zone defaults, state datetimes, checks."""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from horae._validation import as_aware_datetime, as_timezone
from horae._wallclock import resolve_wall_time, to_utc
from horae.calendars import Calendar


def zone_of(value: object, timezone: tzinfo | str | None) -> tzinfo:
    """The trigger's zone: *timezone* if given, else the zone of *value* when it is an
    aware datetime, else the machine's local zone."""
    if timezone is None and isinstance(value, datetime) and value.utcoffset() is not None:
        assert value.tzinfo is not None
        return as_timezone(value.tzinfo)
    return as_timezone(timezone)


def as_instant(value: datetime | date | str, tz: tzinfo, *, name: str) -> datetime:
    """Turn a datetime argument into an aware datetime in *tz*, at a real instant.

    Aware values keep their instant. Naive values (and dates, meaning midnight) are wall
    times in *tz*, read by the same DST rules as cron: a wall time in a gap means the
    first instant after the gap, a repeated one its first occurrence (unless the naive
    value says ``fold=1``).
    """
    parsed = as_aware_datetime(value, tz, name=name)
    if _is_aware_input(value):
        return to_utc(parsed).astimezone(tz)
    wall = parsed.replace(tzinfo=None)
    if wall.fold:
        return to_utc(parsed).astimezone(tz)
    return resolve_wall_time(wall, tz)


def _is_aware_input(value: object) -> bool:
    if isinstance(value, datetime):
        return value.utcoffset() is not None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            return True
        try:
            return datetime.fromisoformat(text).utcoffset() is not None
        except ValueError:
            return False  # a plain date, already validated by as_aware_datetime
    return False


def utc_key(value: datetime | None) -> datetime | None:
    """Equality/hash key for datetime fields: the instant in UTC.

    Python compares two datetimes that share a ``tzinfo`` by wall time and ignores
    ``fold``, so 02:30 CEST and 02:30 CET on a fall-back day would compare equal.
    """
    return None if value is None else to_utc(value)


def format_datetime(value: datetime | None) -> str | None:
    """ISO 8601 with the UTC offset, so the state pins the instant (and a DST fold)."""
    return None if value is None else value.isoformat()


def parse_datetime(value: str, tz: tzinfo) -> datetime:
    """Read back a :func:`format_datetime` string as an aware datetime in *tz*."""
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, not {type(value).__name__} {value!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.utcoffset() is None:
        raise ValueError(f"stored datetime {value!r} has no UTC offset")
    return parsed.astimezone(tz)


def parse_optional_datetime(value: str | None, tz: tzinfo) -> datetime | None:
    """:func:`parse_datetime`, letting ``None`` through."""
    return None if value is None else parse_datetime(value, tz)


def check_exclude(exclude: object) -> None:
    """Raise :exc:`TypeError` unless *exclude* is a Calendar or ``None``."""
    if exclude is not None and not isinstance(exclude, Calendar):
        raise TypeError(
            f"exclude must be a horae.calendars.Calendar or None, not "
            f"{type(exclude).__name__} {exclude!r}"
        )
