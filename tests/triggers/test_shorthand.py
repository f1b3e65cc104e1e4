"""build_trigger: the shorthand forms that add_schedule accepts for its trigger."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from horae.triggers import (
    CalendarIntervalTrigger,
    CronTrigger,
    DateTrigger,
    IntervalTrigger,
    Trigger,
)
from horae.triggers._shorthand import TRIGGER_KINDS, TriggerSpec, build_trigger

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2024, 1, 1, tzinfo=UTC)

EQUIVALENTS: dict[str, tuple[Any, dict[str, Any], Trigger]] = {
    "interval": (
        "interval",
        {"seconds": 3, "start_time": START},
        IntervalTrigger(seconds=3, start_time=START),
    ),
    "interval-aps3-start-date": (
        "interval",
        {"minutes": 5, "start_date": START, "end_date": START + timedelta(days=1)},
        IntervalTrigger(minutes=5, start_time=START, end_time=START + timedelta(days=1)),
    ),
    "date": (
        "date",
        {"run_time": "2019-06-28 18:09:00", "timezone": "Europe/Berlin"},
        DateTrigger(datetime(2019, 6, 28, 18, 9, tzinfo=BERLIN)),
    ),
    "date-aps3-run-date": (
        "date",
        {"run_date": "2019-06-28 18:09:00", "timezone": "Europe/Berlin"},
        DateTrigger(datetime(2019, 6, 28, 18, 9, tzinfo=BERLIN)),
    ),
    "date-aps3-next-run-time": (
        "date",
        {"next_run_time": datetime(2019, 6, 28, 18, 9, tzinfo=BERLIN)},
        DateTrigger(datetime(2019, 6, 28, 18, 9, tzinfo=BERLIN)),
    ),
    "calendarinterval": (
        "calendarinterval",
        {"months": 1, "hour": 9, "start_date": "2024-01-31", "timezone": UTC},
        CalendarIntervalTrigger(months=1, hour=9, start_date=date(2024, 1, 31), timezone=UTC),
    ),
    "calendarinterval-start-time-spelling": (
        "calendarinterval",
        {"days": 1, "start_time": "2024-01-31", "end_time": "2024-02-29", "timezone": UTC},
        CalendarIntervalTrigger(
            days=1, start_date=date(2024, 1, 31), end_date=date(2024, 2, 29), timezone=UTC
        ),
    ),
    "cron-keywords": (
        "cron",
        {"hour": "*/2", "minute": 1, "timezone": UTC},
        CronTrigger(hour="*/2", minute=1, timezone=UTC),
    ),
    "cron-aps3-start-date": (
        "cron",
        {"hour": 9, "start_date": START, "timezone": UTC},
        CronTrigger(hour=9, start_time=START, timezone=UTC),
    ),
    "crontab-string": (
        "*/5 * * * *",
        {"timezone": UTC},
        CronTrigger.from_crontab("*/5 * * * *", timezone=UTC),
    ),
    "crontab-macro": (
        "@daily",
        {"timezone": UTC},
        CronTrigger.from_crontab("@daily", timezone=UTC),
    ),
    "crontab-with-aps3-end-date": (
        "0 9 * * mon-fri",
        {"timezone": UTC, "end_date": START + timedelta(days=30)},
        CronTrigger.from_crontab(
            "0 9 * * mon-fri", timezone=UTC, end_time=START + timedelta(days=30)
        ),
    ),
}


@pytest.mark.parametrize(
    ("trigger", "args", "expected"), list(EQUIVALENTS.values()), ids=list(EQUIVALENTS)
)
def test_builds_the_equivalent_trigger(
    trigger: Any, args: dict[str, Any], expected: Trigger
) -> None:
    built = build_trigger(trigger, args)
    assert built == TriggerSpec(expected, None)
    assert built.trigger.next(START) == expected.next(START)


def test_trigger_object_passes_through() -> None:
    trigger = IntervalTrigger(hours=1, start_time=START)
    assert build_trigger(trigger, {}) == (trigger, None)
    assert build_trigger(trigger) == (trigger, None)
    assert build_trigger(trigger, timezone="Europe/Berlin").trigger is trigger


@pytest.mark.parametrize(
    ("jitter", "expected"),
    [
        pytest.param(5, timedelta(seconds=5), id="seconds"),
        pytest.param(0.5, timedelta(milliseconds=500), id="float-seconds"),
        pytest.param(timedelta(minutes=1), timedelta(minutes=1), id="timedelta"),
        pytest.param(None, None, id="none"),
    ],
)
def test_jitter_becomes_max_jitter(jitter: Any, expected: timedelta | None) -> None:
    assert build_trigger("interval", {"seconds": 3, "jitter": jitter}).max_jitter == expected
    assert build_trigger("@hourly", {"jitter": jitter}).max_jitter == expected
    trigger = IntervalTrigger(hours=1, start_time=START)
    assert build_trigger(trigger, {"jitter": jitter}) == (trigger, expected)


def test_default_timezone_applies_only_when_not_given() -> None:
    built = build_trigger("calendarinterval", {"days": 1}, timezone="Europe/Berlin")
    assert isinstance(built.trigger, CalendarIntervalTrigger)
    assert built.trigger.timezone == BERLIN
    built = build_trigger("interval", {"hours": 1, "timezone": "UTC"}, timezone=BERLIN)
    assert isinstance(built.trigger, IntervalTrigger)
    assert built.trigger.timezone is UTC
    cron = build_trigger("0 9 * * *", {}, timezone=BERLIN).trigger
    assert cron == CronTrigger.from_crontab("0 9 * * *", timezone=BERLIN)


def test_seed_is_passed_to_hashed_crontab_expressions() -> None:
    built = build_trigger("H * * * *", {"timezone": UTC}, seed="my-schedule")
    assert built.trigger == CronTrigger.from_crontab("H * * * *", timezone=UTC, seed="my-schedule")
    explicit = build_trigger("H * * * *", {"timezone": UTC, "seed": "other"}, seed="ignored")
    assert explicit.trigger == CronTrigger.from_crontab("H * * * *", timezone=UTC, seed="other")


def test_kinds_are_listed() -> None:
    assert TRIGGER_KINDS == ("calendarinterval", "cron", "date", "interval")


@pytest.mark.parametrize(
    ("trigger", "args", "error", "message"),
    [
        pytest.param(
            "interval",
            {"seconds": 3, "minute": 1},
            TypeError,
            "IntervalTrigger() got an unexpected keyword argument 'minute'; did you mean "
            "'minutes'?",
            id="interval-misspelt-minute",
        ),
        pytest.param(
            "cron",
            {"hours": 2},
            TypeError,
            "CronTrigger() got an unexpected keyword argument 'hours'; did you mean 'hour'?",
            id="cron-plural-hours",
        ),
        pytest.param(
            "date",
            {"run_tme": "2024-01-01"},
            TypeError,
            "DateTrigger() got an unexpected keyword argument 'run_tme'; did you mean 'run_time'?",
            id="date-misspelt",
        ),
        pytest.param(
            "interval",
            {"seconds": 3, "jiter": 2},
            TypeError,
            "IntervalTrigger() got an unexpected keyword argument 'jiter'; did you mean 'jitter'?",
            id="misspelt-jitter",
        ),
        pytest.param(
            "*/5 * * * *",
            {"hour": 3},
            TypeError,
            "CronTrigger.from_crontab() got an unexpected keyword argument 'hour' (accepted: "
            "end_date, end_time, exclude, jitter, seed, start_date, start_time, timezone)",
            id="crontab-with-field-argument",
        ),
        pytest.param(
            "interval",
            {"seconds": 3, "start_date": START, "start_time": START},
            TypeError,
            "'start_date' and 'start_time' mean the same argument; give only 'start_time'",
            id="alias-and-name-together",
        ),
        pytest.param(
            "date",
            {"run_date": START, "next_run_time": START},
            TypeError,
            "'run_date' and 'next_run_time' mean the same argument; give only 'run_time'",
            id="two-aliases-together",
        ),
        pytest.param(
            IntervalTrigger(hours=1, start_time=START),
            {"hours": 2},
            TypeError,
            "trigger arguments ('hours') cannot be combined with a trigger object "
            "(IntervalTrigger); pass them to its constructor instead, or give the trigger "
            "kind, e.g. add_schedule(func, 'cron', hour=9)",
            id="arguments-with-trigger-object",
        ),
        pytest.param(
            "intervall",
            {"seconds": 3},
            ValueError,
            "unknown trigger kind 'intervall'; did you mean 'interval'? (known kinds: "
            "'calendarinterval', 'cron', 'date', 'interval'; or pass a crontab expression "
            "such as '*/5 * * * *' or '@daily')",
            id="unknown-kind-close",
        ),
        pytest.param(
            "Cron",
            {},
            ValueError,
            "unknown trigger kind 'Cron'; did you mean 'cron'? (known kinds: "
            "'calendarinterval', 'cron', 'date', 'interval'; or pass a crontab expression "
            "such as '*/5 * * * *' or '@daily')",
            id="unknown-kind-case",
        ),
        pytest.param(
            "weekly",
            {},
            ValueError,
            "unknown trigger kind 'weekly' (known kinds: 'calendarinterval', 'cron', 'date', "
            "'interval'; or pass a crontab expression such as '*/5 * * * *' or '@daily')",
            id="unknown-kind-far",
        ),
        pytest.param(
            None,
            {},
            TypeError,
            "trigger must be a Trigger, a crontab expression such as '*/5 * * * *' or a "
            "trigger kind ('calendarinterval', 'cron', 'date', 'interval'), not NoneType None",
            id="none",
        ),
        pytest.param(
            "interval",
            {"seconds": 3, "jitter": -1},
            ValueError,
            "jitter must not be negative, got datetime.timedelta(days=-1, seconds=86399)",
            id="negative-jitter",
        ),
        pytest.param(
            "interval",
            {"seconds": 3, "jitter": "1s"},
            TypeError,
            "jitter must be a timedelta or a number of seconds, not str '1s'",
            id="string-jitter",
        ),
        pytest.param(
            "interval",
            {"seconds": 0},
            ValueError,
            "the interval must be positive, got 0 seconds; give weeks, days, hours, minutes, "
            "seconds or microseconds a total above zero",
            id="constructor-error-passes-through",
        ),
    ],
)
def test_errors(trigger: Any, args: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        build_trigger(trigger, args)
    assert str(info.value) == message


def test_bad_crontab_expression_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="minute"):
        build_trigger("61 * * * *", {})
