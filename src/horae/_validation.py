"""Argument coercion shared by triggers, calendars and the scheduler: zones, datetimes,
durations and the "did you mean ...?" check for unknown keyword arguments."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tzlocal

_C = TypeVar("_C", bound=type)


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to *name*, if any is close enough."""
    candidates = list(candidates)
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    # "minute" for "minutes" and the like: a plural or singular of a known name
    for candidate in candidates:
        if candidate.rstrip("s") == name.rstrip("s"):
            return candidate
    return None


def reject_unknown_kwargs(owner: str, given: Iterable[str], allowed: Iterable[str]) -> None:
    """Raise :exc:`TypeError` for the first keyword in *given* that is not in *allowed*.

    The message names the argument and, where one is close, the right spelling::

        IntervalTrigger() got an unexpected keyword argument 'minute'; did you mean 'minutes'?
    """
    allowed = list(allowed)
    for name in given:
        if name not in allowed:
            message = f"{owner}() got an unexpected keyword argument {name!r}"
            close = suggest(name, allowed)
            if close is not None:
                message += f"; did you mean {close!r}?"
            else:
                message += f" (accepted: {', '.join(sorted(allowed))})"
            raise TypeError(message)


@lru_cache(maxsize=1)
def local_timezone() -> tzinfo:
    """Return the machine's local zone as a real IANA zone (``ZoneInfo``).

    Falls back to UTC where the machine has no zone configured at all.
    """
    try:
        name = tzlocal.get_localzone_name()
    except Exception:  # tzlocal raises several kinds of errors on odd setups
        name = None
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def as_timezone(value: tzinfo | str | None, *, name: str = "timezone") -> tzinfo:
    """Turn *value* into a ``tzinfo``: ``None`` is the local zone, a string an IANA key."""
    if value is None:
        return local_timezone()
    if isinstance(value, str):
        if value.upper() in ("UTC", "Z"):
            return timezone.utc
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} for {name!r}; use an IANA key such as "
                f"'Europe/Berlin' or 'UTC'"
            ) from None
    if isinstance(value, (ZoneInfo, timezone)):
        return value
    if isinstance(value, tzinfo):
        # pytz and dateutil zones carry their IANA key under one of these names
        key = getattr(value, "zone", None) or getattr(value, "key", None)
        if isinstance(key, str):
            return as_timezone(key, name=name)
        raise TypeError(
            f"{name} must be a zoneinfo.ZoneInfo, an IANA key such as 'Europe/Berlin' or "
            f"datetime.timezone.utc, not {value!r}"
        )
    raise TypeError(
        f"{name} must be a zoneinfo.ZoneInfo, an IANA key such as 'Europe/Berlin' or "
        f"datetime.timezone.utc, not {type(value).__name__} {value!r}"
    )


def timezone_key(tz: tzinfo) -> str:
    """Return a string that :func:`as_timezone` turns back into *tz* (for JSON states)."""
    if isinstance(tz, ZoneInfo):
        return tz.key
    if tz is timezone.utc:
        return "UTC"
    if isinstance(tz, timezone):
        offset = tz.utcoffset(None)
        total = int(offset.total_seconds())
        sign = "-" if total < 0 else "+"
        hours, minutes = divmod(abs(total) // 60, 60)
        return f"{sign}{hours:02d}:{minutes:02d}"
    raise TypeError(f"cannot serialize the time zone {tz!r}")


def timezone_from_key(key: str) -> tzinfo:
    """The inverse of :func:`timezone_key`."""
    if key and key[0] in "+-" and ":" in key:
        sign = -1 if key[0] == "-" else 1
        hours, minutes = key[1:].split(":")
        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
    return as_timezone(key)


def as_aware_datetime(
    value: datetime | date | str, tz: tzinfo, *, name: str = "datetime"
) -> datetime:
    """Turn *value* into an aware datetime.

    Accepts a ``datetime``, a ``date`` (midnight in *tz*) or an ISO 8601 string such as
    ``"2019-06-28 18:09:00"``. Naive values are read as wall time in *tz*.
    """
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
                    f"such as '2019-06-28 18:09:00'"
                ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return value.replace(tzinfo=tz)
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=tz)
    raise TypeError(
        f"{name} must be a datetime, a date or an ISO 8601 string, not "
        f"{type(value).__name__} {value!r}"
    )


def require_aware(value: datetime, name: str = "after") -> datetime:
    """Raise ``ValueError`` (``TypeError`` for non-datetimes) unless *value* is aware."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be a timezone-aware datetime, got the naive {value!r}; attach a "
            f"zone, e.g. value.replace(tzinfo=ZoneInfo('Europe/Berlin'))"
        )
    return value


def as_timedelta(value: object, *, name: str) -> timedelta:
    """Turn seconds (int or float) or a ``timedelta`` into a ``timedelta``.

    Takes ``object`` because it is the check for what users pass in.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    raise TypeError(
        f"{name} must be a timedelta or a number of seconds, not {type(value).__name__} {value!r}"
    )


def check_kwargs(cls: _C) -> _C:
    """Class decorator: unknown keyword arguments to ``cls(...)`` raise a helpful TypeError.

    Wraps ``cls.__init__`` so that ``IntervalTrigger(minute=1)`` says *did you mean
    'minutes'?* instead of Python's bare "unexpected keyword argument".
    """
    init = cls.__init__  # type: ignore[misc]  # the class's own __init__, not an instance's
    parameters = inspect.signature(init).parameters
    allowed = frozenset(
        name
        for name, parameter in parameters.items()
        if name != "self"
        and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    )
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return cls  # a **kwargs signature does its own checking

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if not allowed.issuperset(kwargs):
            reject_unknown_kwargs(cls.__name__, kwargs, allowed)
        init(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


def current_time(tz: tzinfo) -> datetime:
    """The wall clock, read once when a trigger without ``start_time`` is constructed.

    This is the one place outside ``horae._clock`` that reads the real clock: a trigger
    records its construction time as its start, so that ``next()`` stays pure afterwards.
    The scheduler never relies on it (it always passes ``after``).
    """
    return datetime.now(tz)  # noqa: TID251
