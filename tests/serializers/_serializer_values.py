"""Values shared by the serializer tests: one example of every supported type, every
trigger and calendar kind, and a strict equality that also compares types, zones and
folds (``==`` alone would accept a list for a tuple, or a lost ``fold``)."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from horae import CoalescePolicy, JobOutcome, SerializationError
from horae._structures import RetryPolicy

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
IST = timezone(timedelta(hours=5, minutes=30), "IST")


class Color(enum.Enum):
    red = 1
    green = (2, "tuple value")


class Priority(enum.IntFlag):
    low = 1
    high = 2


#: (id, value) for one example of every supported value type.
SUPPORTED_VALUES: list[tuple[str, Any]] = [
    ("none", None),
    ("true", True),
    ("int", -(2**70)),
    ("float", 1.5),
    ("negative-zero", -0.0),
    ("infinity", float("inf")),
    ("negative-infinity", float("-inf")),
    ("str", "héllo ✓"),
    ("lone-surrogate", "\ud800"),
    ("bytes", b"\x00\xff binary"),
    ("bytearray", bytearray(b"\x01\x02")),
    ("list", [1, "two", [3.0]]),
    ("tuple", (1, (2, 3), [4])),
    ("empty-tuple", ()),
    ("set", {1, "a", (2, 3)}),
    ("frozenset", frozenset({b"x", 1})),
    ("dict", {"a": 1, "b": {"c": [None]}}),
    ("dict-int-keys", {1: "a", 2: "b"}),
    ("dict-mixed-keys", {1: "a", "1": "b", (1, 2): "c", None: "d", 2.5: "e"}),
    ("dict-datetime-keys", {date(2024, 1, 1): "new year"}),
    ("naive-datetime", datetime(2024, 3, 31, 2, 30, 15, 123456)),
    ("utc-datetime", datetime(2024, 1, 1, tzinfo=timezone.utc)),
    ("zoneinfo-datetime", datetime(2024, 7, 1, 9, tzinfo=BERLIN)),
    ("fold-datetime", datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK)),
    ("gap-datetime", datetime(2024, 3, 31, 2, 30, tzinfo=BERLIN)),
    ("named-offset-datetime", datetime(2024, 1, 1, 12, tzinfo=IST)),
    ("date", date(2024, 2, 29)),
    ("time", time(23, 59, 59, 999999)),
    ("time-with-zone", time(9, 30, tzinfo=BERLIN)),
    ("time-with-offset", time(9, 30, tzinfo=IST)),
    ("timedelta", timedelta(days=-3, seconds=5, microseconds=7)),
    ("uuid", UUID("12345678-1234-5678-1234-567812345678")),
    ("decimal", Decimal("1.10")),
    ("decimal-exponent", Decimal("-1E+3")),
    ("zoneinfo", BERLIN),
    ("zoneinfo-utc", ZoneInfo("UTC")),
    ("timezone-utc", timezone.utc),
    ("fixed-offset", timezone(timedelta(hours=-3, seconds=1))),
    ("named-fixed-offset", IST),
    ("horae-enum", CoalescePolicy.all),
    ("horae-enum-2", JobOutcome.missed_start_deadline),
    ("user-enum", Color.green),
    ("int-flag", Priority.low | Priority.high),
    (
        "retry-policy",
        RetryPolicy(
            max_attempts=5,
            backoff=timedelta(milliseconds=1500),
            max_backoff=timedelta(hours=1),
            jitter=False,
            retry_on=(KeyError, SerializationError, OSError),
        ),
    ),
]


def make_trigger(kind: str) -> Any:
    """Build one trigger of *kind* (imported here, so that a missing kind fails only its
    own test)."""
    from horae.calendars import DateRangeCalendar, HolidayCalendar

    start = datetime(2024, 1, 31, 9, tzinfo=BERLIN)
    if kind == "interval":
        from horae.triggers import IntervalTrigger

        return IntervalTrigger(
            hours=1, minutes=30, start_time=start, end_time=start + timedelta(days=30)
        )
    if kind == "interval-excluding-holidays":
        from horae.triggers import IntervalTrigger

        return IntervalTrigger(
            days=1, start_time=start, exclude=HolidayCalendar(["2024-02-01", "2024-12-25"])
        )
    if kind == "date":
        from horae.triggers import DateTrigger

        return DateTrigger("2019-06-28 18:09:00", timezone="America/New_York")
    if kind == "calendarinterval":
        from horae.triggers import CalendarIntervalTrigger

        return CalendarIntervalTrigger(
            months=1, hour=9, start_date="2024-01-31", timezone="Europe/Berlin"
        )
    if kind == "cron":
        from horae.triggers import CronTrigger

        return CronTrigger(hour="*/2", minute=1, start_time=start, timezone="Europe/Berlin")
    if kind == "cron-crontab":
        from horae.triggers import CronTrigger

        return CronTrigger.from_crontab("H 9 * * mon-fri", seed="report", timezone="UTC")
    if kind == "and":
        from horae.triggers import AndTrigger

        return AndTrigger([make_trigger("interval"), make_trigger("calendarinterval")])
    if kind == "or":
        from horae.triggers import OrTrigger

        range_calendar = DateRangeCalendar("2024-02-10", "2024-02-20", timezone=BERLIN)
        return OrTrigger([make_trigger("date"), make_trigger("interval")], exclude=range_calendar)
    raise AssertionError(kind)


TRIGGER_KINDS = [
    "interval",
    "interval-excluding-holidays",
    "date",
    "calendarinterval",
    "cron",
    "cron-crontab",
    "and",
    "or",
]


def make_calendar(kind: str) -> Any:
    """Build one calendar of *kind*."""
    from horae.calendars import CronCalendar, DateRangeCalendar, HolidayCalendar

    if kind == "holiday":
        return HolidayCalendar([date(2024, 12, 25), "2024-12-26"], timezone="Europe/Berlin")
    if kind == "daterange":
        return DateRangeCalendar(
            datetime(2024, 2, 1, 12, tzinfo=BERLIN), "2024-02-03T00:00:00+01:00"
        )
    if kind == "cron":
        return CronCalendar("* * 24-26 12 *")
    raise AssertionError(kind)


CALENDAR_KINDS = ["holiday", "daterange", "cron"]


def assert_identical(actual: Any, expected: Any) -> None:
    """Assert equality that also checks types, zones, folds and float signs."""
    assert type(actual) is type(expected), (actual, expected)
    if isinstance(expected, float):
        if math.isnan(expected):
            assert math.isnan(actual)
        else:
            assert actual == expected
            assert math.copysign(1, actual) == math.copysign(1, expected)
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for actual_item, expected_item in zip(actual, expected, strict=True):
            assert_identical(actual_item, expected_item)
    elif isinstance(expected, Mapping):
        assert list(actual) == list(expected)
        for key in expected:
            assert_identical(actual[key], expected[key])
    elif isinstance(expected, (datetime, time)):
        assert actual == expected
        assert actual.fold == expected.fold
        assert actual.tzinfo == expected.tzinfo
        assert str(actual) == str(expected)
    elif isinstance(expected, Decimal):
        assert str(actual) == str(expected)
    else:
        assert actual == expected
