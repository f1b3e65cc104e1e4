"""CronTrigger: every error message, for the keyword form and for crontab strings."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pytest

from horae.triggers import CronTrigger

UTC = timezone.utc

# id -> (keyword arguments, the exact message)
KEYWORD_ERRORS: dict[str, tuple[dict[str, Any], str]] = {
    "minute-too-big": (
        {"minute": 61},
        "invalid value '61' for field 'minute' (allowed: 0-59)",
    ),
    "second-60": ({"second": "60"}, "invalid value '60' for field 'second' (allowed: 0-59)"),
    "hour-24": ({"hour": "24"}, "invalid value '24' for field 'hour' (allowed: 0-23)"),
    "day-0": (
        {"day": 0},
        "invalid value '0' for field 'day' (allowed: 1-31, L, L-n, nW, LW, 'xth y' or 'last y')",
    ),
    "day-32": (
        {"day": "1,32"},
        "invalid value '32' for field 'day' (allowed: 1-31, L, L-n, nW, LW, 'xth y' or 'last y')",
    ),
    "month-13": ({"month": 13}, "invalid value '13' for field 'month' (allowed: 1-12 or jan-dec)"),
    "unknown-month-name": (
        {"month": "foo"},
        "invalid value 'foo' for field 'month' (allowed: 1-12 or jan-dec)",
    ),
    "week-54": ({"week": 54}, "invalid value '54' for field 'week' (allowed: 1-53)"),
    "weekday-7-in-the-keyword-form": (
        {"day_of_week": 7},
        "invalid value '7' for field 'day_of_week' (allowed: 0-6 or mon-sun, 0 = Monday)",
    ),
    "unknown-weekday-name": (
        {"day_of_week": "mon-fry"},
        "invalid value 'fry' for field 'day_of_week' (allowed: 0-6 or mon-sun, 0 = Monday)",
    ),
    "year-1969": ({"year": 1969}, "invalid value '1969' for field 'year' (allowed: 1970-9999)"),
    "year-10000": ({"year": 10000}, "invalid value '10000' for field 'year' (allowed: 1970-9999)"),
    "negative": ({"minute": -1}, "invalid value '-1' for field 'minute' (allowed: 0-59)"),
    "dangling-dash": ({"minute": "1-"}, "invalid value '1-' for field 'minute' (allowed: 0-59)"),
    "double-dash": ({"minute": "1--2"}, "invalid value '1--2' for field 'minute' (allowed: 0-59)"),
    "empty-list-item": (
        {"minute": "1,,2"},
        "invalid value '' for field 'minute' (allowed: 0-59)",
    ),
    "question-mark-outside-the-day-fields": (
        {"hour": "?"},
        "invalid value '?' for field 'hour' (allowed: 0-23)",
    ),
    "step-0": ({"minute": "*/0"}, "invalid step '0' in '*/0' for field 'minute' (allowed: 1-60)"),
    "step-too-big": (
        {"hour": "1-5/25"},
        "invalid step '25' in '1-5/25' for field 'hour' (allowed: 1-24)",
    ),
    "step-missing": ({"minute": "*/"}, "invalid value '*/' for field 'minute' (allowed: 0-59)"),
    "reversed-range": (
        {"minute": "30-10"},
        "invalid range '30-10' for field 'minute': '30' comes after '10'; write the smaller "
        "value first, or a list such as '30-59,0-10' to wrap around",
    ),
    "reversed-name-range": (
        {"day_of_week": "fri-mon"},
        "invalid range 'fri-mon' for field 'day_of_week': 'fri' comes after 'mon'; write the "
        "smaller value first, or a list such as 'fri-6,0-mon' to wrap around",
    ),
    "L-minus-too-much": (
        {"day": "L-31"},
        "invalid value 'L-31' for field 'day' (allowed: L-n with n in 0-30)",
    ),
    "nearest-weekday-of-day-32": (
        {"day": "32W"},
        "invalid value '32W' for field 'day' (allowed: 1-31, L, L-n, nW, LW, 'xth y' or 'last y')",
    ),
    "6th-weekday": (
        {"day_of_week": "6th mon"},
        "invalid value '6th mon' for field 'day_of_week' (allowed: the n-th weekday of a month "
        "is 1st-5th (1-5))",
    ),
    "hash-0": (
        {"day_of_week": "mon#0"},
        "invalid value 'mon#0' for field 'day_of_week' (allowed: the n-th weekday of a month "
        "is 1st-5th (1-5))",
    ),
    "nth-of-an-unknown-weekday": (
        {"day_of_week": "2nd moo"},
        "invalid value '2nd moo' for field 'day_of_week' (allowed: a weekday 0-6 or mon-sun, 0 "
        "= Monday)",
    ),
    "L-alone-in-day-of-week": (
        {"day_of_week": "L"},
        "invalid value 'L' for field 'day_of_week' (allowed: 'last fri' or '5L' for the last "
        "weekday of a month)",
    ),
    "last-of-day-7": (
        {"day_of_week": "7L"},
        "invalid value '7L' for field 'day_of_week' (allowed: a weekday 0-6 or mon-sun, 0 = "
        "Monday)",
    ),
    "H-in-the-keyword-form": (
        {"minute": "H"},
        "invalid value 'H' for field 'minute' (allowed: 0-59; 'H' works only in "
        "CronTrigger.from_crontab(expr, seed=...))",
    ),
    "empty-field": ({"minute": " "}, "field 'minute' is empty; use '*' for every value"),
    "day-that-never-occurs": (
        {"month": 2, "day": 30},
        "day '30' never occurs in month '2', so the schedule would never fire",
    ),
    "31st-of-short-months": (
        {"month": "4,6,9,11", "day": "31"},
        "day '31' never occurs in month '4,6,9,11', so the schedule would never fire",
    ),
    "end-before-start": (
        {"hour": 1, "start_time": "2024-01-02", "end_time": "2024-01-01"},
        "end_time '2024-01-01T00:00:00+00:00' is earlier than start_time "
        "'2024-01-02T00:00:00+00:00'; the trigger would never fire",
    ),
    "unknown-zone": (
        {"timezone": "Mars/Olympus_Mons"},
        "unknown time zone 'Mars/Olympus_Mons' for 'timezone'; use an IANA key such as "
        "'Europe/Berlin' or 'UTC'",
    ),
}


@pytest.mark.parametrize(("kwargs", "message"), KEYWORD_ERRORS.values(), ids=KEYWORD_ERRORS)
def test_keyword_errors(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("timezone", UTC)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        CronTrigger(**kwargs)


# id -> (expression, from_crontab keyword arguments, the exact message)
CRONTAB_ERRORS: dict[str, tuple[str, dict[str, Any], str]] = {
    "four-fields": (
        "* * * *",
        {},
        "a crontab expression has 5 fields (minute hour day month day_of_week), 6 (a leading "
        "second) or 7 (and a trailing year); got 4 in '* * * *'",
    ),
    "eight-fields": (
        "0 * * * * * 2030 x",
        {},
        "a crontab expression has 5 fields (minute hour day month day_of_week), 6 (a leading "
        "second) or 7 (and a trailing year); got 8 in '0 * * * * * 2030 x'",
    ),
    "empty": (
        "",
        {},
        "a crontab expression has 5 fields (minute hour day month day_of_week), 6 (a leading "
        "second) or 7 (and a trailing year); got 0 in ''",
    ),
    "unknown-macro": (
        "@fortnightly",
        {},
        "unknown crontab macro '@fortnightly' (known: @yearly, @annually, @monthly, @weekly, "
        "@daily, @midnight, @hourly)",
    ),
    "minute-61": ("61 * * * *", {}, "invalid value '61' for field 'minute' (allowed: 0-59)"),
    "second-61-in-six-fields": (
        "61 * * * * *",
        {},
        "invalid value '61' for field 'second' (allowed: 0-59)",
    ),
    "year-in-seven-fields": (
        "0 0 0 1 1 * 1900",
        {},
        "invalid value '1900' for field 'year' (allowed: 1970-9999)",
    ),
    "weekday-8": (
        "0 0 * * 8",
        {},
        "invalid value '8' for field 'day_of_week' (allowed: 0-7 or sun-sat, 0 and 7 = Sunday)",
    ),
    "hash-6": (
        "0 0 * * 1#6",
        {},
        "invalid value '1#6' for field 'day_of_week' (allowed: the n-th weekday of a month is "
        "1st-5th (1-5))",
    ),
    "H-without-seed": (
        "H * * * *",
        {},
        "'H * * * *' uses 'H' in field 'minute', which needs a seed to pick its value: "
        "CronTrigger.from_crontab(expr, seed='<the schedule id>')",
    ),
    "H-in-the-year": (
        "0 0 0 1 1 * H",
        {"seed": "x"},
        "invalid value 'H' for field 'year' (allowed: 1970-9999; 'H' is not supported for years)",
    ),
    "H-range-out-of-bounds": (
        "H(50-70) * * * *",
        {"seed": "x"},
        "invalid value 'H(50-70)' for field 'minute' (allowed: H(a-b) with 0 <= a <= b <= 59)",
    ),
    "H-reversed-range": (
        "H(30-10) * * * *",
        {"seed": "x"},
        "invalid value 'H(30-10)' for field 'minute' (allowed: H(a-b) with 0 <= a <= b <= 59)",
    ),
    "H-step-0": (
        "H/0 * * * *",
        {"seed": "x"},
        "invalid step '0' in 'H/0' for field 'minute' (allowed: 1-60)",
    ),
    "H-garbage": (
        "Hx * * * *",
        {"seed": "x"},
        "invalid value 'Hx' for field 'minute' (allowed: 0-59)",
    ),
    "end-before-start": (
        "* * * * *",
        {"start_time": "2024-01-02T00:00:00+00:00", "end_time": "2024-01-01T00:00:00+00:00"},
        "end_time '2024-01-01T00:00:00+00:00' is earlier than start_time "
        "'2024-01-02T00:00:00+00:00'; the trigger would never fire",
    ),
    "bad-start-time": (
        "* * * * *",
        {"start_time": "yesterday"},
        "invalid start_time 'yesterday': expected an ISO 8601 date or date and time such as "
        "'2019-06-28 18:09:00'",
    ),
}


@pytest.mark.parametrize(
    ("expr", "kwargs", "message"), CRONTAB_ERRORS.values(), ids=CRONTAB_ERRORS
)
def test_crontab_errors(expr: str, kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("timezone", UTC)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        CronTrigger.from_crontab(expr, **kwargs)


# id -> (callable, the exception type, the exact message)
TYPE_ERRORS: dict[str, tuple[Any, str]] = {
    "misspelt-field": (
        lambda: CronTrigger(minutes=5),  # type: ignore[call-arg]
        "CronTrigger() got an unexpected keyword argument 'minutes'; did you mean 'minute'?",
    ),
    "misspelt-start-date": (
        lambda: CronTrigger(hour=1, start_date="2024-01-01"),  # type: ignore[call-arg]
        "CronTrigger() got an unexpected keyword argument 'start_date'; did you mean "
        "'start_time'?",
    ),
    "misspelt-crontab-argument": (
        lambda: CronTrigger.from_crontab("* * * * *", timezon="UTC"),  # type: ignore[call-arg]
        "CronTrigger.from_crontab() got an unexpected keyword argument 'timezon'; did you "
        "mean 'timezone'?",
    ),
    "float-field": (
        lambda: CronTrigger(minute=1.5),  # type: ignore[arg-type]
        "field 'minute' must be a str or an int, not float 1.5",
    ),
    "bool-field": (
        lambda: CronTrigger(hour=True),
        "field 'hour' must be a str or an int, not bool True",
    ),
    "expression-not-a-string": (
        lambda: CronTrigger.from_crontab(5),  # type: ignore[arg-type]
        "a crontab expression must be a str, not int 5",
    ),
    "seed-not-a-string": (
        lambda: CronTrigger.from_crontab("H * * * *", seed=7),  # type: ignore[arg-type]
        "seed must be a str (the schedule id), not int 7",
    ),
    "exclude-not-a-calendar": (
        lambda: CronTrigger(hour=1, exclude="2024-12-25"),  # type: ignore[arg-type]
        "exclude must be a horae.calendars.Calendar or None, not str '2024-12-25'",
    ),
    "bad-zone-type": (
        lambda: CronTrigger(hour=1, timezone=5),  # type: ignore[arg-type]
        "timezone must be a zoneinfo.ZoneInfo, an IANA key such as 'Europe/Berlin' or "
        "datetime.timezone.utc, not int 5",
    ),
}


@pytest.mark.parametrize(("make", "message"), TYPE_ERRORS.values(), ids=TYPE_ERRORS)
def test_type_errors(make: Any, message: str) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        make()


def test_naive_after_is_rejected() -> None:
    trigger = CronTrigger(hour=1, timezone=UTC)
    with pytest.raises(
        ValueError, match=r"^after must be a timezone-aware datetime, got the naive"
    ):
        trigger.next(datetime(2024, 1, 1))


def test_after_of_the_wrong_type_is_rejected() -> None:
    trigger = CronTrigger(hour=1, timezone=UTC)
    with pytest.raises(TypeError, match=r"^after must be a datetime, not str '2024-01-01'$"):
        trigger.next("2024-01-01")  # type: ignore[arg-type]
