"""Wall-clock times versus instants: exact UTC arithmetic and the DST rules for gaps and folds.

Python compares and subtracts two aware datetimes that share a ``tzinfo`` by their
*wall* times, ignoring ``fold`` and the UTC offset: ``02:30 CEST - 02:30 CET == 0`` on a
fall-back day although an hour passes between them. Every trigger and calendar in horae
therefore does its arithmetic and comparisons on UTC values (or on integer microseconds
since the epoch) and converts to the trigger's zone only for the result.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECONDS_PER_DAY = 86_400_000_000


def to_utc(dt: datetime) -> datetime:
    """Return the aware *dt* as the same instant in UTC (safe to compare and subtract)."""
    return dt.astimezone(timezone.utc)


def utc_microseconds(dt: datetime) -> int:
    """Microseconds from the Unix epoch to the aware *dt*, as an exact integer.

    Integers, not ``timestamp()`` floats: a float second count near 1.7e9 has only about
    a microsecond of precision left, and multiplying it by a large interval index drifts.
    """
    # _EPOCH is in UTC and dt is aware, so this subtraction compares instants (see the
    # module docstring for why same-zone subtraction would not).
    delta = dt - _EPOCH
    return delta.days * _MICROSECONDS_PER_DAY + delta.seconds * 1_000_000 + delta.microseconds


def from_utc_microseconds(value: int, tz: tzinfo) -> datetime:
    """The inverse of :func:`utc_microseconds`, as an aware datetime in *tz*.

    Raises :exc:`OverflowError` when the instant is outside the ``datetime`` range.
    """
    return (_EPOCH + timedelta(microseconds=value)).astimezone(tz)


def resolve_wall_time(wall: datetime, tz: tzinfo) -> datetime:
    """Return the instant that the naive wall-clock time *wall* names in *tz*.

    * A wall time that exists once maps to that instant.
    * A repeated wall time (a DST fold) maps to its **first** occurrence.
    * A skipped wall time (a DST gap) maps to the **first instant after the gap**: in
      Berlin, 02:30 on the spring-forward day becomes 03:00 CEST, not 03:30 (what
      ``fold=0`` would give) and not 01:30 (``fold=1``).

    The result is an aware datetime in *tz*, with ``fold`` set correctly.
    """
    first = wall.replace(tzinfo=tz, fold=0)
    normalized = first.astimezone(timezone.utc).astimezone(tz)
    if normalized.replace(tzinfo=None) == wall:
        # exists (once, or twice and fold=0 picked the first occurrence)
        return normalized
    return _end_of_gap(wall, tz, normalized)


def _end_of_gap(wall: datetime, tz: tzinfo, fallback: datetime) -> datetime:
    """The transition instant that ends the gap containing the nonexistent *wall*."""
    # PEP 495: inside a gap, fold=0 reads the wall time with the offset from before the
    # transition and fold=1 with the (larger, for a forward jump) offset from after it.
    # Read with the larger offset the instant lies before the transition; read with the
    # smaller one it lies at or after it. The transition is between the two.
    larger = wall.replace(tzinfo=tz, fold=1).utcoffset()
    smaller = wall.replace(tzinfo=tz, fold=0).utcoffset()
    if larger is None or smaller is None or larger <= smaller:
        return fallback  # not a forward jump: a tzinfo outside PEP 495's rules
    low = utc_microseconds((wall - larger).replace(tzinfo=timezone.utc)) // 1_000_000
    high = -(-utc_microseconds((wall - smaller).replace(tzinfo=timezone.utc)) // 1_000_000)
    new_offset = from_utc_microseconds(high * 1_000_000, tz).utcoffset()
    # tzdata transitions fall on whole seconds, so bisecting seconds finds the exact
    # instant in about 17 steps for the longest real gaps (a whole day, Samoa 2011).
    while high - low > 1:
        middle = (low + high) // 2
        if from_utc_microseconds(middle * 1_000_000, tz).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return from_utc_microseconds(high * 1_000_000, tz)


def resolve_wall_time_after(wall: datetime, tz: tzinfo, after: datetime) -> datetime:
    """Like :func:`resolve_wall_time`, but prefer an occurrence later than *after*.

    Used for the end of an excluded span: when *after* is the second occurrence of a
    repeated hour, the first occurrence of a later wall time in that hour lies before
    *after*; the second occurrence is the one that ends the span.
    """
    resolved = resolve_wall_time(wall, tz)
    if to_utc(resolved) <= to_utc(after):
        second = wall.replace(tzinfo=tz, fold=1).astimezone(timezone.utc).astimezone(tz)
        if to_utc(second) > to_utc(after):
            return second
    return resolved
