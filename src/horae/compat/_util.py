"""Small helpers of :mod:`horae.compat`: APScheduler 3's ``undefined`` marker, its
datetime and callable-name formats, the check of job arguments against a callable's
signature, and the coercion of string configuration values."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, tzinfo
from typing import Any, Final

from horae._clock import SystemClock
from horae._marshalling import ref_to_callable
from horae._validation import as_timezone
from horae.triggers._common import as_instant

_CLOCK: Final = SystemClock()


class Undefined:
    """The type of :data:`undefined`: "not given", as opposed to ``None``."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<undefined>"


#: Marks an ``add_job`` argument that was not given, so that the scheduler's
#: ``job_defaults`` apply when the job is really added (as in APScheduler 3).
undefined: Final = Undefined()


def utc_now() -> datetime:
    """The current time (aware, UTC), from horae's system clock."""
    return _CLOCK.now()


def as_zone(value: tzinfo | str | None) -> tzinfo:
    """A scheduler or trigger time zone: a ``tzinfo``, an IANA key, or ``None`` for the
    machine's local zone (APScheduler 3 uses tzlocal the same way)."""
    return as_timezone(value)


def convert_to_datetime(
    value: datetime | date | str | None, tz: tzinfo, name: str
) -> datetime | None:
    """APScheduler 3's ``convert_to_datetime``: ``None`` stays ``None``; a ``datetime``,
    a ``date`` (midnight) or a string such as ``"2019-06-28 18:09:00"`` becomes an aware
    datetime, naive values being read in *tz* (by horae's DST rules)."""
    if value is None:
        return None
    return as_instant(value, tz, name=name)


def datetime_repr(value: datetime | None) -> str:
    """APScheduler 3's way of showing a datetime: ``2019-06-28 18:09:00 CST``."""
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if value else "None"


def get_callable_name(func: Callable[..., Any]) -> str:
    """The display name APScheduler 3 gives a job by default (its callable's name).

    Raises:
        TypeError: *func* is not callable.
    """
    if inspect.ismethod(func):
        owner = func.__self__
        cls = owner if inspect.isclass(owner) else type(owner)
        return f"{cls.__qualname__}.{func.__name__}"
    if inspect.isclass(func) or inspect.isfunction(func) or inspect.isbuiltin(func):
        return str(func.__qualname__)
    if callable(func):
        return type(func).__qualname__
    raise TypeError(f"Unable to determine a name for {func!r} -- maybe it is not a callable?")


def check_callable_args(
    func: Callable[..., Any], args: Iterable[Any], kwargs: Mapping[str, Any]
) -> None:
    """Raise ``ValueError`` when ``func(*args, **kwargs)`` could not bind, as APScheduler 3
    does when a job is added (not when it first runs)."""
    try:
        signature = inspect.signature(func, follow_wrapped=False)
    except (TypeError, ValueError):
        return  # some builtins have no signature; they will fail when called instead
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ValueError(
            f"the job's arguments do not fit {get_callable_name(func)}{signature}: {exc}; "
            f"fix args=/kwargs="
        ) from None


def resolve_ref(value: Any) -> Any:
    """APScheduler 3's ``maybe_ref``: a ``"module:name"`` string is imported, anything
    else is returned as it is."""
    if isinstance(value, str):
        return ref_to_callable(value)
    return value


_TRUE = frozenset({"true", "yes", "on", "y", "t", "1"})
_FALSE = frozenset({"false", "no", "off", "n", "f", "0"})


def as_bool(value: object) -> bool:
    """A configuration value as a bool (``"false"``, ``"no"``, ``"0"``... are false)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"unable to interpret {value!r} as a boolean (use true or false)")
    return bool(value)


def as_int(value: object) -> int | None:
    """A configuration value as an int (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"expected an int or a numeric string, not {type(value).__name__} {value!r}")
