"""CronTrigger as a value: describe(), str(), repr(), equality and hashing, the stored
state, pickle and copy."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
import tzlocal

from horae import DeserializationError
from horae.calendars import HolidayCalendar
from horae.triggers import CronTrigger, Trigger

UTC = timezone.utc


def crontab(expr: str) -> Callable[[], CronTrigger]:
    return lambda: CronTrigger.from_crontab(expr, timezone=UTC)


def keywords(**kwargs: Any) -> Callable[[], CronTrigger]:
    return lambda: CronTrigger(timezone=UTC, **kwargs)


DESCRIPTIONS: dict[str, tuple[Callable[[], CronTrigger], str]] = {
    "every-2nd-hour": (keywords(hour="*/2", minute=1), "At minute 1 past every 2nd hour"),
    "every-minute": (crontab("* * * * *"), "At every minute"),
    "no-fields": (keywords(), "At every minute"),
    "every-5th-minute": (crontab("*/5 * * * *"), "At every 5th minute"),
    "hourly": (crontab("@hourly"), "At minute 0 past every hour"),
    "minute-list": (crontab("0,30 * * * *"), "At minutes 0 and 30 past every hour"),
    "minute-range": (crontab("0-10 * * * *"), "At every minute from 0 through 10"),
    "daily-at": (crontab("0 9 * * *"), "At 09:00"),
    "twice-a-day": (crontab("30 9,17 * * *"), "At 09:30 and 17:30"),
    "weekdays": (crontab("0 9 * * 1-5"), "At 09:00 on Monday through Friday"),
    "weekday-list": (
        crontab("0 9 * * mon,wed,fri"),
        "At 09:00 on Monday, Wednesday and Friday",
    ),
    "keyword-weekdays": (
        keywords(day_of_week="0-4", hour=9),
        "At 09:00 on Monday through Friday",
    ),
    "crontab-sunday": (crontab("0 0 * * 0,7"), "At 00:00 on Sunday"),
    "every-2nd-weekday": (crontab("0 0 * * */2"), "At 00:00 on every 2nd day-of-week"),
    "office-hours": (
        crontab("*/15 9-17 * * *"),
        "At every 15th minute past every hour from 9 through 17",
    ),
    "stepped-hours-range": (
        crontab("0 8-18/2 * * *"),
        "At minute 0 past every 2nd hour from 8 through 18",
    ),
    "day-of-month": (crontab("0 0 1 * *"), "At 00:00 on day-of-month 1"),
    "days-of-month": (crontab("0 0 1,15 * *"), "At 00:00 on days-of-month 1 and 15"),
    "last-day": (crontab("0 0 L * *"), "At 00:00 on the last day of the month"),
    "last-day-minus": (
        crontab("0 0 L-2 * *"),
        "At 00:00 on the last day of the month minus 2 days",
    ),
    "nearest-weekday": (
        crontab("0 0 15W * *"),
        "At 00:00 on the weekday nearest day 15 of the month",
    ),
    "last-weekday": (crontab("0 0 LW * *"), "At 00:00 on the last weekday of the month"),
    "nth-weekday": (crontab("0 0 * * 5#3"), "At 00:00 on the 3rd Friday of the month"),
    "last-friday": (crontab("0 0 * * 5L"), "At 00:00 on the last Friday of the month"),
    "aps3-day-nth": (keywords(day="1st mon"), "At 00:00 on the 1st Monday of the month"),
    "or-rule": (crontab("0 0 13 * 5"), "At 00:00 on day-of-month 13 or on Friday"),
    "and-rule": (
        keywords(day=13, day_of_week="fri"),
        "At 00:00 on day-of-month 13 if it is Friday",
    ),
    "yearly": (crontab("@yearly"), "At 00:00 on day-of-month 1 in January"),
    "quarterly": (crontab("0 0 1 */3 *"), "At 00:00 on day-of-month 1 in every 3rd month"),
    "month-range": (
        crontab("0 0 1 jan-mar *"),
        "At 00:00 on day-of-month 1 in January through March",
    ),
    "year": (keywords(year=2030), "At 00:00 on day-of-month 1 in January in 2030"),
    "years-stepped": (
        crontab("0 0 0 1 1 * */4"),
        "At 00:00 on day-of-month 1 in January in every 4th year from 1970",
    ),
    "iso-weeks": (keywords(week="1-10", hour=8), "At 08:00 in every ISO week from 1 through 10"),
    "every-10th-second": (keywords(second="*/10"), "At every 10th second"),
    "second-30": (keywords(second=30), "At second 30 of every minute"),
    "seconds-and-minute": (
        crontab("*/10 5 * * * *"),
        "At every 10th second of minute 5 past every hour",
    ),
    "time-with-seconds": (crontab("30 5 9 * * *"), "At 09:05:30"),
    "many-hours": (
        crontab("0 0,2,4,6,8,10,12 * * *"),
        "At minute 0 past hours 0, 2, 4, 6, 8, 10 and 12",
    ),
}


@pytest.mark.parametrize(("factory", "sentence"), DESCRIPTIONS.values(), ids=DESCRIPTIONS)
def test_describe(factory: Callable[[], CronTrigger], sentence: str) -> None:
    assert factory().describe() == sentence


TEXTS: dict[str, tuple[Callable[[], CronTrigger], str]] = {
    "macro-resolved": (crontab("@daily"), "0 0 * * *"),
    "five-fields": (crontab("*/5 9-17 * * 1-5"), "*/5 9-17 * * 1-5"),
    "seconds-kept": (crontab("30 0 9 * * *"), "30 0 9 * * *"),
    "zero-seconds-dropped": (crontab("0 0 9 * * *"), "0 9 * * *"),
    "year-kept": (crontab("0 0 0 1 1 * 2030"), "0 0 0 1 1 * 2030"),
    "names-lower-case": (crontab("0 9 * JAN-Mar MON-FRI"), "0 9 * jan-mar mon-fri"),
    "cron-letters-upper-case": (crontab("0 0 l * 5l"), "0 0 L * 5L"),
    "question-mark-is-star": (crontab("0 0 ? * mon"), "0 0 * * mon"),
    "keyword-form": (keywords(hour="*/2", minute=1), "0 1 */2 * * *"),
    "keyword-weekday-numbers-as-names": (keywords(day_of_week="0-4", hour=9), "0 0 9 * * mon-fri"),
    "keyword-weekday-step-as-names": (keywords(day_of_week="*/2"), "0 0 0 * * mon,wed,fri,sun"),
    "keyword-nth-weekday": (keywords(day_of_week="2nd fri,last mon"), "0 0 0 * * fri#2,monL"),
    "keyword-year-and-week": (keywords(year=2030, week=5), "0 0 0 * * * 2030 week=5"),
}


@pytest.mark.parametrize(("factory", "text"), TEXTS.values(), ids=TEXTS)
def test_str(factory: Callable[[], CronTrigger], text: str) -> None:
    assert str(factory()) == text


REPRS: dict[str, tuple[Callable[[], CronTrigger], str]] = {
    "keyword": (
        keywords(hour="*/2", minute=1),
        "CronTrigger(hour='*/2', minute='1', second='0', timezone='UTC')",
    ),
    "keyword-star-second": (keywords(second="*"), "CronTrigger(second='*', timezone='UTC')"),
    "crontab": (
        lambda: CronTrigger.from_crontab("*/5 * * * *", timezone="Europe/Berlin"),
        "CronTrigger.from_crontab('*/5 * * * *', timezone='Europe/Berlin')",
    ),
    "with-times": (
        lambda: CronTrigger(
            hour=9, timezone=UTC, start_time="2024-01-01", end_time="2024-12-31 12:00"
        ),
        "CronTrigger(hour='9', minute='0', second='0', timezone='UTC', "
        "start_time='2024-01-01T00:00:00+00:00', end_time='2024-12-31T12:00:00+00:00')",
    ),
}


@pytest.mark.parametrize(("factory", "text"), REPRS.values(), ids=REPRS)
def test_repr(factory: Callable[[], CronTrigger], text: str) -> None:
    assert repr(factory()) == text


def test_repr_of_the_keyword_form_rebuilds_an_equal_trigger() -> None:
    trigger = CronTrigger(month=6, day="last fri", timezone=UTC)
    assert repr(trigger) == (
        "CronTrigger(month='6', day='last fri', hour='0', minute='0', second='0', timezone='UTC')"
    )
    assert (
        CronTrigger(month="6", day="last fri", hour="0", minute="0", second="0", timezone="UTC")
        == trigger
    )


def test_fields_property() -> None:
    assert CronTrigger.from_crontab("1 2 3 4 5", timezone=UTC).fields == {
        "year": "*",
        "month": "4",
        "day": "3",
        "week": "*",
        "day_of_week": "5",
        "hour": "2",
        "minute": "1",
        "second": "0",
    }


# ---- equality ---------------------------------------------------------------------------

EQUAL: dict[str, tuple[Callable[[], CronTrigger], Callable[[], CronTrigger]]] = {
    "macro-and-expression": (crontab("@daily"), crontab("0 0 * * *")),
    "five-and-six-fields": (crontab("0 0 * * *"), crontab("0 0 0 * * *")),
    "int-and-str": (keywords(hour=9), keywords(hour="9")),
    "case": (keywords(day_of_week="MON"), keywords(day_of_week="mon")),
    "question-mark": (crontab("0 0 ? * 1"), crontab("0 0 * * 1")),
    "same-instant-in-other-zones": (
        lambda: CronTrigger(hour=1, timezone=UTC, start_time="2024-01-01T01:00:00+01:00"),
        lambda: CronTrigger(hour=1, timezone=UTC, start_time="2024-01-01T00:00:00+00:00"),
    ),
    "zoneinfo-utc-and-timezone-utc": (
        lambda: CronTrigger(hour=1, timezone=ZoneInfo("UTC")),
        lambda: CronTrigger(hour=1, timezone=UTC),
    ),
}


@pytest.mark.parametrize(("first", "second"), EQUAL.values(), ids=EQUAL)
def test_equal(first: Callable[[], CronTrigger], second: Callable[[], CronTrigger]) -> None:
    assert first() == second()
    assert hash(first()) == hash(second())


UNEQUAL: dict[str, tuple[Callable[[], CronTrigger], Callable[[], CronTrigger]]] = {
    "fields": (crontab("0 0 * * *"), crontab("0 1 * * *")),
    "keyword-and-crontab-syntax": (keywords(minute="*/5"), crontab("*/5 * * * *")),
    "zones": (
        lambda: CronTrigger(hour=1, timezone="Europe/Berlin"),
        lambda: CronTrigger(hour=1, timezone="Europe/Paris"),
    ),
    "end-times": (
        lambda: CronTrigger(hour=1, timezone=UTC, end_time="2030-01-01"),
        lambda: CronTrigger(hour=1, timezone=UTC),
    ),
    "exclude": (
        lambda: CronTrigger(hour=1, timezone=UTC, exclude=HolidayCalendar(["2024-12-25"])),
        lambda: CronTrigger(hour=1, timezone=UTC),
    ),
}


@pytest.mark.parametrize(("first", "second"), UNEQUAL.values(), ids=UNEQUAL)
def test_unequal(first: Callable[[], CronTrigger], second: Callable[[], CronTrigger]) -> None:
    assert first() != second()


def test_the_moment_of_construction_is_not_part_of_the_value() -> None:
    first = CronTrigger(hour=9, timezone=UTC)
    second = CronTrigger(hour=9, timezone=UTC)
    assert first == second
    assert len({first, second}) == 1


def test_frozen() -> None:
    trigger = CronTrigger(hour=9, timezone=UTC)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        trigger.hour = "10"  # type: ignore[misc]


def test_default_zone_is_the_local_zone() -> None:
    local = tzlocal.get_localzone_name() or "UTC"
    zone = CronTrigger(hour=9).timezone
    assert getattr(zone, "key", "UTC") == local


def test_default_zone_from_an_aware_start_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    trigger = CronTrigger(hour=9, start_time=datetime(2024, 1, 1, tzinfo=berlin))
    assert trigger.timezone is berlin


# ---- state, pickle, copy ----------------------------------------------------------------

ROUND_TRIPS: dict[str, Callable[[], CronTrigger]] = {
    "keyword": keywords(hour="*/2", minute=1),
    "keyword-specials": keywords(day="L-3,15W,LW,2nd mon", day_of_week="last fri,mon#1"),
    "crontab": lambda: CronTrigger.from_crontab("0 9 * * MON-FRI", timezone="Europe/Berlin"),
    "crontab-seven-fields": crontab("*/10 0 0 L 2 5L 2025-2050/5"),
    "hash": lambda: CronTrigger.from_crontab("H H * * *", seed="job-7", timezone=UTC),
    "start-and-end": lambda: CronTrigger(
        hour=3, timezone="America/New_York", start_time="2024-11-03 01:30", end_time="2030-01-01"
    ),
    "fixed-offset": lambda: CronTrigger(hour=3, timezone=timezone(timedelta(hours=5, minutes=30))),
    "exclude": lambda: CronTrigger(hour=3, timezone=UTC, exclude=HolidayCalendar(["2024-12-25"])),
}


@pytest.mark.parametrize("factory", ROUND_TRIPS.values(), ids=ROUND_TRIPS)
def test_state_round_trip(factory: Callable[[], CronTrigger]) -> None:
    trigger = factory()
    state = json.loads(json.dumps(trigger.to_state()))
    restored = Trigger.from_state(state)
    assert restored == trigger
    assert hash(restored) == hash(trigger)
    assert str(restored) == str(trigger)
    after = datetime(2024, 5, 5, 12, tzinfo=UTC)
    assert take_utc(restored, after) == take_utc(trigger, after)
    assert restored.next(None) == trigger.next(None)


@pytest.mark.parametrize("factory", ROUND_TRIPS.values(), ids=ROUND_TRIPS)
def test_pickle_and_copy(factory: Callable[[], CronTrigger]) -> None:
    trigger = factory()
    after = datetime(2024, 5, 5, 12, tzinfo=UTC)
    for other in (
        pickle.loads(pickle.dumps(trigger)),
        copy.copy(trigger),
        copy.deepcopy(trigger),
    ):
        assert other == trigger
        assert take_utc(other, after) == take_utc(trigger, after)
        assert other.next(None) == trigger.next(None)


def take_utc(trigger: Trigger, after: datetime, count: int = 5) -> list[datetime]:
    fires: list[datetime] = []
    current = trigger.next(after)
    while current is not None and len(fires) < count:
        fires.append(current.astimezone(UTC))
        current = trigger.next(current)
    return fires


def test_state_format() -> None:
    trigger = CronTrigger.from_crontab(
        "0 9 * * mon-fri", timezone="Europe/Berlin", start_time="2024-01-01"
    )
    state = trigger.to_state()
    created = state.pop("created_time")
    assert isinstance(created, str)
    assert state == {
        "type": "cron",
        "version": 1,
        "syntax": "crontab",
        "fields": {
            "year": "*",
            "month": "*",
            "day": "*",
            "week": "*",
            "day_of_week": "mon-fri",
            "hour": "9",
            "minute": "0",
            "second": "0",
        },
        "timezone": "Europe/Berlin",
        "start_time": "2024-01-01T00:00:00+01:00",
        "end_time": None,
    }


def test_state_without_created_time_still_loads() -> None:
    state = CronTrigger(hour=9, timezone=UTC, start_time="2024-01-01").to_state()
    del state["created_time"]
    restored = Trigger.from_state(state)
    assert restored.next(None) == datetime(2024, 1, 1, 9, tzinfo=UTC)


BAD_STATES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown-syntax": (
        {"syntax": "quartz"},
        "invalid 'cron' trigger state: unknown cron syntax 'quartz' (known: keyword, crontab)",
    ),
    "bad-field": (
        {"fields": {"minute": "61"}},
        "invalid 'cron' trigger state: invalid value '61' for field 'minute' (allowed: 0-59)",
    ),
    "missing-field": (
        {"fields": {"minute": None}},
        "invalid 'cron' trigger state: field 'minute' must be a str or an int, not NoneType None",
    ),
    "bad-zone": (
        {"timezone": "Nowhere/Special"},
        "invalid 'cron' trigger state: unknown time zone 'Nowhere/Special' for 'timezone'; use "
        "an IANA key such as 'Europe/Berlin' or 'UTC'",
    ),
}


@pytest.mark.parametrize(("change", "message"), BAD_STATES.values(), ids=BAD_STATES)
def test_bad_states(change: dict[str, Any], message: str) -> None:
    state = CronTrigger(hour=9, timezone=UTC).to_state()
    for key, value in change.items():
        if isinstance(value, dict):
            state[key] = {**state[key], **value}
        else:
            state[key] = value
    with pytest.raises(DeserializationError) as info:
        Trigger.from_state(state)
    assert str(info.value) == message
