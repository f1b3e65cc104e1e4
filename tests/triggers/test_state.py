"""Versioned, JSON-safe state of triggers and calendars: round trips and bad input."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from horae import DeserializationError
from horae.calendars import Calendar, CronCalendar, DateRangeCalendar, HolidayCalendar
from horae.triggers import (
    AndTrigger,
    CalendarIntervalTrigger,
    DateTrigger,
    IntervalTrigger,
    OrTrigger,
    Trigger,
)

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
FIXED = timezone(timedelta(hours=5, minutes=30))
START = datetime(2024, 1, 1, tzinfo=UTC)

CALENDARS: dict[str, Calendar] = {
    "holiday": HolidayCalendar(["2024-12-24", "2024-12-25"]),
    "holiday-zone": HolidayCalendar(["2024-12-24"], timezone="America/New_York"),
    "range-aware": DateRangeCalendar(START, START + timedelta(days=1)),
    "range-naive": DateRangeCalendar("2024-05-01 12:00", "2024-05-02"),
    "range-zone": DateRangeCalendar("2024-05-01", "2024-05-02", timezone=BERLIN),
    "cron": CronCalendar("* * 24-26 12 *"),
    "cron-zone": CronCalendar("* 0-6 * * *", timezone="Europe/Berlin"),
}

TRIGGERS: dict[str, Trigger] = {
    "interval": IntervalTrigger(seconds=3, start_time=START),
    "interval-all-fields": IntervalTrigger(
        weeks=1,
        days=2,
        hours=3,
        minutes=4,
        seconds=5.5,
        microseconds=6,
        start_time=datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=BERLIN),
        end_time="2030-01-01",
        timezone=BERLIN,
    ),
    "interval-fixed-offset": IntervalTrigger(hours=1, start_time=START, timezone=FIXED),
    "date": DateTrigger(datetime(2019, 6, 28, 18, 9, tzinfo=BERLIN)),
    "calendarinterval": CalendarIntervalTrigger(
        years=1,
        months=2,
        weeks=3,
        days=4,
        hour=5,
        minute=6,
        second=7,
        start_date="2024-02-29",
        end_date="2099-12-31",
        timezone="Australia/Lord_Howe",
    ),
    "calendarinterval-no-end": CalendarIntervalTrigger(
        months=1, start_date="2024-01-31", timezone=UTC
    ),
    "or": OrTrigger([IntervalTrigger(hours=2, start_time=START), DateTrigger(START)]),
    "and": AndTrigger(
        [
            IntervalTrigger(hours=2, start_time=START),
            CalendarIntervalTrigger(days=1, hour=4, start_date="2024-01-01", timezone=UTC),
        ],
        threshold=timedelta(microseconds=1_500_001),
        max_iterations=77,
    ),
    "nested": OrTrigger(
        [
            AndTrigger([DateTrigger(START), DateTrigger(START)], exclude=CALENDARS["cron"]),
            IntervalTrigger(hours=1, start_time=START, exclude=CALENDARS["holiday"]),
        ],
        exclude=CALENDARS["range-naive"],
    ),
    **{
        f"exclude-{name}": IntervalTrigger(minutes=30, start_time=START, exclude=calendar)
        for name, calendar in CALENDARS.items()
    },
}


def _json_round_trip(state: dict[str, Any]) -> Any:
    return json.loads(json.dumps(state, allow_nan=False))


@pytest.mark.parametrize("trigger", list(TRIGGERS.values()), ids=list(TRIGGERS))
def test_trigger_state_round_trip(trigger: Trigger) -> None:
    state = trigger.to_state()
    assert state["type"] == trigger.state_type
    assert state["version"] == 1
    restored = Trigger.from_state(_json_round_trip(state))
    assert restored == trigger
    assert hash(restored) == hash(trigger)
    assert restored.to_state() == state
    for after in (None, START, START + timedelta(days=400)):
        assert restored.next(after) == trigger.next(after)


@pytest.mark.parametrize("trigger", list(TRIGGERS.values()), ids=list(TRIGGERS))
def test_trigger_pickle_and_copy(trigger: Trigger) -> None:
    assert pickle.loads(pickle.dumps(trigger)) == trigger
    assert copy.deepcopy(trigger) == trigger


@pytest.mark.parametrize("calendar", list(CALENDARS.values()), ids=list(CALENDARS))
def test_calendar_state_round_trip(calendar: Calendar) -> None:
    state = calendar.to_state()
    restored = Calendar.from_state(_json_round_trip(state))
    assert restored == calendar
    assert hash(restored) == hash(calendar)
    assert restored.to_state() == state
    assert pickle.loads(pickle.dumps(calendar)) == calendar
    probe = datetime(2024, 12, 25, 3, tzinfo=BERLIN)
    assert restored.excluded_until(probe) == calendar.excluded_until(probe)


def test_states_are_readable() -> None:
    assert TRIGGERS["interval"].to_state() == {
        "type": "interval",
        "version": 1,
        "weeks": 0,
        "days": 0,
        "hours": 0,
        "minutes": 0,
        "seconds": 3,
        "microseconds": 0,
        "start_time": "2024-01-01T00:00:00+00:00",
        "end_time": None,
        "timezone": "UTC",
    }
    assert TRIGGERS["date"].to_state() == {
        "type": "date",
        "version": 1,
        "run_time": "2019-06-28T18:09:00+02:00",
        "timezone": "Europe/Berlin",
    }
    assert CALENDARS["holiday"].to_state() == {
        "type": "holiday",
        "version": 1,
        "dates": ["2024-12-24", "2024-12-25"],
        "timezone": None,
    }
    assert TRIGGERS["exclude-cron"].to_state()["exclude"] == {
        "type": "cron",
        "version": 1,
        "expr": "* * 24-26 12 *",
        "timezone": None,
    }


def _with(state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**state, **changes}


INTERVAL_STATE = TRIGGERS["interval"].to_state()


@pytest.mark.parametrize(
    ("state", "message"),
    [
        pytest.param(
            _with(INTERVAL_STATE, version=2),
            "trigger state version 2 of 'interval' is newer than this version of horae "
            "understands (1); upgrade horae",
            id="newer-version",
        ),
        pytest.param(
            _with(INTERVAL_STATE, start_time=None),
            "invalid 'interval' trigger state: expected an ISO 8601 string, not NoneType None",
            id="missing-start",
        ),
        pytest.param(
            _with(INTERVAL_STATE, start_time="2024-01-01T00:00:00"),
            "invalid 'interval' trigger state: stored datetime '2024-01-01T00:00:00' has no "
            "UTC offset",
            id="naive-start",
        ),
        pytest.param(
            {k: v for k, v in INTERVAL_STATE.items() if k != "seconds"},
            "invalid 'interval' trigger state: 'seconds'",
            id="missing-field",
        ),
        pytest.param(
            _with(TRIGGERS["date"].to_state(), run_time=None),
            "invalid 'date' trigger state: expected an ISO 8601 string, not NoneType None",
            id="date-without-run-time",
        ),
        pytest.param(
            _with(TRIGGERS["calendarinterval"].to_state(), start_date=20240229),
            "invalid 'calendarinterval' trigger state: start_date must be an ISO 8601 date, "
            "not 20240229",
            id="calendarinterval-bad-date",
        ),
        pytest.param(
            _with(TRIGGERS["or"].to_state(), triggers={"type": "date"}),
            "invalid 'or' trigger state: 'triggers' must be a list of trigger states, not "
            "{'type': 'date'}",
            id="or-children-not-a-list",
        ),
        pytest.param(
            _with(TRIGGERS["and"].to_state(), threshold_microseconds=1.5),
            "invalid 'and' trigger state: threshold_microseconds must be an integer, not 1.5",
            id="and-float-threshold",
        ),
        pytest.param(
            _with(TRIGGERS["or"].to_state(), triggers=[{"type": "lunar", "version": 1}]),
            "unknown trigger type 'lunar' in stored state (known: and, calendarinterval, cron, "
            "date, interval, or)",
            id="unknown-child-type",
        ),
        pytest.param(
            _with(
                INTERVAL_STATE,
                exclude={"type": "holiday", "version": 1, "dates": 5, "timezone": None},
            ),
            "invalid 'holiday' calendar state: dates must be an iterable of dates or ISO 8601 "
            "strings, such as ['2024-12-25', '2024-12-26'], not int 5",
            id="bad-calendar",
        ),
    ],
)
def test_bad_states_raise_deserialization_error(state: dict[str, Any], message: str) -> None:
    with pytest.raises(DeserializationError) as info:
        Trigger.from_state(state)
    assert str(info.value) == message


AMOUNTS = st.integers(min_value=0, max_value=50)
ZONES = st.sampled_from([UTC, BERLIN, FIXED, ZoneInfo("America/New_York")])


@settings(max_examples=100)
@given(
    amounts=st.lists(AMOUNTS, min_size=6, max_size=6).filter(any),
    start=st.datetimes(
        min_value=datetime(1980, 1, 1), max_value=datetime(2080, 1, 1), timezones=ZONES
    ),
    zone=ZONES,
)
def test_property_interval_round_trip(amounts: list[int], start: datetime, zone: Any) -> None:
    weeks, days, hours, minutes, seconds, microseconds = amounts
    trigger = IntervalTrigger(
        weeks=weeks,
        days=days,
        hours=hours,
        minutes=minutes,
        seconds=seconds,
        microseconds=microseconds,
        start_time=start,
        timezone=zone,
    )
    restored = Trigger.from_state(_json_round_trip(trigger.to_state()))
    assert restored == trigger
    assert restored.next(start) == trigger.next(start)


@settings(max_examples=100)
@given(
    units=st.lists(st.integers(0, 5), min_size=4, max_size=4).filter(any),
    clock=st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)),
    start=st.dates(min_value=date(1980, 1, 1), max_value=date(2080, 1, 1)),
    zone=ZONES,
)
def test_property_calendarinterval_round_trip(
    units: list[int], clock: tuple[int, int, int], start: date, zone: Any
) -> None:
    years, months, weeks, days = units
    hour, minute, second = clock
    trigger = CalendarIntervalTrigger(
        years=years,
        months=months,
        weeks=weeks,
        days=days,
        hour=hour,
        minute=minute,
        second=second,
        start_date=start,
        timezone=zone,
    )
    restored = Trigger.from_state(_json_round_trip(trigger.to_state()))
    assert restored == trigger
    assert restored.next() == trigger.next()
