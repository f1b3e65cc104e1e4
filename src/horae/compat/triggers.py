"""APScheduler 3's trigger classes, each a view of the horae trigger that does the work.

``CronTrigger``, ``IntervalTrigger`` and ``DateTrigger`` take APScheduler 3's arguments
and keep its rules: weekday 0 is Monday (also in ``CronTrigger.from_crontab``, unlike
horae's own crontab parser), ``CronTrigger()`` with no field fires every second, an
interval of zero is one second, ``jitter`` is a number of seconds. The fire times come
from the horae trigger in :attr:`BaseTrigger.horae_trigger`; ``str()`` gives APScheduler
3's text (``cron[hour='*/2', minute='1']``), which ``print_jobs`` shows.

:func:`create_trigger` is what ``add_job(func, trigger, **trigger_args)`` uses: trigger
kinds go through horae's shorthand (so a misspelt argument raises horae's ``TypeError``
with its "did you mean" hint), trigger objects (these classes or horae's own) are used as
they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from horae._validation import check_kwargs
from horae.triggers import CronTrigger as _HoraeCron
from horae.triggers import DateTrigger as _HoraeDate
from horae.triggers import IntervalTrigger as _HoraeInterval
from horae.triggers import Trigger
from horae.triggers._shorthand import build_trigger

from ._util import as_zone, datetime_repr

__all__ = ("BaseTrigger", "CronTrigger", "DateTrigger", "IntervalTrigger")

_CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
_INTERVAL_UNITS = ("weeks", "days", "hours", "minutes", "seconds", "microseconds")
_ONE_MICROSECOND = timedelta(microseconds=1)
_AnyDate = datetime | date | str | None


def first_fire_time(trigger: Trigger, now: datetime) -> datetime | None:
    """APScheduler 3's ``get_next_fire_time(None, now)`` on a horae trigger: its first
    fire time at or after *now* (never before its own first one)."""
    first = trigger.next(None)
    if first is None or first >= now:
        return first
    return trigger.next(now - _ONE_MICROSECOND)


def _aps3_zone(timezone: tzinfo | str | None, start: object, end: object) -> tzinfo:
    # APScheduler 3's order: the timezone argument, the zone of an aware start_date,
    # that of an aware end_date, the local zone.
    if timezone is not None:
        return as_zone(timezone)
    for value in (start, end):
        if isinstance(value, datetime) and value.tzinfo is not None:
            return as_zone(value.tzinfo)
    return as_zone(None)


def _jitter_seconds(jitter: timedelta | float | None) -> float | None:
    if jitter is None:
        return None
    seconds = jitter.total_seconds() if isinstance(jitter, timedelta) else float(jitter)
    return int(seconds) if seconds == int(seconds) else seconds


def _field_text(value: object) -> str:
    # APScheduler 3 shows each field as its compiled expressions: names in lower case,
    # list items joined by bare commas.
    return ",".join(part.strip() for part in str(value).lower().split(","))


def _cron_text(fields: Mapping[str, object]) -> str:
    shown = [f"{name}='{_field_text(fields[name])}'" for name in _CRON_FIELDS if name in fields]
    return f"cron[{', '.join(shown)}]"


class BaseTrigger:
    """An APScheduler 3 style trigger in front of a horae trigger.

    Used as it is for horae trigger kinds that APScheduler 3 lacks (calendar intervals,
    combinations); ``str()`` is then the horae trigger's text.

    Attributes:
        horae_trigger: the horae trigger that computes the fire times.
        jitter: the most seconds a run may be delayed at random (``None``: no jitter).
    """

    __slots__ = ("_text", "horae_trigger", "jitter")

    horae_trigger: Trigger
    jitter: float | None

    def __init__(self, horae_trigger: Trigger, *, jitter: float | None = None) -> None:
        self._setup(horae_trigger, jitter, None)

    def _setup(self, trigger: Trigger, jitter: float | None, text: str | None) -> None:
        self.horae_trigger = trigger
        self.jitter = _jitter_seconds(jitter)
        self._text = text

    @classmethod
    def _view(cls, trigger: Trigger, jitter: float | None, text: str | None) -> BaseTrigger:
        view = cls.__new__(cls)
        view._setup(trigger, jitter, text)
        return view

    @property
    def max_jitter(self) -> timedelta | None:
        """``jitter`` as the schedule's ``max_jitter``."""
        return None if not self.jitter else timedelta(seconds=self.jitter)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The next fire time after *previous_fire_time*, or (when that is ``None``) the
        first one at or after *now*, as APScheduler 3 computes it (without jitter)."""
        if previous_fire_time is None:
            return first_fire_time(self.horae_trigger, now)
        return self.horae_trigger.next(previous_fire_time)

    def anchored_at(self, run_time: datetime) -> Trigger:
        """The horae trigger to store for a job whose next run is set to *run_time*
        (``next_run_time=``); APScheduler 3 counts later runs from it for some kinds."""
        return self.horae_trigger

    def __str__(self) -> str:
        return self._text if self._text is not None else str(self.horae_trigger)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({self}, horae: {self.horae_trigger!r})>"


@check_kwargs
class CronTrigger(BaseTrigger):
    """Fires when the current time matches all given fields (APScheduler 3 semantics).

    Args:
        year: 4-digit year.
        month: month (1-12 or ``jan``-``dec``).
        day: day of the month (1-31, ``last``, ...).
        week: ISO week (1-53).
        day_of_week: weekday, 0-6 or ``mon``-``sun``; **0 is Monday**.
        hour: hour (0-23).
        minute: minute (0-59).
        second: second (0-59).
        start_date: earliest possible fire time (inclusive).
        end_date: latest possible fire time (inclusive).
        timezone: zone of the fields (default: of an aware ``start_date``/``end_date``,
            else local; the scheduler passes its own for ``add_job(..., "cron")``).
        jitter: delay each run by up to this many seconds, at random.

    Fields more significant than the least significant given one default to ``*``, the
    others to their minimum; with no field at all it fires every second.
    """

    __slots__ = ()

    def __init__(
        self,
        year: int | str | None = None,
        month: int | str | None = None,
        day: int | str | None = None,
        week: int | str | None = None,
        day_of_week: int | str | None = None,
        hour: int | str | None = None,
        minute: int | str | None = None,
        second: int | str | None = None,
        start_date: _AnyDate = None,
        end_date: _AnyDate = None,
        timezone: tzinfo | str | None = None,
        jitter: float | None = None,
    ) -> None:
        given = dict(
            zip(
                _CRON_FIELDS,
                (year, month, day, week, day_of_week, hour, minute, second),
                strict=True,
            )
        )
        fields: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        trigger = _HoraeCron(
            **(fields or {"second": "*"}),
            start_time=start_date,
            end_time=end_date,
            timezone=_aps3_zone(timezone, start_date, end_date),
        )
        self._setup(trigger, jitter, _cron_text(fields))

    @classmethod
    def from_crontab(cls, expr: str, timezone: tzinfo | str | None = None) -> CronTrigger:
        """Make a trigger from 5 crontab fields, ``minute hour day month day_of_week``.

        As in APScheduler 3 (and unlike :meth:`horae.triggers.CronTrigger.from_crontab`)
        the weekday numbers are the keyword form's: 0 is Monday.

        Raises:
            ValueError: the expression does not have 5 fields.
        """
        values = expr.split()
        if len(values) != 5:
            raise ValueError(f"Wrong number of fields; got {len(values)}, expected 5")
        return cls(
            minute=values[0],
            hour=values[1],
            day=values[2],
            month=values[3],
            day_of_week=values[4],
            timezone=timezone,
        )

    def _cron(self) -> _HoraeCron:
        assert isinstance(self.horae_trigger, _HoraeCron)
        return self.horae_trigger

    @property
    def timezone(self) -> tzinfo:
        """The zone the fields are matched in."""
        return self._cron().timezone

    @property
    def start_date(self) -> datetime | None:
        """The earliest possible fire time."""
        return self._cron().start_time

    @property
    def end_date(self) -> datetime | None:
        """The latest possible fire time."""
        return self._cron().end_time


@check_kwargs
class IntervalTrigger(BaseTrigger):
    """Fires every ``interval``, from ``start_date`` (default: one interval from now).

    Args:
        weeks: number of weeks to wait.
        days: number of days to wait.
        hours: number of hours to wait.
        minutes: number of minutes to wait.
        seconds: number of seconds to wait.
        start_date: the first fire time.
        end_date: latest possible fire time.
        timezone: zone for naive dates (default: of an aware date, else local).
        jitter: delay each run by up to this many seconds, at random.

    As in APScheduler 3, an interval of zero means one second.
    """

    __slots__ = ()

    def __init__(
        self,
        weeks: float = 0,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        start_date: _AnyDate = None,
        end_date: _AnyDate = None,
        timezone: tzinfo | str | None = None,
        jitter: float | None = None,
    ) -> None:
        if not any((weeks, days, hours, minutes, seconds)):
            seconds = 1
        trigger = _HoraeInterval(
            weeks=weeks,
            days=days,
            hours=hours,
            minutes=minutes,
            seconds=seconds,
            start_time=start_date,
            end_time=end_date,
            timezone=_aps3_zone(timezone, start_date, end_date),
        )
        self._setup(trigger, jitter, None)

    def _interval(self) -> _HoraeInterval:
        assert isinstance(self.horae_trigger, _HoraeInterval)
        return self.horae_trigger

    @property
    def interval(self) -> timedelta:
        """The interval."""
        return self._interval().interval

    @property
    def interval_length(self) -> float:
        """The interval in seconds."""
        return self.interval.total_seconds()

    @property
    def start_date(self) -> datetime:
        """The first fire time."""
        return self._interval().start_time

    @property
    def end_date(self) -> datetime | None:
        """The latest possible fire time."""
        return self._interval().end_time

    @property
    def timezone(self) -> tzinfo:
        """The zone of the fire times."""
        return self._interval().timezone

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """APScheduler 3 counts each interval from the previous fire time."""
        if previous_fire_time is None:
            return first_fire_time(self.horae_trigger, now)
        following = previous_fire_time + self.interval
        end = self.end_date
        return following if end is None or following <= end else None

    def anchored_at(self, run_time: datetime) -> Trigger:
        """The same interval counted from *run_time* (as APScheduler 3 counts it after a
        ``next_run_time``), unless that lies past ``end_date``."""
        trigger = self._interval()
        try:
            return _HoraeInterval(
                weeks=trigger.weeks,
                days=trigger.days,
                hours=trigger.hours,
                minutes=trigger.minutes,
                seconds=trigger.seconds,
                microseconds=trigger.microseconds,
                start_time=run_time,
                end_time=trigger.end_time,
                timezone=trigger.timezone,
                exclude=trigger.exclude,
            )
        except ValueError:
            return trigger

    def __str__(self) -> str:
        return f"interval[{self.interval}]"


@check_kwargs
class DateTrigger(BaseTrigger):
    """Fires once, at ``run_date`` (now, if it is ``None``).

    Args:
        run_date: when to run.
        timezone: zone of a naive ``run_date`` (default: local).
    """

    __slots__ = ()

    def __init__(self, run_date: _AnyDate = None, timezone: tzinfo | str | None = None) -> None:
        # An aware run_date keeps its own zone (the timezone is for naive ones), as in
        # APScheduler 3.
        aware = isinstance(run_date, datetime) and run_date.utcoffset() is not None
        zone = None if aware else as_zone(timezone)
        self._setup(_HoraeDate(run_date, timezone=zone), None, None)

    @property
    def run_date(self) -> datetime:
        """When the trigger fires."""
        assert isinstance(self.horae_trigger, _HoraeDate)
        return self.horae_trigger.run_time

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """``run_date`` (even when past) until it has fired, then ``None``."""
        return self.run_date if previous_fire_time is None else None

    def anchored_at(self, run_time: datetime) -> Trigger:
        """A date trigger for *run_time*: the job runs then, and only then."""
        if run_time == self.run_date:
            return self.horae_trigger
        assert isinstance(self.horae_trigger, _HoraeDate)
        return _HoraeDate(run_time, timezone=self.horae_trigger.timezone)

    def __str__(self) -> str:
        return f"date[{datetime_repr(self.run_date)}]"


def view_of(trigger: Trigger, jitter: timedelta | None, text: str | None = None) -> BaseTrigger:
    """The APScheduler 3 view of a stored horae *trigger* (``text``: the cron text saved
    when the job was added, so that ``str()`` shows the fields as they were given)."""
    seconds = _jitter_seconds(jitter)
    if isinstance(trigger, _HoraeCron):
        if text is None:
            text = _cron_text({k: v for k, v in trigger.fields.items() if v != "*"})
        return CronTrigger._view(trigger, seconds, text)
    if isinstance(trigger, _HoraeInterval):
        return IntervalTrigger._view(trigger, seconds, None)
    if isinstance(trigger, _HoraeDate):
        return DateTrigger._view(trigger, seconds, None)
    return BaseTrigger._view(trigger, seconds, None)


def create_trigger(
    trigger: object, trigger_args: Mapping[str, Any], timezone: tzinfo
) -> BaseTrigger:
    """Build what ``add_job(func, trigger, **trigger_args)`` means, in *timezone* unless
    the arguments give one.

    Raises:
        TypeError: a misspelt or unknown argument (horae's message, with its "did you
            mean" hint), arguments next to a trigger object, or a trigger of the wrong
            type (including one from the ``apscheduler`` package).
        ValueError: an unknown trigger kind or a bad argument value.
    """
    if trigger is None:
        trigger = "date"  # APScheduler 3: no trigger means "run once, now"
    if isinstance(trigger, BaseTrigger):
        if trigger_args:
            raise TypeError(
                f"trigger arguments ({', '.join(map(repr, trigger_args))}) cannot be combined "
                f"with a trigger object ({type(trigger).__name__}); pass them to its "
                f"constructor instead"
            )
        return trigger
    if isinstance(trigger, Trigger):
        spec = build_trigger(trigger, trigger_args)
        return view_of(spec.trigger, spec.max_jitter)
    if not isinstance(trigger, str):
        if type(trigger).__module__.startswith("apscheduler."):
            raise TypeError(
                f"the trigger {trigger!r} comes from the apscheduler package; import "
                f"{type(trigger).__name__} from horae.compat.triggers instead"
            )
        raise TypeError(
            f"Expected a trigger instance or string, got {type(trigger).__name__} instead"
        )
    args = dict(trigger_args)
    kind = trigger.strip()
    if kind == "interval" and not any(args.get(unit) for unit in _INTERVAL_UNITS):
        args["seconds"] = 1  # APScheduler 3: a zero interval means one second
    given_fields = {name: args[name] for name in _CRON_FIELDS if args.get(name) is not None}
    if kind == "cron" and not given_fields:
        args["second"] = "*"  # APScheduler 3: CronTrigger() fires every second
    spec = build_trigger(kind, args, timezone=timezone)
    text = _cron_text(given_fields) if kind == "cron" else None
    return view_of(spec.trigger, spec.max_jitter, text)
