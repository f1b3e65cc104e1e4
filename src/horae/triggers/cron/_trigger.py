"""CronTrigger: the public value object. Parsing lives in ``_parser``/``_fields``, the
search in ``_engine``, the English in ``_describe``; this module ties them together and
owns the arguments, equality, ``str``/``repr`` and the stored state."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, ClassVar, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import attrs

from horae._validation import (
    check_kwargs,
    current_time,
    reject_unknown_kwargs,
    timezone_from_key,
    timezone_key,
)
from horae._wallclock import to_utc
from horae.calendars import Calendar
from horae.triggers._base import Trigger
from horae.triggers._common import (
    as_instant,
    check_exclude,
    format_datetime,
    parse_datetime,
    parse_optional_datetime,
    utc_key,
    zone_of,
)

from ._describe import crontab_text, describe_fields
from ._engine import Plan, compile_plan, next_fire
from ._fields import (
    CRONTAB_SPECS,
    FIELD_NAMES,
    KEYWORD_SPECS,
    canonical,
    normalize,
    parse_field,
)
from ._parser import crontab_fields, keyword_fields
from ._zones import ZoneTable, zone_table

_P = ParamSpec("_P")
_R = TypeVar("_R")
_ONE_MICROSECOND = timedelta(microseconds=1)
_SYNTAXES = ("keyword", "crontab")


def _suggest_keywords(owner: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Unknown keyword arguments raise a TypeError that suggests the right spelling."""

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        parameters = inspect.signature(func).parameters.values()
        allowed = frozenset(p.name for p in parameters if p.kind is p.KEYWORD_ONLY)

        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            if not allowed.issuperset(kwargs):
                reject_unknown_kwargs(owner, kwargs, allowed)
            return func(*args, **kwargs)

        return wrapper

    return decorate


@check_kwargs
@attrs.frozen(init=False, repr=False)
class CronTrigger(Trigger):
    """Fires at the times that match cron-style fields, in one time zone.

    Two ways to make one: the keyword form, as in APScheduler
    (``CronTrigger(hour="*/2", minute=1)``, weekday 0 = Monday, the day fields ANDed),
    and crontab strings (``CronTrigger.from_crontab("1 */2 * * *")``, weekday 0 or 7 =
    Sunday, cron's OR rule for the day fields).

    Each field accepts ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n``, ``a/n`` and lists of
    these; month and weekday names (any case); in ``day`` also ``L``/``last``, ``L-n``,
    ``nW``, ``LW`` (and ``xth y``/``last y``, as in APScheduler 3); in ``day_of_week``
    also ``xth y``/``y#x`` and ``last y``/``yL``; ``?`` is ``*`` in both day fields.

    Fields left out of the keyword form: those more significant than the least
    significant field given are ``*``; less significant ones take their minimum (``week``
    and ``day_of_week``: ``*``). No field at all means every minute at second 0.

    Daylight saving time follows Debian cron: when the minute or hour field starts with
    ``*`` the schedule runs on elapsed time (a skipped wall time does not fire, a
    repeated one fires twice); otherwise each matching wall time fires once, at the
    first instant after a gap or at the first of two occurrences.

    Args:
        year: 1970-9999.
        month: 1-12 or ``jan``-``dec``.
        day: Day of the month, 1-31.
        week: ISO week of the year, 1-53.
        day_of_week: 0-6 or ``mon``-``sun`` (0 = Monday).
        hour: 0-23.
        minute: 0-59.
        second: 0-59.
        start_time: The earliest fire time (a ``datetime``, a ``date`` meaning midnight,
            or an ISO 8601 string; naive values are wall times in ``timezone``).
        end_time: The latest fire time (inclusive), in the same forms.
        timezone: A ``zoneinfo.ZoneInfo``, an IANA key or ``datetime.timezone.utc``.
            Default: the zone of an aware ``start_time``, else the machine's local zone.
        exclude: A :class:`~horae.calendars.Calendar` of times to skip.

    ``next(None)`` is the first fire time at or after ``start_time``; without one, at
    or after the moment the trigger was made (recorded then, so that ``next`` stays
    pure; that moment is not part of the value, so equal fields mean equal triggers).

    Raises:
        ValueError: A field is invalid (the message names the field, the text and the
            allowed values), can never match, or ``end_time`` is before ``start_time``.
        TypeError: An argument has the wrong type or an unknown name.
    """

    state_type: ClassVar[str] = "cron"

    year: str
    month: str
    day: str
    week: str
    day_of_week: str
    hour: str
    minute: str
    second: str
    start_time: datetime | None = attrs.field(eq=utc_key)
    end_time: datetime | None = attrs.field(eq=utc_key)
    timezone: tzinfo
    exclude: Calendar | None
    _syntax: str
    _created_time: datetime = attrs.field(eq=False)
    _plan: Plan = attrs.field(eq=False)
    _table: ZoneTable | None = attrs.field(eq=False)
    _first_after: datetime = attrs.field(eq=False)
    _start_utc: datetime | None = attrs.field(eq=False)
    _end_utc: datetime | None = attrs.field(eq=False)

    def __init__(
        self,
        year: str | int | None = None,
        month: str | int | None = None,
        day: str | int | None = None,
        week: str | int | None = None,
        day_of_week: str | int | None = None,
        hour: str | int | None = None,
        minute: str | int | None = None,
        second: str | int | None = None,
        *,
        start_time: datetime | date | str | None = None,
        end_time: datetime | date | str | None = None,
        timezone: tzinfo | str | None = None,
        exclude: Calendar | None = None,
    ) -> None:
        values = (year, month, day, week, day_of_week, hour, minute, second)
        fields = keyword_fields(dict(zip(FIELD_NAMES, values, strict=True)))
        self._setup(fields, "keyword", start_time, end_time, timezone, exclude, None)

    @classmethod
    @_suggest_keywords("CronTrigger.from_crontab")
    def from_crontab(
        cls,
        expr: str,
        *,
        timezone: tzinfo | str | None = None,
        start_time: datetime | date | str | None = None,
        end_time: datetime | date | str | None = None,
        seed: str | None = None,
        exclude: Calendar | None = None,
    ) -> CronTrigger:
        """Make a trigger from a crontab expression.

        Args:
            expr: 5 fields ``minute hour day month day_of_week`` (weekday 0 or 7 =
                Sunday), 6 (a leading ``second``) or 7 (and a trailing ``year``), or one
                of ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.
                ``H``, ``H(a-b)``, ``H/n`` and ``H(a-b)/n`` pick a stable value from
                *seed*, so that many ``H * * * *`` schedules spread over the hour.
                When both day fields are restricted (neither starts with ``*``), a day
                matches if either matches (cron's OR rule).
            timezone: As for :class:`CronTrigger`.
            start_time: As for :class:`CronTrigger`.
            end_time: As for :class:`CronTrigger`.
            seed: What ``H`` hashes, normally the schedule id. Required with ``H``.
            exclude: A :class:`~horae.calendars.Calendar` of times to skip.

        Raises:
            ValueError: The expression is invalid (wrong field count, unknown macro, a
                bad field), or it uses ``H`` without a seed.
        """
        trigger = cls.__new__(cls)
        fields = crontab_fields(expr, seed)
        trigger._setup(fields, "crontab", start_time, end_time, timezone, exclude, None)
        return trigger

    def _setup(
        self,
        fields: Mapping[str, str],
        syntax: str,
        start_time: datetime | date | str | None,
        end_time: datetime | date | str | None,
        timezone: tzinfo | str | None,
        exclude: Calendar | None,
        created_time: datetime | None,
    ) -> None:
        tz = zone_of(start_time, timezone)
        if isinstance(tz, ZoneInfo) and tz.key == "UTC":
            tz = _UTC  # one UTC, so that the stored state reads back as an equal trigger
        start = None if start_time is None else as_instant(start_time, tz, name="start_time")
        end = None if end_time is None else as_instant(end_time, tz, name="end_time")
        if start is not None and end is not None and to_utc(end) < to_utc(start):
            raise ValueError(
                f"end_time {end.isoformat()!r} is earlier than start_time "
                f"{start.isoformat()!r}; the trigger would never fire"
            )
        check_exclude(exclude)
        plan = compile_plan(tuple(fields.items()), syntax == "crontab")
        created = current_time(tz) if created_time is None else created_time
        first = to_utc(created if start is None else start) - _ONE_MICROSECOND
        self.__attrs_init__(
            fields["year"],
            fields["month"],
            fields["day"],
            fields["week"],
            fields["day_of_week"],
            fields["hour"],
            fields["minute"],
            fields["second"],
            start,
            end,
            tz,
            exclude,
            syntax,
            created,
            plan,
            zone_table(tz),
            first,
            None if start is None else to_utc(start),
            None if end is None else to_utc(end),
        )

    def next(self, after: datetime | None = None) -> datetime | None:
        """Return the earliest fire time strictly later than *after* (the first if None).

        See :meth:`Trigger.next`.
        """
        # The scheduler's usual call passes the previous fire time: a plain datetime that
        # is already aware and in this zone. Skip the generic checks for it; anything
        # else (naive, another zone, a subclass, exclusions) takes the validated path.
        if self.exclude is None and (
            after is None or (type(after) is datetime and after.tzinfo is self.timezone)
        ):
            return self._next(after)
        return super().next(after)

    def _next(self, after: datetime | None) -> datetime | None:
        if after is None or (self._start_utc is not None and after < self._start_utc):
            after = self._first_after
        tz = self.timezone
        if after.tzinfo is not tz:
            try:
                after = after.astimezone(tz)
            except OverflowError:  # within a day of datetime.min or datetime.max
                if after.year > 1:
                    return None
                after = _BEFORE_ALL.astimezone(tz)
        fire = next_fire(self._plan, self._table, after)
        if fire is None or (self._end_utc is not None and fire > self._end_utc):
            return None
        return fire

    @property
    def fields(self) -> dict[str, str]:
        """The eight fields by name, most significant first (``"*"`` when unrestricted)."""
        return {name: getattr(self, name) for name in FIELD_NAMES}

    def __str__(self) -> str:
        """A crontab-like form, for reading (``0 1 */2 * * *``).

        Crontab-made triggers show their expression (macros and ``H`` resolved).
        Keyword-made ones show ``second minute hour day month day_of_week [year]`` with
        weekday names (so that 0 = Monday cannot be misread), and ``week=...`` when the
        week is restricted; note that their day fields are ANDed.
        """
        return crontab_text(self.fields, self._syntax == "crontab")

    def __repr__(self) -> str:
        if self._syntax == "crontab":
            args = [repr(str(self))]
        else:
            args = [
                f"{name}={text!r}"
                for name, text in self.fields.items()
                if text != "*" or name == "second"
            ]
        try:
            args.append(f"timezone={timezone_key(self.timezone)!r}")
        except TypeError:
            args.append(f"timezone={self.timezone!r}")
        for name in ("start_time", "end_time"):
            value = getattr(self, name)
            if value is not None:
                args.append(f"{name}={value.isoformat()!r}")
        if self.exclude is not None:
            args.append(f"exclude={self.exclude!r}")
        owner = "CronTrigger.from_crontab" if self._syntax == "crontab" else "CronTrigger"
        return f"{owner}({', '.join(args)})"

    def describe(self) -> str:
        """An English sentence, e.g. ``"At minute 1 past every 2nd hour"``."""
        return describe_fields(self.fields, self._syntax == "crontab")

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle and copy rebuild the compiled plan instead of carrying it around
        arguments = (
            self.fields,
            self._syntax,
            self.start_time,
            self.end_time,
            self.timezone,
            self.exclude,
            self._created_time,
        )
        return (_rebuild, arguments)

    def _to_state(self) -> dict[str, Any]:
        return {
            "syntax": self._syntax,
            "fields": self.fields,
            "timezone": timezone_key(self.timezone),
            "start_time": format_datetime(self.start_time),
            "end_time": format_datetime(self.end_time),
            "created_time": format_datetime(self._created_time),
        }

    @classmethod
    def _from_state(
        cls, state: Mapping[str, Any], version: int, exclude: Calendar | None
    ) -> CronTrigger:
        syntax = state["syntax"]
        if syntax not in _SYNTAXES:
            raise ValueError(f"unknown cron syntax {syntax!r} (known: {', '.join(_SYNTAXES)})")
        texts = tuple(state["fields"][name] for name in FIELD_NAMES)
        if all(type(text) is str for text in texts):
            # Stores hand back the same few field sets over and over (every schedule
            # carries its own created_time, so whole states rarely repeat).
            fields = dict(_checked_fields(syntax, texts))
        else:
            fields = dict(_check_fields(syntax, texts))
        tz = timezone_from_key(state["timezone"])
        created = state.get("created_time")
        return _rebuild(
            fields,
            syntax,
            parse_optional_datetime(state["start_time"], tz),
            parse_optional_datetime(state["end_time"], tz),
            tz,
            exclude,
            None if created is None else parse_datetime(created, tz),
        )


def _check_fields(syntax: str, texts: tuple[object, ...]) -> tuple[tuple[str, str], ...]:
    """Validate stored field texts (in FIELD_NAMES order); their canonical forms."""
    specs = CRONTAB_SPECS if syntax == "crontab" else KEYWORD_SPECS
    checked = []
    for name, value in zip(FIELD_NAMES, texts, strict=True):
        text = normalize(value, name)
        parse_field(specs[name], text)
        checked.append((name, canonical(specs[name], text)))
    return tuple(checked)


#: :func:`_check_fields` for str texts, remembered (invalid ones raise every time).
_checked_fields = functools.lru_cache(maxsize=1024)(_check_fields)

_UTC = timezone.utc
#: Earlier than any fire time (years start at 1970), in every zone.
_BEFORE_ALL = datetime(1969, 12, 30, tzinfo=_UTC)


def _rebuild(
    fields: Mapping[str, str],
    syntax: str,
    start_time: datetime | None,
    end_time: datetime | None,
    timezone: tzinfo,
    exclude: Calendar | None,
    created_time: datetime | None,
) -> CronTrigger:
    """Make a trigger from already-canonical fields (for pickle, copy and stored state)."""
    trigger = CronTrigger.__new__(CronTrigger)
    trigger._setup(fields, syntax, start_time, end_time, timezone, exclude, created_time)
    return trigger
