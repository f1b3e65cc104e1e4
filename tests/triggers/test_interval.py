"""IntervalTrigger: elapsed-time arithmetic, DST, end_time edges, O(1) catch-up, errors."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.interval import IntervalTrigger as APS3IntervalTrigger
from hypothesis import given, settings
from hypothesis import strategies as st

from horae.calendars import DateRangeCalendar, HolidayCalendar
from horae.triggers import IntervalTrigger, Trigger

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def take(trigger: Trigger, count: int, after: datetime | None = None) -> list[datetime]:
    """The first *count* fire times after *after* (fewer if the trigger runs out)."""
    times: list[datetime] = []
    current = trigger.next(after)
    while current is not None and len(times) < count:
        times.append(current)
        current = trigger.next(current)
    return times


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# (kwargs, after, expected fire times as ISO strings with offsets)
SEQUENCES: dict[str, tuple[dict[str, Any], datetime | None, list[str]]] = {
    "first-fire-is-start-time": (
        {"seconds": 3, "start_time": utc(2024, 1, 1)},
        None,
        ["2024-01-01T00:00:00+00:00", "2024-01-01T00:00:03+00:00", "2024-01-01T00:00:06+00:00"],
    ),
    "after-before-start-gives-start": (
        {"minutes": 5, "start_time": utc(2024, 1, 1, 12)},
        utc(2023, 6, 1),
        ["2024-01-01T12:00:00+00:00", "2024-01-01T12:05:00+00:00"],
    ),
    "after-exactly-on-a-fire-time-is-excluded": (
        {"minutes": 5, "start_time": utc(2024, 1, 1, 12)},
        utc(2024, 1, 1, 12, 10),
        ["2024-01-01T12:15:00+00:00", "2024-01-01T12:20:00+00:00"],
    ),
    "after-between-fire-times": (
        {"minutes": 5, "start_time": utc(2024, 1, 1, 12)},
        utc(2024, 1, 1, 12, 11, 59, 999999),
        ["2024-01-01T12:15:00+00:00"],
    ),
    "all-units-add-up": (
        {
            "weeks": 1,
            "days": 1,
            "hours": 1,
            "minutes": 1,
            "seconds": 1,
            "microseconds": 1,
            "start_time": utc(2024, 1, 1),
        },
        None,
        ["2024-01-01T00:00:00+00:00", "2024-01-09T01:01:01.000001+00:00"],
    ),
    "fractional-seconds": (
        {"seconds": 0.25, "start_time": utc(2024, 1, 1)},
        None,
        ["2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00.250000+00:00"],
    ),
    "hourly-across-berlin-spring-forward": (
        {"hours": 1, "start_time": "2024-03-31 00:30", "timezone": "Europe/Berlin"},
        None,
        [
            "2024-03-31T00:30:00+01:00",
            "2024-03-31T01:30:00+01:00",
            "2024-03-31T03:30:00+02:00",
            "2024-03-31T04:30:00+02:00",
        ],
    ),
    "hourly-across-new-york-fall-back-fires-in-both-01-hours": (
        {"hours": 1, "start_time": "2024-11-03 00:30", "timezone": "America/New_York"},
        None,
        [
            "2024-11-03T00:30:00-04:00",
            "2024-11-03T01:30:00-04:00",
            "2024-11-03T01:30:00-05:00",
            "2024-11-03T02:30:00-05:00",
        ],
    ),
    "hourly-across-lord-howe-half-hour-shift": (
        {"hours": 1, "start_time": "2024-10-06 01:15", "timezone": "Australia/Lord_Howe"},
        None,
        [
            "2024-10-06T01:15:00+10:30",
            "2024-10-06T02:45:00+11:00",
            "2024-10-06T03:45:00+11:00",
        ],
    ),
    "daily-is-24-hours-so-wall-time-shifts-across-dst": (
        {"days": 1, "start_time": "2024-03-30 12:00", "timezone": "Europe/Berlin"},
        None,
        ["2024-03-30T12:00:00+01:00", "2024-03-31T13:00:00+02:00", "2024-04-01T13:00:00+02:00"],
    ),
    "naive-start-in-dst-gap-is-first-instant-after-it": (
        {"hours": 1, "start_time": "2024-03-31 02:30", "timezone": "Europe/Berlin"},
        None,
        ["2024-03-31T03:00:00+02:00", "2024-03-31T04:00:00+02:00"],
    ),
    "naive-start-in-fold-is-first-occurrence": (
        {"hours": 1, "start_time": "2024-10-27 02:30", "timezone": "Europe/Berlin"},
        None,
        ["2024-10-27T02:30:00+02:00", "2024-10-27T02:30:00+01:00"],
    ),
    "end-time-exactly-on-a-fire-time-is-included": (
        {"hours": 1, "start_time": utc(2024, 1, 1), "end_time": utc(2024, 1, 1, 2)},
        None,
        ["2024-01-01T00:00:00+00:00", "2024-01-01T01:00:00+00:00", "2024-01-01T02:00:00+00:00"],
    ),
    "end-time-between-fire-times": (
        {"hours": 1, "start_time": utc(2024, 1, 1), "end_time": utc(2024, 1, 1, 1, 59)},
        None,
        ["2024-01-01T00:00:00+00:00", "2024-01-01T01:00:00+00:00"],
    ),
    "end-time-equal-to-start-fires-once": (
        {"hours": 1, "start_time": utc(2024, 1, 1), "end_time": utc(2024, 1, 1)},
        None,
        ["2024-01-01T00:00:00+00:00"],
    ),
    "results-in-the-trigger-zone-not-the-after-zone": (
        {"hours": 1, "start_time": utc(2024, 6, 1), "timezone": "Europe/Berlin"},
        datetime(2024, 6, 1, 5, 30, tzinfo=NEW_YORK),
        ["2024-06-01T12:00:00+02:00"],
    ),
    "excluded-holidays-are-skipped": (
        {
            "hours": 12,
            "start_time": utc(2024, 12, 23),
            "timezone": "UTC",
            "exclude": HolidayCalendar(["2024-12-24", "2024-12-25"]),
        },
        None,
        ["2024-12-23T00:00:00+00:00", "2024-12-23T12:00:00+00:00", "2024-12-26T00:00:00+00:00"],
    ),
    "exclusion-ending-between-fire-times": (
        {
            "hours": 1,
            "start_time": utc(2024, 1, 1),
            "exclude": DateRangeCalendar(utc(2024, 1, 1, 1), utc(2024, 1, 1, 3, 30)),
        },
        None,
        ["2024-01-01T00:00:00+00:00", "2024-01-01T04:00:00+00:00"],
    ),
}


@pytest.mark.parametrize(
    ("kwargs", "after", "expected"), list(SEQUENCES.values()), ids=list(SEQUENCES)
)
def test_fire_times(kwargs: dict[str, Any], after: datetime | None, expected: list[str]) -> None:
    times = take(IntervalTrigger(**kwargs), len(expected) + 1, after)
    assert [t.isoformat() for t in times[: len(expected)]] == expected
    if "end_time" in kwargs:
        assert len(times) == len(expected)  # and then it is exhausted


def test_dst_never_changes_elapsed_time() -> None:
    # Python subtracts same-zone datetimes by wall clock, so compare in UTC.
    for zone in (BERLIN, NEW_YORK, LORD_HOWE):
        trigger = IntervalTrigger(hours=1, start_time=datetime(2024, 1, 1, tzinfo=zone))
        times = take(trigger, 24 * 366)
        gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(times)}
        assert gaps == {timedelta(hours=1)}
        assert all(t.tzinfo is zone for t in times)


@pytest.mark.parametrize(
    ("interval", "start", "after", "expected"),
    [
        pytest.param(
            {"seconds": 1},
            utc(2022, 1, 1),
            utc(2024, 1, 1, 0, 0, 0, 500000),
            utc(2024, 1, 1, 0, 0, 1),
            id="1s-interval-two-years-behind",
        ),
        pytest.param(
            {"microseconds": 1},
            utc(1970, 1, 1),
            utc(9000, 6, 1, 12, 0, 0, 7),
            utc(9000, 6, 1, 12, 0, 0, 8),
            id="1us-interval-seven-millennia-behind",
        ),
        pytest.param(
            {"seconds": 7, "microseconds": 3},
            utc(2000, 1, 1),
            utc(2500, 1, 1),
            # k = ceil(500 years / 7.000003 s); exact integer arithmetic
            utc(2000, 1, 1)
            + timedelta(microseconds=7_000_003)
            * ((utc(2500, 1, 1) - utc(2000, 1, 1)) // timedelta(microseconds=7_000_003) + 1),
            id="odd-interval-five-centuries-behind-no-float-drift",
        ),
    ],
)
def test_catch_up_over_huge_gaps(
    interval: dict[str, Any], start: datetime, after: datetime, expected: datetime
) -> None:
    assert IntervalTrigger(**interval, start_time=start).next(after) == expected


def test_exhausted_at_the_end_of_time() -> None:
    trigger = IntervalTrigger(weeks=52, start_time=utc(9999, 6, 1))
    assert trigger.next(utc(9999, 6, 2)) is None


def test_without_start_time_first_fire_is_one_interval_after_construction() -> None:
    before = datetime.now(UTC)  # noqa: TID251 - brackets the trigger's own clock read
    trigger = IntervalTrigger(seconds=10, timezone="UTC")
    after = datetime.now(UTC)  # noqa: TID251
    first = trigger.next()
    assert first is not None
    assert before + timedelta(seconds=10) <= first <= after + timedelta(seconds=10)
    assert trigger.start_time == first


@pytest.mark.parametrize(
    ("kwargs", "expected_zone"),
    [
        pytest.param({"start_time": datetime(2024, 1, 1, tzinfo=BERLIN)}, BERLIN, id="aware"),
        pytest.param(
            {"start_time": datetime(2024, 1, 1, tzinfo=BERLIN), "timezone": NEW_YORK},
            NEW_YORK,
            id="explicit-wins",
        ),
        pytest.param(
            {"start_time": "2024-01-01T00:00:00+01:00", "timezone": "America/New_York"},
            NEW_YORK,
            id="iso-with-offset",
        ),
    ],
)
def test_timezone_choice(kwargs: dict[str, Any], expected_zone: ZoneInfo) -> None:
    trigger = IntervalTrigger(hours=1, **kwargs)
    assert trigger.timezone is expected_zone
    first = trigger.next()
    assert first is not None
    assert first.tzinfo is expected_zone
    assert first == utc(2023, 12, 31, 23)


def test_date_start_means_midnight_in_the_zone() -> None:
    from datetime import date

    trigger = IntervalTrigger(days=1, start_time=date(2024, 5, 1), timezone="Europe/Berlin")
    assert trigger.next() == datetime(2024, 5, 1, tzinfo=BERLIN)


def test_interval_property_and_value_semantics() -> None:
    a = IntervalTrigger(hours=1, start_time=utc(2024, 1, 1))
    b = IntervalTrigger(minutes=60, start_time=utc(2024, 1, 1))
    assert a.interval == b.interval == timedelta(hours=1)
    assert a != b  # amounts are kept as given
    assert a == IntervalTrigger(hours=1, start_time=utc(2024, 1, 1))
    same = IntervalTrigger(hours=1, start_time="2024-01-01T00:00:00+00:00", timezone=UTC)
    assert a == same
    assert hash(a) == hash(same)
    assert str(a) == "interval[1:00:00]"
    assert a.describe() == "Every 1:00:00 from 2024-01-01T00:00:00+00:00"


def test_fold_start_times_are_different_values() -> None:
    first = datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN)
    second = first.replace(fold=1)
    assert IntervalTrigger(hours=1, start_time=first) != IntervalTrigger(
        hours=1, start_time=second
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param(
            {},
            ValueError,
            "the interval must be positive, got 0 seconds; give weeks, days, hours, minutes, "
            "seconds or microseconds a total above zero",
            id="zero",
        ),
        pytest.param(
            {"hours": 1, "minutes": -60},
            ValueError,
            "the interval must be positive, got 0 seconds; give weeks, days, hours, minutes, "
            "seconds or microseconds a total above zero",
            id="cancels-out",
        ),
        pytest.param(
            {"seconds": -5},
            ValueError,
            "the interval must be positive, got -5 seconds; give weeks, days, hours, minutes, "
            "seconds or microseconds a total above zero",
            id="negative",
        ),
        pytest.param(
            {"weeks": 10**12},
            ValueError,
            "the interval is too long (the limit is 999999999 days)",
            id="too-long",
        ),
        pytest.param(
            {"minute": 1},
            TypeError,
            "IntervalTrigger() got an unexpected keyword argument 'minute'; did you mean "
            "'minutes'?",
            id="misspelt-minute",
        ),
        pytest.param(
            {"seconds": 1, "start_date": utc(2024, 1, 1)},
            TypeError,
            "IntervalTrigger() got an unexpected keyword argument 'start_date'; did you mean "
            "'start_time'?",
            id="aps3-spelling-on-the-class",
        ),
        pytest.param(
            {"seconds": "5"},
            TypeError,
            "seconds must be a number, not str '5'",
            id="string-amount",
        ),
        pytest.param(
            {"seconds": True},
            TypeError,
            "seconds must be a number, not bool True",
            id="bool-amount",
        ),
        pytest.param(
            {"hours": 1, "start_time": utc(2024, 1, 2), "end_time": utc(2024, 1, 1)},
            ValueError,
            "end_time '2024-01-01T00:00:00+00:00' is earlier than the first fire time "
            "'2024-01-02T00:00:00+00:00'; the trigger would never fire",
            id="end-before-start",
        ),
        pytest.param(
            {"hours": 1, "start_time": "yesterday"},
            ValueError,
            "invalid start_time 'yesterday': expected an ISO 8601 date or date and time "
            "such as '2019-06-28 18:09:00'",
            id="bad-start-string",
        ),
        pytest.param(
            {"hours": 1, "timezone": "Mars/Olympus"},
            ValueError,
            "unknown time zone 'Mars/Olympus' for 'timezone'; use an IANA key such as "
            "'Europe/Berlin' or 'UTC'",
            id="unknown-zone",
        ),
        pytest.param(
            {"hours": 1, "exclude": ["2024-12-25"]},
            TypeError,
            "exclude must be a horae.calendars.Calendar or None, not list ['2024-12-25']",
            id="exclude-not-a-calendar",
        ),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        IntervalTrigger(**kwargs)
    assert str(info.value) == message


def test_naive_after_is_rejected() -> None:
    trigger = IntervalTrigger(hours=1, start_time=utc(2024, 1, 1))
    with pytest.raises(ValueError, match="after must be a timezone-aware datetime"):
        trigger.next(datetime(2024, 1, 1))


def test_immutable() -> None:
    import attrs

    trigger = IntervalTrigger(hours=1, start_time=utc(2024, 1, 1))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        trigger.hours = 2  # type: ignore[misc]


ZONES = st.sampled_from([UTC, BERLIN, NEW_YORK, LORD_HOWE])
AWARE = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=ZONES
)
INTERVALS = st.integers(min_value=1, max_value=10**12).map(lambda us: timedelta(microseconds=us))


@settings(max_examples=120)
@given(interval=INTERVALS, start=AWARE, after=AWARE)
def test_property_next_is_the_first_grid_point_after(
    interval: timedelta, start: datetime, after: datetime
) -> None:
    trigger = IntervalTrigger(microseconds=interval // timedelta(microseconds=1), start_time=start)
    fire = trigger.next(after)
    assert fire is not None
    assert fire.astimezone(UTC) > after.astimezone(UTC)  # real time, not wall time
    assert fire == trigger.next(after)  # pure
    offset = fire.astimezone(UTC) - start.astimezone(UTC)
    assert offset >= timedelta(0)
    assert offset % interval == timedelta(0)  # on the start + k * interval grid
    # ... and the first grid point after *after*: one step back is not after it (in UTC:
    # same-zone datetime arithmetic and comparison are wall-clock, not elapsed, time)
    previous = fire.astimezone(UTC) - interval
    assert previous <= after.astimezone(UTC) or fire == trigger.start_time


@settings(max_examples=120)
@given(
    seconds=st.integers(min_value=1, max_value=10 * 86400),
    start=st.integers(min_value=946684800, max_value=2524608000),
    now=st.integers(min_value=946684800, max_value=2524608000),
    zone=ZONES,
)
def test_agrees_with_apscheduler3(seconds: int, start: int, now: int, zone: ZoneInfo) -> None:
    # APScheduler 3 also counts elapsed (timestamp) time; its get_next_fire_time(None, now)
    # is the first fire time at or after `now`, which is ours strictly after now - 1 us.
    # Whole seconds keep its float timestamps exact.
    start_time = datetime.fromtimestamp(start, zone)
    now_time = datetime.fromtimestamp(now, zone)
    theirs = APS3IntervalTrigger(seconds=seconds, start_date=start_time, timezone=zone)
    ours = IntervalTrigger(seconds=seconds, start_time=start_time)
    expected = theirs.get_next_fire_time(None, now_time)
    actual = ours.next(now_time - timedelta(microseconds=1))
    assert actual == expected
    assert actual is not None
    assert actual.utcoffset() == expected.utcoffset()
