"""Calendars: HolidayCalendar, DateRangeCalendar, CronCalendar, and triggers skipping them."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from horae.calendars import Calendar, CronCalendar, DateRangeCalendar, HolidayCalendar
from horae.triggers import (
    CalendarIntervalTrigger,
    CronTrigger,
    DateTrigger,
    IntervalTrigger,
    OrTrigger,
    Trigger,
)

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SANTIAGO = ZoneInfo("America/Santiago")  # DST changes at midnight
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


CHRISTMAS = HolidayCalendar(["2024-12-24", date(2024, 12, 25), "2024-12-26", "2025-01-01"])

EXCLUDED_UNTIL: dict[str, tuple[Calendar, datetime, str | None]] = {
    "holiday-not-excluded": (CHRISTMAS, datetime(2024, 12, 23, 23, 59, tzinfo=BERLIN), None),
    "holiday-run-ends-after-the-last-day": (
        CHRISTMAS,
        datetime(2024, 12, 24, 0, 0, tzinfo=BERLIN),
        "2024-12-26T23:00:00+00:00",  # midnight of the 27th in Berlin, in UTC
    ),
    "holiday-single-day": (
        CHRISTMAS,
        datetime(2025, 1, 1, 18, tzinfo=NEW_YORK),
        "2025-01-02T05:00:00+00:00",
    ),
    "holiday-read-in-the-checked-times-zone": (
        CHRISTMAS,
        datetime(2024, 12, 23, 23, 30, tzinfo=UTC),  # 00:30 on the 24th in Berlin
        None,
    ),
    "holiday-with-its-own-zone": (
        HolidayCalendar(["2024-12-24"], timezone="Europe/Berlin"),
        datetime(2024, 12, 23, 23, 30, tzinfo=UTC),
        "2024-12-24T23:00:00+00:00",
    ),
    "holiday-midnight-in-a-dst-gap": (
        # Santiago skips 00:00-01:00 on 2024-09-08: the 8th begins at 01:00 -03:00
        HolidayCalendar(["2024-09-07"]),
        datetime(2024, 9, 7, 12, tzinfo=SANTIAGO),
        "2024-09-08T04:00:00+00:00",
    ),
    "range-aware-inside": (
        DateRangeCalendar(datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)),
        datetime(2024, 5, 1, 3, tzinfo=BERLIN),
        "2024-05-02T00:00:00+00:00",
    ),
    "range-start-is-included": (
        DateRangeCalendar(datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)),
        datetime(2024, 5, 1, tzinfo=UTC),
        "2024-05-02T00:00:00+00:00",
    ),
    "range-end-is-excluded": (
        DateRangeCalendar(datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)),
        datetime(2024, 5, 2, tzinfo=UTC),
        None,
    ),
    "range-naive-read-in-each-times-zone": (
        DateRangeCalendar("2024-05-01", "2024-05-02"),
        datetime(2024, 5, 1, 23, tzinfo=NEW_YORK),
        "2024-05-02T04:00:00+00:00",
    ),
    "range-naive-with-zone": (
        DateRangeCalendar("2024-05-01", "2024-05-02", timezone="Europe/Berlin"),
        datetime(2024, 5, 1, 23, tzinfo=NEW_YORK),  # already the 2nd in Berlin
        None,
    ),
    "range-naive-in-the-second-occurrence-of-a-fold": (
        # 01:30 EST is the second 01:30 of the New York fall-back night; the span's end,
        # 01:45, is taken at its second occurrence, so it is after the checked time.
        DateRangeCalendar("2024-11-03 01:00", "2024-11-03 01:45"),
        datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK),
        "2024-11-03T06:45:00+00:00",
    ),
    "cron-whole-days": (
        CronCalendar("* * 24-26 12 *"),
        datetime(2024, 12, 24, 10, 15, tzinfo=BERLIN),
        "2024-12-26T23:00:00+00:00",
    ),
    "cron-not-matching": (
        CronCalendar("* * 24-26 12 *"),
        datetime(2024, 12, 27, 0, 0, tzinfo=BERLIN),
        None,
    ),
    "cron-weekend": (
        CronCalendar("* * * * sat,sun"),
        datetime(2024, 6, 8, 9, tzinfo=UTC),  # Saturday
        "2024-06-10T00:00:00+00:00",
    ),
    "cron-hours": (
        CronCalendar("* 9-17 * * mon-fri", timezone="America/New_York"),
        datetime(2024, 6, 10, 14, tzinfo=UTC),  # 10:00 in New York
        "2024-06-10T22:00:00+00:00",  # 18:00 in New York
    ),
    "cron-minutes": (
        CronCalendar("0-29 * * * *"),
        datetime(2024, 6, 10, 14, 12, 30, tzinfo=UTC),
        "2024-06-10T14:30:00+00:00",
    ),
    "cron-minutes-running-into-the-next-hour": (
        CronCalendar("50-59,0-9 * * * *"),
        datetime(2024, 6, 10, 14, 55, tzinfo=UTC),
        "2024-06-10T15:10:00+00:00",
    ),
    "cron-macro-is-one-minute": (
        CronCalendar("@daily"),
        datetime(2024, 6, 10, 0, 0, 59, tzinfo=UTC),
        "2024-06-10T00:01:00+00:00",
    ),
    "cron-hours-across-a-dst-gap": (
        # 00:00-02:59 wall time on the Berlin spring-forward night is only 2 real hours
        CronCalendar("* 0-2 * * *"),
        datetime(2024, 3, 31, 0, 30, tzinfo=BERLIN),
        "2024-03-31T01:00:00+00:00",  # 03:00 CEST
    ),
    "cron-hours-across-a-dst-fold": (
        # on the fall-back night hours 0-2 are 4 real hours
        CronCalendar("* 0-2 * * *"),
        datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=BERLIN),
        "2024-10-27T02:00:00+00:00",  # 03:00 CET
    ),
}


@pytest.mark.parametrize(
    ("calendar", "dt", "expected"), list(EXCLUDED_UNTIL.values()), ids=list(EXCLUDED_UNTIL)
)
def test_excluded_until(calendar: Calendar, dt: datetime, expected: str | None) -> None:
    until = calendar.excluded_until(dt)
    assert iso(until) == expected
    assert (dt in calendar) == (expected is not None)
    if until is not None:
        assert until.tzinfo is UTC
        assert until > dt


def test_contains_ignores_non_datetimes() -> None:
    assert "2024-12-25" not in CHRISTMAS
    assert date(2024, 12, 25) not in CHRISTMAS


@pytest.mark.parametrize(
    "calendar",
    [
        pytest.param(CHRISTMAS, id="holiday"),
        pytest.param(DateRangeCalendar("2024-01-01", "2024-01-02"), id="range"),
        pytest.param(CronCalendar("* * * * sun"), id="cron"),
    ],
)
def test_naive_datetimes_are_rejected(calendar: Calendar) -> None:
    with pytest.raises(ValueError, match="dt must be a timezone-aware datetime"):
        calendar.excluded_until(datetime(2024, 1, 1))


def test_value_semantics() -> None:
    assert HolidayCalendar(["2024-12-25", "2024-12-24"]) == HolidayCalendar(
        [date(2024, 12, 24), date(2024, 12, 25), "2024-12-25"]
    )
    assert hash(CHRISTMAS) == hash(HolidayCalendar(list(CHRISTMAS.dates)))
    assert CHRISTMAS.dates[0] == date(2024, 12, 24)
    assert DateRangeCalendar(
        datetime(2024, 1, 1, 1, tzinfo=BERLIN), datetime(2024, 1, 2, tzinfo=UTC)
    ) == DateRangeCalendar("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
    assert CronCalendar("* * 24-26 12 *") == CronCalendar(" *  * 24-26 12 * ")
    assert hash(CronCalendar("* * * * sun")) == hash(CronCalendar("* * * * sun"))
    assert CronCalendar("* * * * sun") != CronCalendar("* * * * sun", timezone="UTC")


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        pytest.param(
            lambda: HolidayCalendar("2024-12-25"),
            TypeError,
            "dates must be an iterable of dates or ISO 8601 strings, such as ['2024-12-25', "
            "'2024-12-26'], not str '2024-12-25'",
            id="holiday-single-string",
        ),
        pytest.param(
            lambda: HolidayCalendar(["2024-12-25", "Dec 26"]),
            ValueError,
            "invalid date 'Dec 26' at position 1 of dates; use the ISO 8601 form "
            "'YYYY-MM-DD', e.g. '2024-12-25'",
            id="holiday-bad-string",
        ),
        pytest.param(
            lambda: HolidayCalendar([20241225]),  # type: ignore[list-item]
            TypeError,
            "dates must hold dates or ISO 8601 strings, not int 20241225 (at position 0)",
            id="holiday-int",
        ),
        pytest.param(
            lambda: HolidayCalendar(["2024-12-25"], tz="UTC"),  # type: ignore[call-arg]
            TypeError,
            "HolidayCalendar() got an unexpected keyword argument 'tz' (accepted: dates, "
            "timezone)",
            id="holiday-unknown-argument",
        ),
        pytest.param(
            lambda: DateRangeCalendar("2024-01-02", "2024-01-01"),
            ValueError,
            "end '2024-01-01T00:00:00' must be later than start '2024-01-02T00:00:00'",
            id="range-end-before-start",
        ),
        pytest.param(
            lambda: DateRangeCalendar("2024-01-01", "2024-01-01"),
            ValueError,
            "end '2024-01-01T00:00:00' must be later than start '2024-01-01T00:00:00'",
            id="range-empty",
        ),
        pytest.param(
            lambda: DateRangeCalendar("2024-01-01", datetime(2024, 1, 2, tzinfo=UTC)),
            ValueError,
            "start '2024-01-01T00:00:00' and end '2024-01-02T00:00:00+00:00' must both be "
            "naive or both timezone-aware; pass timezone= to read naive values in a zone",
            id="range-mixed",
        ),
        pytest.param(
            lambda: DateRangeCalendar("soon", "later"),
            ValueError,
            "invalid start 'soon': expected an ISO 8601 date or date and time such as "
            "'2024-12-24 18:00:00'",
            id="range-bad-string",
        ),
        pytest.param(
            lambda: DateRangeCalendar(0, 1),  # type: ignore[arg-type]
            TypeError,
            "start must be a datetime, a date or an ISO 8601 string, not int 0",
            id="range-int",
        ),
        pytest.param(
            lambda: DateRangeCalendar("2024-01-01", "2024-01-02", timezone="Nowhere/Town"),
            ValueError,
            "unknown time zone 'Nowhere/Town' for 'timezone'; use an IANA key such as "
            "'Europe/Berlin' or 'UTC'",
            id="range-bad-zone",
        ),
        pytest.param(
            lambda: CronCalendar("0 * * * * *"),
            ValueError,
            "CronCalendar needs a crontab expression with 5 fields (minute hour day month "
            "day_of_week) or a macro such as '@daily'; got 6 fields in '0 * * * * *'",
            id="cron-six-fields",
        ),
        pytest.param(
            lambda: CronCalendar(None),  # type: ignore[arg-type]
            TypeError,
            "expr must be a crontab expression string, not NoneType None",
            id="cron-not-a-string",
        ),
        pytest.param(
            lambda: CronCalendar("* * * * *", timzone="UTC"),  # type: ignore[call-arg]
            TypeError,
            "CronCalendar() got an unexpected keyword argument 'timzone'; did you mean "
            "'timezone'?",
            id="cron-misspelt-timezone",
        ),
    ],
)
def test_invalid_arguments(make: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message


def test_cron_calendar_invalid_expression_names_the_field() -> None:
    with pytest.raises(ValueError, match="minute") as info:
        CronCalendar("61 * * * *")
    assert "'61'" in str(info.value)


@pytest.mark.parametrize(
    "trigger",
    [
        pytest.param(
            IntervalTrigger(
                days=1, start_time="2024-12-23 09:00", timezone=BERLIN, exclude=CHRISTMAS
            ),
            id="interval",
        ),
        pytest.param(
            CalendarIntervalTrigger(
                days=1, hour=9, start_date="2024-12-23", timezone=BERLIN, exclude=CHRISTMAS
            ),
            id="calendarinterval",
        ),
        pytest.param(
            CronTrigger.from_crontab(
                "0 9 * * *",
                timezone=BERLIN,
                start_time="2024-12-23 00:00",
                exclude=CHRISTMAS,
            ),
            id="cron",
        ),
        pytest.param(
            OrTrigger(
                [IntervalTrigger(days=1, start_time="2024-12-23 09:00", timezone=BERLIN)],
                exclude=CHRISTMAS,
            ),
            id="or",
        ),
    ],
)
def test_every_trigger_kind_skips_excluded_days(trigger: Trigger) -> None:
    first = trigger.next()
    assert first is not None
    assert first.isoformat() == "2024-12-23T09:00:00+01:00"
    assert iso(trigger.next(first)) == "2024-12-27T09:00:00+01:00"


def test_long_cron_span_is_reported_in_parts() -> None:
    # 10,000 days of weekdays-and-weekends: every day matches, so one call stops after
    # 10,000 steps and the trigger asks again from there.
    everything = CronCalendar("* * * * 0-6")
    start = datetime(2000, 1, 1, tzinfo=UTC)
    until = everything.excluded_until(start)
    assert until == start + timedelta(days=1 + 10_000)  # the rest of the day, then the steps
    assert until in everything


# ---- triggers never return an excluded time -------------------------------------------
# Each calendar leaves some time of every kind of trigger free: a trigger whose every
# fire time is excluded only gives up after Trigger.next's skip limit, which is slow.
CALENDARS = st.sampled_from(
    [
        CronCalendar("* * * * sat,sun"),
        CronCalendar("* 0-8,18-23 * * mon-fri", timezone="Europe/Berlin"),
        CronCalendar("*/7 * * 2,3 *"),
        CronCalendar("* * 1 * *"),
        HolidayCalendar([date(2024, 1, 1) + timedelta(days=3 * i) for i in range(200)]),
        DateRangeCalendar("2024-02-01 12:00", "2024-03-15 08:00"),
        DateRangeCalendar(
            datetime(2024, 3, 31, 0, 30, tzinfo=BERLIN),
            datetime(2024, 3, 31, 3, 30, tzinfo=BERLIN),
        ),
    ]
)
ZONES = st.sampled_from([UTC, BERLIN, NEW_YORK, LORD_HOWE])


def _triggers(exclude: Calendar, zone: Any, minutes: int, day: int) -> list[Trigger]:
    start = datetime(2024, 1, 1, tzinfo=zone) + timedelta(minutes=minutes)
    return [
        IntervalTrigger(minutes=minutes % 300 + 1, start_time=start, exclude=exclude),
        CalendarIntervalTrigger(
            days=day % 4 + 1,
            hour=minutes % 24,
            minute=minutes % 60,
            start_date="2024-01-01",
            timezone=zone,
            exclude=exclude,
        ),
        DateTrigger(start + timedelta(days=day), exclude=exclude),
        CronTrigger.from_crontab(
            f"{minutes % 60} {day % 24} * * *", timezone=zone, exclude=exclude
        ),
        OrTrigger([IntervalTrigger(hours=day % 30 + 1, start_time=start)], exclude=exclude),
    ]


@settings(max_examples=100)
@given(
    exclude=CALENDARS,
    zone=ZONES,
    minutes=st.integers(0, 10_000),
    day=st.integers(0, 200),
    after_hours=st.integers(-100, 24 * 200),
)
def test_property_excluded_times_are_never_returned(
    exclude: Calendar, zone: Any, minutes: int, day: int, after_hours: int
) -> None:
    after = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=after_hours)
    for trigger in _triggers(exclude, zone, minutes, day):
        fire = trigger.next(after)
        assert fire == trigger.next(after)
        if fire is not None:
            assert fire > after
            assert fire not in exclude


@settings(max_examples=100)
@given(
    calendar=CALENDARS,
    dt=st.datetimes(
        min_value=datetime(2023, 12, 1), max_value=datetime(2024, 12, 31), timezones=ZONES
    ),
    fractions=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=5),
)
def test_property_excluded_span_is_excluded_throughout(
    calendar: Calendar, dt: datetime, fractions: list[float]
) -> None:
    until = calendar.excluded_until(dt)
    if until is None:
        return
    assert until > dt
    # the span ends at an allowed time (read in the same zone as dt) ...
    assert until.astimezone(dt.tzinfo) not in calendar
    # ... and everything before it is excluded
    span = (until - dt.astimezone(UTC)) // timedelta(microseconds=1)
    for fraction in fractions:
        # whole microseconds strictly inside the span (float products can round up to it)
        offset = timedelta(microseconds=min(int(span * fraction), span - 1))
        inside = (dt.astimezone(UTC) + offset).astimezone(dt.tzinfo)
        assert inside in calendar
