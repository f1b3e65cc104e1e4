"""DateTrigger: fires once; argument forms, zones, exclusions, errors."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from horae.calendars import DateRangeCalendar, HolidayCalendar
from horae.triggers import DateTrigger

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
RUN = datetime(2019, 6, 28, 18, 9, tzinfo=BERLIN)
ONE_US = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        pytest.param(None, RUN, id="first"),
        pytest.param(RUN - timedelta(days=365), RUN, id="long-before"),
        pytest.param(RUN - ONE_US, RUN, id="just-before"),
        pytest.param(RUN, None, id="exactly-at-run-time"),
        pytest.param(RUN + ONE_US, None, id="after"),
        pytest.param(RUN.astimezone(NEW_YORK) - ONE_US, RUN, id="other-zone-before"),
        pytest.param(RUN.astimezone(UTC), None, id="other-zone-same-instant"),
    ],
)
def test_next(after: datetime | None, expected: datetime | None) -> None:
    assert DateTrigger(RUN).next(after) == expected


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        pytest.param(
            ("2019-06-28 18:09:00",),
            {"timezone": "Europe/Berlin"},
            "2019-06-28T18:09:00+02:00",
            id="naive-iso-string",
        ),
        pytest.param(
            ("2019-06-28T16:09:00Z",),
            {"timezone": "Europe/Berlin"},
            "2019-06-28T18:09:00+02:00",
            id="utc-iso-string-shown-in-zone",
        ),
        pytest.param(
            (date(2019, 6, 28),),
            {"timezone": "America/New_York"},
            "2019-06-28T00:00:00-04:00",
            id="date-is-midnight",
        ),
        pytest.param(
            (datetime(2019, 6, 28, 18, 9, tzinfo=BERLIN),),
            {},
            "2019-06-28T18:09:00+02:00",
            id="aware-sets-the-zone",
        ),
        pytest.param(
            ("2024-03-31 02:30",),
            {"timezone": "Europe/Berlin"},
            "2024-03-31T03:00:00+02:00",
            id="naive-in-dst-gap-is-first-instant-after",
        ),
        pytest.param(
            ("2024-10-27 02:30",),
            {"timezone": "Europe/Berlin"},
            "2024-10-27T02:30:00+02:00",
            id="naive-in-fold-is-first-occurrence",
        ),
        pytest.param(
            (datetime(2024, 10, 27, 2, 30, fold=1),),
            {"timezone": "Europe/Berlin"},
            "2024-10-27T02:30:00+01:00",
            id="naive-fold-1-is-second-occurrence",
        ),
        pytest.param(
            (datetime(2024, 3, 10, 2, 30),),
            {"timezone": "America/New_York"},
            "2024-03-10T03:00:00-04:00",
            id="new-york-gap",
        ),
    ],
)
def test_run_time_forms(args: tuple[Any, ...], kwargs: dict[str, Any], expected: str) -> None:
    fire = DateTrigger(*args, **kwargs).next()
    assert fire is not None
    assert fire.isoformat() == expected


def test_none_means_now() -> None:
    before = datetime.now(UTC)  # noqa: TID251 - brackets the trigger's own clock read
    trigger = DateTrigger(timezone="UTC")
    after = datetime.now(UTC)  # noqa: TID251
    assert before <= trigger.run_time <= after
    assert trigger.next() == trigger.run_time


@pytest.mark.parametrize(
    "exclude",
    [
        pytest.param(HolidayCalendar([date(2019, 6, 28)]), id="holiday"),
        pytest.param(DateRangeCalendar("2019-06-28 18:00", "2019-06-28 19:00"), id="range"),
    ],
)
def test_excluded_run_time_never_fires(exclude: Any) -> None:
    trigger = DateTrigger(RUN, exclude=exclude)
    assert trigger.next() is None
    assert trigger.next(RUN - timedelta(days=1)) is None


def test_not_excluded_run_time_fires() -> None:
    exclude = HolidayCalendar([date(2019, 6, 27)])
    assert DateTrigger(RUN, exclude=exclude).next() == RUN


def test_value_semantics() -> None:
    assert DateTrigger(RUN) == DateTrigger("2019-06-28T18:09:00+02:00", timezone=BERLIN)
    assert hash(DateTrigger(RUN)) == hash(DateTrigger(RUN))
    assert DateTrigger(RUN) != DateTrigger(RUN, timezone="UTC")  # results' zone differs
    assert str(DateTrigger(RUN)) == "date[2019-06-28T18:09:00+02:00]"
    assert DateTrigger(RUN).describe() == "Once, at 2019-06-28T18:09:00+02:00"


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        pytest.param(
            (),
            {"run_date": RUN},
            TypeError,
            "DateTrigger() got an unexpected keyword argument 'run_date'; did you mean "
            "'run_time'?",
            id="aps3-spelling-on-the-class",
        ),
        pytest.param(
            ("tomorrow",),
            {},
            ValueError,
            "invalid run_time 'tomorrow': expected an ISO 8601 date or date and time such as "
            "'2019-06-28 18:09:00'",
            id="bad-string",
        ),
        pytest.param(
            (1561738140,),
            {},
            TypeError,
            "run_time must be a datetime, a date or an ISO 8601 string, not int 1561738140",
            id="timestamp",
        ),
        pytest.param(
            (RUN,),
            {"exclude": "holidays"},
            TypeError,
            "exclude must be a horae.calendars.Calendar or None, not str 'holidays'",
            id="exclude-not-a-calendar",
        ),
    ],
)
def test_invalid_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        DateTrigger(*args, **kwargs)
    assert str(info.value) == message


AWARE = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2090, 1, 1),
    timezones=st.sampled_from([UTC, BERLIN, NEW_YORK]),
)


@settings(max_examples=120)
@given(run_time=AWARE, after=AWARE)
def test_property_fires_once(run_time: datetime, after: datetime) -> None:
    trigger = DateTrigger(run_time)
    fire = trigger.next(after)
    assert fire == trigger.next(after)  # pure
    if after.astimezone(UTC) < run_time.astimezone(UTC):
        assert fire is not None
        assert fire.astimezone(UTC) > after.astimezone(UTC)
        assert trigger.next(fire) is None
    else:
        assert fire is None
