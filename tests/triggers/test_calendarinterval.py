"""CalendarIntervalTrigger: month ends, leap days, DST gaps and folds, catch-up, errors."""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from horae.calendars import CronCalendar, HolidayCalendar
from horae.triggers import CalendarIntervalTrigger, Trigger

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def take(trigger: Trigger, count: int, after: datetime | None = None) -> list[datetime]:
    times: list[datetime] = []
    current = trigger.next(after)
    while current is not None and len(times) < count:
        times.append(current)
        current = trigger.next(current)
    return times


SEQUENCES: dict[str, tuple[dict[str, Any], datetime | None, list[str]]] = {
    "monthly-on-the-31st-skips-short-months": (
        {"months": 1, "hour": 9, "start_date": "2024-01-31", "timezone": "Europe/Berlin"},
        None,
        [
            "2024-01-31T09:00:00+01:00",
            "2024-03-31T09:00:00+02:00",
            "2024-05-31T09:00:00+02:00",
            "2024-07-31T09:00:00+02:00",
            "2024-08-31T09:00:00+02:00",
            "2024-10-31T09:00:00+01:00",
        ],
    ),
    "monthly-on-the-30th-skips-february-only": (
        {"months": 1, "start_date": "2023-12-30", "timezone": "UTC"},
        None,
        ["2023-12-30T00:00:00+00:00", "2024-01-30T00:00:00+00:00", "2024-03-30T00:00:00+00:00"],
    ),
    "yearly-from-feb-29-fires-in-leap-years-only": (
        {"years": 1, "hour": 12, "start_date": "2020-02-29", "timezone": "UTC"},
        None,
        ["2020-02-29T12:00:00+00:00", "2024-02-29T12:00:00+00:00", "2028-02-29T12:00:00+00:00"],
    ),
    "yearly-from-feb-29-skips-2100": (
        {"years": 1, "start_date": "2096-02-29", "timezone": "UTC"},
        None,
        ["2096-02-29T00:00:00+00:00", "2104-02-29T00:00:00+00:00"],
    ),
    "every-2-weeks": (
        {"weeks": 2, "hour": 8, "minute": 30, "start_date": "2024-01-01", "timezone": "UTC"},
        None,
        ["2024-01-01T08:30:00+00:00", "2024-01-15T08:30:00+00:00", "2024-01-29T08:30:00+00:00"],
    ),
    "months-and-days-accumulate-per-step": (
        {"months": 1, "days": 1, "start_date": "2024-01-15", "timezone": "UTC"},
        None,
        ["2024-01-15T00:00:00+00:00", "2024-02-16T00:00:00+00:00", "2024-03-17T00:00:00+00:00"],
    ),
    "berlin-gap-fires-at-first-instant-after": (
        {"days": 1, "hour": 2, "minute": 30, "start_date": "2024-03-30", "timezone": BERLIN},
        None,
        ["2024-03-30T02:30:00+01:00", "2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"],
    ),
    "berlin-fold-fires-once-at-first-occurrence": (
        {"days": 1, "hour": 2, "minute": 30, "start_date": "2024-10-26", "timezone": BERLIN},
        None,
        ["2024-10-26T02:30:00+02:00", "2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"],
    ),
    "berlin-fold-after-second-occurrence-goes-to-next-day": (
        {"days": 1, "hour": 2, "minute": 30, "start_date": "2024-10-26", "timezone": BERLIN},
        datetime(2024, 10, 27, 2, 0, fold=1, tzinfo=BERLIN),
        ["2024-10-28T02:30:00+01:00"],
    ),
    "new-york-gap": (
        {"days": 1, "hour": 2, "minute": 15, "start_date": "2024-03-09", "timezone": NEW_YORK},
        None,
        ["2024-03-09T02:15:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-11T02:15:00-04:00"],
    ),
    "new-york-fold": (
        {"days": 1, "hour": 1, "minute": 30, "start_date": "2024-11-02", "timezone": NEW_YORK},
        None,
        ["2024-11-02T01:30:00-04:00", "2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"],
    ),
    "lord-howe-half-hour-gap": (
        {"days": 1, "hour": 2, "minute": 15, "start_date": "2024-10-05", "timezone": LORD_HOWE},
        None,
        ["2024-10-05T02:15:00+10:30", "2024-10-06T02:30:00+11:00", "2024-10-07T02:15:00+11:00"],
    ),
    "lord-howe-half-hour-fold": (
        {"days": 1, "hour": 1, "minute": 45, "start_date": "2024-04-06", "timezone": LORD_HOWE},
        None,
        ["2024-04-06T01:45:00+11:00", "2024-04-07T01:45:00+11:00", "2024-04-08T01:45:00+10:30"],
    ),
    "end-date-is-inclusive": (
        {"days": 1, "hour": 23, "start_date": "2024-01-01", "end_date": "2024-01-03"},
        None,
        ["2024-01-01T23:00:00+00:00", "2024-01-02T23:00:00+00:00", "2024-01-03T23:00:00+00:00"],
    ),
    "end-date-on-a-skipped-month": (
        {"months": 1, "start_date": "2024-01-31", "end_date": "2024-02-29", "timezone": UTC},
        None,
        ["2024-01-31T00:00:00+00:00"],
    ),
    "after-in-another-zone": (
        {"days": 1, "hour": 9, "start_date": "2024-01-01", "timezone": BERLIN},
        datetime(2024, 1, 10, 3, 0, tzinfo=NEW_YORK),  # 09:00 in Berlin exactly
        ["2024-01-11T09:00:00+01:00"],
    ),
    "huge-gap-catch-up": (
        {"months": 1, "hour": 9, "start_date": "2000-01-31", "timezone": BERLIN},
        datetime(2500, 6, 15, tzinfo=UTC),
        ["2500-07-31T09:00:00+02:00", "2500-08-31T09:00:00+02:00"],
    ),
    "huge-gap-catch-up-daily": (
        {"days": 3, "start_date": "1970-01-01", "timezone": UTC},
        datetime(9000, 1, 1, tzinfo=UTC),
        # 9000-01-01 is day 2_568_300 after 1970-01-01, divisible by 3
        ["9000-01-04T00:00:00+00:00"],
    ),
    "exhausted-at-year-9999": (
        {"days": 1, "start_date": "9999-12-30", "timezone": UTC},
        None,
        ["9999-12-30T00:00:00+00:00", "9999-12-31T00:00:00+00:00"],
    ),
    "excluded-holidays-are-skipped": (
        {
            "days": 1,
            "hour": 9,
            "start_date": "2024-12-23",
            "timezone": BERLIN,
            "exclude": HolidayCalendar(["2024-12-24", "2024-12-25", "2024-12-26"]),
        },
        None,
        ["2024-12-23T09:00:00+01:00", "2024-12-27T09:00:00+01:00"],
    ),
}


@pytest.mark.parametrize(
    ("name", "kwargs", "after", "expected"),
    [(name, *case) for name, case in SEQUENCES.items()],
    ids=list(SEQUENCES),
)
def test_fire_times(
    name: str, kwargs: dict[str, Any], after: datetime | None, expected: list[str]
) -> None:
    trigger = CalendarIntervalTrigger(**{"timezone": UTC, **kwargs})
    times = take(trigger, len(expected) + 1, after)
    assert [t.isoformat() for t in times[: len(expected)]] == expected
    exhausted = name.startswith(("end-date", "exhausted"))
    assert (len(times) == len(expected)) == exhausted


def test_exhausted_after_year_9999() -> None:
    trigger = CalendarIntervalTrigger(days=1, start_date="9999-12-30", timezone=UTC)
    assert trigger.next(datetime(9999, 12, 31, tzinfo=UTC)) is None


def test_default_start_date_is_today_in_the_zone() -> None:
    before = datetime.now(UTC).date()  # noqa: TID251 - brackets the trigger's clock read
    trigger = CalendarIntervalTrigger(days=1, timezone="UTC")
    after = datetime.now(UTC).date()  # noqa: TID251
    assert trigger.start_date in (before, after)
    # today's 00:00 had passed when the trigger was made: the first fire is tomorrow's
    tomorrow = trigger.start_date + timedelta(days=1)
    assert trigger.next() == datetime.combine(tomorrow, time(), tzinfo=UTC)


def test_default_start_date_keeps_a_fire_time_of_today_that_is_still_ahead() -> None:
    made = datetime.now(UTC)  # noqa: TID251 - brackets the trigger's clock read
    trigger = CalendarIntervalTrigger(days=1, hour=23, minute=59, second=59, timezone="UTC")
    first = trigger.next()
    assert first is not None
    assert first >= made
    assert first - made <= timedelta(days=1)
    assert (first.hour, first.minute, first.second) == (23, 59, 59)
    # the construction time survives a state round trip, so next(None) does too
    assert Trigger.from_state(trigger.to_state()).next() == first


@pytest.mark.parametrize(
    ("start_date", "expected"),
    [
        pytest.param(date(2024, 5, 1), date(2024, 5, 1), id="date"),
        pytest.param("2024-05-01", date(2024, 5, 1), id="iso-date"),
        pytest.param(datetime(2024, 5, 1, 23, 0), date(2024, 5, 1), id="naive-datetime"),
        pytest.param(
            datetime(2024, 5, 1, 23, 0, tzinfo=UTC), date(2024, 5, 2), id="aware-converted"
        ),
    ],
)
def test_start_date_forms(start_date: Any, expected: date) -> None:
    trigger = CalendarIntervalTrigger(days=1, start_date=start_date, timezone=BERLIN)
    assert trigger.start_date == expected


def test_zone_defaults_to_aware_start_date_zone() -> None:
    start = datetime(2024, 5, 1, tzinfo=NEW_YORK)
    assert CalendarIntervalTrigger(days=1, start_date=start).timezone is NEW_YORK


def test_value_semantics_and_text() -> None:
    trigger = CalendarIntervalTrigger(months=1, hour=9, start_date="2024-01-31", timezone=UTC)
    same = CalendarIntervalTrigger(months=1, hour=9, start_date=date(2024, 1, 31), timezone=UTC)
    assert trigger == same
    assert hash(trigger) == hash(same)
    assert str(trigger) == "calendarinterval[months=1, at 09:00:00]"
    assert trigger.describe() == "Every 1 month at 09:00:00 from 2024-01-31"
    weekly = CalendarIntervalTrigger(
        weeks=2, days=1, start_date="2024-01-01", end_date="2024-12-31", timezone=UTC
    )
    assert weekly.describe() == "Every 2 weeks, 1 day at 00:00:00 from 2024-01-01 until 2024-12-31"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param(
            {},
            ValueError,
            "the interval must not be zero; give at least one of years, months, weeks or "
            "days a value above zero",
            id="all-zero",
        ),
        pytest.param(
            {"months": -1}, ValueError, "months must not be negative, got -1", id="negative"
        ),
        pytest.param(
            {"days": 1, "hour": 24},
            ValueError,
            "invalid value 24 for 'hour' (allowed: 0-23)",
            id="hour-24",
        ),
        pytest.param(
            {"days": 1, "minute": 60},
            ValueError,
            "invalid value 60 for 'minute' (allowed: 0-59)",
            id="minute-60",
        ),
        pytest.param(
            {"days": 1, "second": -1},
            ValueError,
            "invalid value -1 for 'second' (allowed: 0-59)",
            id="second-negative",
        ),
        pytest.param(
            {"days": 1.5}, TypeError, "days must be an integer, not float 1.5", id="float"
        ),
        pytest.param(
            {"days": 1, "hour": True},
            TypeError,
            "hour must be an integer, not bool True",
            id="bool",
        ),
        pytest.param(
            {"month": 1},
            TypeError,
            "CalendarIntervalTrigger() got an unexpected keyword argument 'month'; did you "
            "mean 'months'?",
            id="misspelt-month",
        ),
        pytest.param(
            {"days": 1, "start_date": "2024-02-01", "end_date": "2024-01-31"},
            ValueError,
            "end_date '2024-01-31' is before start_date '2024-02-01'",
            id="end-before-start",
        ),
        pytest.param(
            {"days": 1, "start_date": "2024-02-30"},
            ValueError,
            "invalid start_date '2024-02-30': expected an ISO 8601 date or date and time such "
            "as '2019-06-28 18:09:00'",
            id="bad-date",
        ),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        CalendarIntervalTrigger(timezone=UTC, **kwargs)
    assert str(info.value) == message


def _oracle(
    years: int, months: int, days: int, start: date, hour: int, count: int
) -> list[datetime]:
    """Fire times computed the slow, obvious way (UTC, so no DST)."""
    times = []
    for index in range(count):
        total = start.year * 12 + start.month - 1 + index * (years * 12 + months)
        year, month = divmod(total, 12)
        if start.day > calendar.monthrange(year, month + 1)[1]:
            continue
        day = date(year, month + 1, start.day) + timedelta(days=index * days)
        times.append(datetime.combine(day, time(hour), tzinfo=UTC))
    return times


@settings(max_examples=120)
@given(
    years=st.integers(0, 3),
    months=st.integers(0, 14),
    days=st.integers(0, 40),
    start=st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 1, 1)),
    hour=st.integers(0, 23),
    offset=st.integers(min_value=-(10**6), max_value=10**9),
)
def test_property_matches_the_obvious_oracle(
    years: int, months: int, days: int, start: date, hour: int, offset: int
) -> None:
    if not (years or months or days):
        days = 1
    trigger = CalendarIntervalTrigger(
        years=years, months=months, days=days, hour=hour, start_date=start, timezone=UTC
    )
    expected = _oracle(years, months, days, start, hour, 400)
    after = expected[0] + timedelta(seconds=offset)
    later = [t for t in expected if t > after]
    if later and later[0] < expected[-1]:
        assert trigger.next(after) == later[0]
    assert trigger.next() == expected[0]


ZONES = st.sampled_from([BERLIN, NEW_YORK, LORD_HOWE])


@settings(max_examples=120)
@given(
    days=st.integers(1, 3),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 45]),
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 1, 1)),
    zone=ZONES,
    steps=st.integers(1, 400),
)
def test_property_dst_zones(
    days: int, hour: int, minute: int, start: date, zone: ZoneInfo, steps: int
) -> None:
    trigger = CalendarIntervalTrigger(
        days=days, hour=hour, minute=minute, start_date=start, timezone=zone
    )
    after = datetime.combine(start, time(), tzinfo=UTC) + timedelta(hours=steps * 17)
    fire = trigger.next(after)
    assert fire is not None
    assert fire > after
    assert fire == trigger.next(after)  # pure
    assert fire.tzinfo is zone
    # the wall time is the configured one, or later on the same day (after a DST gap)
    assert (fire.date() - start).days % days == 0
    assert fire.time().replace(tzinfo=None) >= time(hour, minute)
    assert fire.fold == 0  # repeated wall times fire at their first occurrence
    # a wall time is never fired twice: the next fire is on a later date
    following = trigger.next(fire)
    assert following is not None
    assert following.date() > fire.date()


def test_cron_calendar_exclusion_skips_weekends() -> None:
    weekdays_only = CalendarIntervalTrigger(
        days=1,
        hour=9,
        start_date="2024-06-07",  # a Friday
        timezone=BERLIN,
        exclude=CronCalendar("* * * * sat,sun"),
    )
    assert [t.date().isoformat() for t in take(weekdays_only, 3)] == [
        "2024-06-07",
        "2024-06-10",
        "2024-06-11",
    ]
