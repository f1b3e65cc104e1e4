"""Where a zone's wall clock jumps: per zone and year, the spans of wall times that an
offset change (DST or otherwise) skips or repeats.

With these spans known, the engine applies the DST rules by comparing wall-time tuples
instead of asking ``zoneinfo`` about every candidate (a ``fold=1`` probe costs more than a
whole cron step). ``zoneinfo`` has no public list of transitions, so each year is scanned
once per zone: the UTC offset is sampled once a day and every change is narrowed down
to the exact second by bisection. This finds every transition provided that no two fall
within a day of each other; in tzdata the closest pair ever is four days apart
(Africa/Freetown, 1939), and rule-based DST changes are months apart.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import NamedTuple

#: A wall-clock time as (year, month, day, hour, minute, second).
Wall = tuple[int, int, int, int, int, int]

_STEP_SECONDS = 86_400
_MARGIN = timedelta(days=3)
_UTC = timezone.utc
_FIRST = datetime(1, 1, 3, tzinfo=_UTC)
_LAST = datetime(9999, 12, 29, tzinfo=_UTC)
_MAX_CELLS = 20_000


class Window(NamedTuple):
    """A span of wall times ``[start, end)`` around one offset change.

    ``gap``: the clock jumped forward, so these wall times never happen. Otherwise the
    clock went back and each of them happens twice: first at ``fold=0``, then ``fold=1``.
    ``end_time`` is the wall time ``end`` as an aware datetime in the zone (after a gap,
    the instant of the jump itself).
    """

    start: Wall
    end: Wall
    gap: bool
    end_time: datetime


def wall_of(dt: datetime) -> Wall:
    """The wall-clock fields of *dt* (microseconds dropped)."""
    return (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)


class ZoneTable:
    """The skipped and repeated wall-time spans of one zone, computed a year at a time.

    Attributes:
        tz: The zone.
    """

    __slots__ = ("cells", "tz")

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        #: Keyed by the day (y * 512 + month * 32 + day): the spans that touch that day.
        #: Key y * 512 (month 0, day 0) marks a year as scanned. One dict, replaced rather
        #: than cleared, so that a concurrent reader always sees a consistent one. A day
        #: whose key is absent in a scanned year has only ordinary wall times.
        self.cells: dict[int, tuple[Window, ...]] = {}

    def window_at(self, y: int, mo: int, d: int, h: int, mi: int, s: int) -> Window | None:
        """The span that the wall time lies in, or ``None`` for an ordinary wall time."""
        cells = self.cells
        windows = cells.get(y * 512 + mo * 32 + d)
        if windows is None:
            if y * 512 in cells:
                return None
            windows = self._add_year(y).get(y * 512 + mo * 32 + d)
            if windows is None:
                return None
        wall = (y, mo, d, h, mi, s)
        for window in windows:
            if window.start <= wall < window.end:
                return window
        return None

    def _add_year(self, year: int) -> dict[int, tuple[Window, ...]]:
        cells = self.cells
        if len(cells) >= _MAX_CELLS:
            cells = {}
        for window in self._scan(year):
            day = date(*window.start[:3])
            while day <= date(*window.end[:3]):
                key = day.year * 512 + day.month * 32 + day.day
                if window not in cells.get(key, ()):
                    cells[key] = (*cells.get(key, ()), window)
                day += timedelta(days=1)
        cells[year * 512] = ()
        self.cells = cells
        return cells

    def _scan(self, year: int) -> list[Window]:
        new_year = datetime(year, 1, 1, tzinfo=_UTC)
        low = max(new_year - _MARGIN, _FIRST)
        high = min(new_year + timedelta(days=366) + _MARGIN, _LAST)
        step = timedelta(seconds=_STEP_SECONDS)
        windows = []
        moment, offset = low, self._offset(low)
        while moment < high:
            following = moment + step
            new_offset = self._offset(following)
            if new_offset != offset:
                windows.append(self._window(self._transition(moment, offset), offset, new_offset))
            moment, offset = following, new_offset
        return windows

    def _offset(self, utc: datetime) -> timedelta:
        # fromutc() reads the wall fields of its argument as UTC; the difference of the
        # two naive wall times is the offset at that instant
        local = self.tz.fromutc(utc.replace(tzinfo=self.tz))
        return local.replace(tzinfo=None) - utc.replace(tzinfo=None)

    def _transition(self, before: datetime, offset: timedelta) -> datetime:
        """The first second after *before* (offset *offset*) with another offset."""
        low, high = 0, _STEP_SECONDS
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(before + timedelta(seconds=middle)) == offset:
                low = middle
            else:
                high = middle
        return before + timedelta(seconds=high)

    def _window(self, moment: datetime, before: timedelta, after: timedelta) -> Window:
        # The wall clock reads moment + before just before the change and moment + after
        # from the change on. Forward (after > before): the walls in between are skipped.
        # Back: they are shown twice.
        gap = after > before
        start, end = (
            (moment + before, moment + after) if gap else (moment + after, moment + before)
        )
        end_instant = moment if gap else moment + (before - after)
        end_time = self.tz.fromutc(end_instant.replace(tzinfo=self.tz))
        return Window(wall_of(start), wall_of(end), gap, end_time)


_TABLES: dict[tzinfo, ZoneTable] = {}


def zone_table(tz: tzinfo) -> ZoneTable | None:
    """The table for *tz*, or ``None`` for a fixed offset (no wall time is ever odd)."""
    if isinstance(tz, timezone):
        return None
    table = _TABLES.get(tz)
    if table is None:
        table = _TABLES[tz] = ZoneTable(tz)
    return table
