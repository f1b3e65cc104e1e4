"""DateTrigger: fires once, at a given time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from typing import Any, ClassVar

import attrs

from horae._validation import (
    check_kwargs,
    current_time,
    timezone_from_key,
    timezone_key,
)
from horae._wallclock import to_utc
from horae.calendars import Calendar

from ._base import Trigger
from ._common import as_instant, check_exclude, format_datetime, parse_datetime, utc_key, zone_of


@check_kwargs
@attrs.frozen(init=False)
class DateTrigger(Trigger):
    """Fires once, at ``run_time``.

    ``next(None)`` is ``run_time``; ``next(t)`` is ``run_time`` while ``t`` is earlier
    than it, and ``None`` (exhausted) from then on. If ``exclude`` excludes
    ``run_time``, the trigger never fires.

    Args:
        run_time: When to fire: a ``datetime``, a ``date`` (midnight) or an ISO 8601
            string. Naive values are wall times in ``timezone``: one inside a DST gap
            means the first instant after the gap, a repeated one its first occurrence.
            ``None`` means now, read once when the trigger is made.
        timezone: The zone of a naive ``run_time`` and of the result. Default: the zone of
            an aware ``run_time``, else the machine's local zone.
        exclude: A :class:`~horae.calendars.Calendar` of times to skip.

    Raises:
        TypeError: An argument has the wrong type or an unknown name.
        ValueError: ``run_time`` is not a valid ISO 8601 string, or the zone is unknown.
    """

    state_type: ClassVar[str] = "date"

    run_time: datetime = attrs.field(eq=utc_key)
    timezone: tzinfo
    exclude: Calendar | None

    def __init__(
        self,
        run_time: datetime | date | str | None = None,
        *,
        timezone: tzinfo | str | None = None,
        exclude: Calendar | None = None,
    ) -> None:
        tz = zone_of(run_time, timezone)
        when = current_time(tz) if run_time is None else as_instant(run_time, tz, name="run_time")
        check_exclude(exclude)
        self.__attrs_init__(when, tz, exclude)

    def _next(self, after: datetime | None) -> datetime | None:
        if after is None or to_utc(after) < to_utc(self.run_time):
            return self.run_time
        return None

    def __str__(self) -> str:
        return f"date[{self.run_time.isoformat()}]"

    def describe(self) -> str:
        """An English sentence, e.g. ``"Once, at 2019-06-28T18:09:00+02:00"``."""
        return f"Once, at {self.run_time.isoformat()}"

    def _to_state(self) -> dict[str, Any]:
        return {
            "run_time": format_datetime(self.run_time),
            "timezone": timezone_key(self.timezone),
        }

    @classmethod
    def _from_state(
        cls, state: Mapping[str, Any], version: int, exclude: Calendar | None
    ) -> DateTrigger:
        tz = timezone_from_key(state["timezone"])
        return cls(parse_datetime(state["run_time"], tz), timezone=tz, exclude=exclude)
