"""OrTrigger and AndTrigger: merging, agreement within a threshold, exhaustion, errors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from horae.calendars import DateRangeCalendar, HolidayCalendar
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
START = datetime(2024, 1, 1, tzinfo=UTC)


def take(trigger: Trigger, count: int, after: datetime | None = None) -> list[datetime]:
    times: list[datetime] = []
    current = trigger.next(after)
    while current is not None and len(times) < count:
        times.append(current)
        current = trigger.next(current)
    return times


def every(hours: float, start: datetime = START, **kwargs: Any) -> IntervalTrigger:
    return IntervalTrigger(hours=hours, start_time=start, **kwargs)


def at(hour: int, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    return datetime(2024, 1, 1, hour, minute, second, microsecond, tzinfo=UTC)


# (children, expected fire times, whether the trigger is exhausted after them)
OR_CASES: dict[str, tuple[list[Trigger], list[datetime], bool]] = {
    "merged-in-order-shared-times-once": (
        [every(2), every(3)],
        [at(0), at(2), at(3), at(4), at(6), at(8), at(9), at(10), at(12)],
        False,
    ),
    "exhausted-child-drops-out": (
        [DateTrigger(at(1, 30)), every(2)],
        [at(0), at(1, 30), at(2), at(4)],
        False,
    ),
    "all-children-exhausted": (
        [DateTrigger(at(5)), DateTrigger(at(1)), DateTrigger(at(5))],
        [at(1), at(5)],
        True,
    ),
    "one-child": ([every(5)], [at(0), at(5), at(10)], False),
}


@pytest.mark.parametrize(
    ("children", "expected", "exhausted"), list(OR_CASES.values()), ids=list(OR_CASES)
)
def test_or_trigger(children: list[Trigger], expected: list[datetime], exhausted: bool) -> None:
    times = take(OrTrigger(children), len(expected) + 1)
    assert times[: len(expected)] == expected
    assert (len(times) == len(expected)) == exhausted


def test_or_trigger_keeps_each_childs_zone() -> None:
    berlin = every(24, start=datetime(2024, 1, 1, 12, tzinfo=BERLIN))
    trigger = OrTrigger([every(24), berlin])
    first, second = take(trigger, 2)
    assert (first.tzinfo, second.tzinfo) == (UTC, BERLIN)
    assert second.isoformat() == "2024-01-01T12:00:00+01:00"


AND_CASES: dict[str, tuple[dict[str, Any], list[datetime], bool]] = {
    "exact-agreement": (
        {"triggers": [every(2), every(3)], "threshold": 0},
        [at(0), at(6), at(12), at(18)],
        False,
    ),
    "within-threshold-returns-the-latest": (
        {"triggers": [every(2), every(3, start=at(0, 30))], "threshold": timedelta(minutes=30)},
        # pairs (A, B) within 30 min: (0:00, 0:30), (4:00, 3:30), (6:00, 6:30), (10:00, 9:30)
        [at(0, 30), at(4), at(6, 30), at(10)],
        False,
    ),
    "sub-second-threshold-in-seconds": (
        {
            "triggers": [DateTrigger(at(12)), DateTrigger(at(12, 0, 0, 500000))],
            "threshold": 1,
        },
        [at(12, 0, 0, 500000)],
        True,
    ),
    "exhausted-child-ends-it": (
        {"triggers": [every(1), DateTrigger(at(5))]},
        [at(5)],
        True,
    ),
    "calendar-interval-and-interval": (
        {
            "triggers": [
                CalendarIntervalTrigger(days=1, hour=9, start_date="2024-01-01", timezone=UTC),
                every(4, start=at(1)),
            ],
        },
        [at(9), at(9) + timedelta(days=1), at(9) + timedelta(days=2)],
        False,
    ),
}


@pytest.mark.parametrize(
    ("kwargs", "expected", "exhausted"), list(AND_CASES.values()), ids=list(AND_CASES)
)
def test_and_trigger(kwargs: dict[str, Any], expected: list[datetime], exhausted: bool) -> None:
    times = take(AndTrigger(**kwargs), len(expected) + 1)
    assert times[: len(expected)] == expected
    assert (len(times) == len(expected)) == exhausted


def test_and_trigger_exhausted_child_is_final() -> None:
    trigger = AndTrigger([every(1), DateTrigger(at(5))])
    assert trigger.next(at(5)) is None


def test_and_trigger_gives_up_after_max_iterations() -> None:
    never = AndTrigger([every(2), every(2, start=at(1))], threshold=0, max_iterations=50)
    assert never.next() is None
    # with a wide enough threshold the same children agree at once
    assert AndTrigger([every(2), every(2, start=at(1))], threshold=3600).next() == at(1)


def test_and_trigger_child_fire_times_are_used_once() -> None:
    # A fires hourly, B every 30 min; with a 1-hour threshold the pair (A 01:00, B 00:30)
    # agrees and fires at 01:00. The next fire asks every child for a time after 01:00,
    # so A's 01:00 cannot pair again with B's 01:30: no child fire is used twice.
    trigger = AndTrigger([every(1), every(0.5)], threshold=3600)
    assert take(trigger, 4) == [at(0), at(1), at(2), at(3)]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            lambda exclude: OrTrigger([every(2), every(3)], exclude=exclude),
            [at(0), at(4), at(6)],
            id="or",
        ),
        pytest.param(
            lambda exclude: AndTrigger([every(1), every(2)], exclude=exclude),
            [at(0), at(4), at(6)],
            id="and",
        ),
    ],
)
def test_exclusions_are_skipped(make: Any, expected: list[datetime]) -> None:
    exclude = DateRangeCalendar(at(1), at(4))
    assert take(make(exclude), 3) == expected


def test_children_keep_their_own_exclusions() -> None:
    christmas = HolidayCalendar(["2024-12-25"])
    child = IntervalTrigger(days=1, start_time="2024-12-24T09:00:00+00:00", exclude=christmas)
    got = take(OrTrigger([child]), 2)
    assert [t.date().isoformat() for t in got] == ["2024-12-24", "2024-12-26"]


def test_value_semantics_and_text() -> None:
    a = OrTrigger([every(1), every(2)])
    assert a == OrTrigger((every(1), every(2)))
    assert hash(a) == hash(OrTrigger([every(1), every(2)]))
    assert a != OrTrigger([every(2), every(1)])  # order is part of the value
    assert str(a) == "or[interval[1:00:00], interval[2:00:00]]"
    b = AndTrigger([every(1), every(2)], threshold=timedelta(seconds=1))
    assert b == AndTrigger([every(1), every(2)], threshold=1)
    assert str(b) == "and[interval[1:00:00], interval[2:00:00]]"
    assert b.describe() == (
        "(Every 1:00:00 from 2024-01-01T00:00:00+00:00) and "
        "(Every 2:00:00 from 2024-01-01T00:00:00+00:00), within 0:00:01"
    )
    assert a.describe() == (
        "(Every 1:00:00 from 2024-01-01T00:00:00+00:00) or "
        "(Every 2:00:00 from 2024-01-01T00:00:00+00:00)"
    )


@pytest.mark.parametrize(
    ("cls", "args", "kwargs", "error", "message"),
    [
        pytest.param(
            OrTrigger,
            ([],),
            {},
            ValueError,
            "OrTrigger needs at least one trigger; got an empty sequence",
            id="or-empty",
        ),
        pytest.param(
            AndTrigger,
            ((),),
            {},
            ValueError,
            "AndTrigger needs at least one trigger; got an empty sequence",
            id="and-empty",
        ),
        pytest.param(
            OrTrigger,
            ([every(1), "*/5 * * * *"],),
            {},
            TypeError,
            "OrTrigger can only combine Trigger objects; item 1 is str '*/5 * * * *'",
            id="or-string-child",
        ),
        pytest.param(
            AndTrigger,
            (every(1),),
            {},
            TypeError,
            "AndTrigger takes a sequence of triggers, such as [CronTrigger(...), "
            "IntervalTrigger(...)], not IntervalTrigger " + repr(every(1)),
            id="and-single-trigger-not-in-a-list",
        ),
        pytest.param(
            AndTrigger,
            ([every(1)],),
            {"threshold": -1},
            ValueError,
            "threshold must not be negative, got datetime.timedelta(days=-1, seconds=86399)",
            id="negative-threshold",
        ),
        pytest.param(
            AndTrigger,
            ([every(1)],),
            {"threshold": "1s"},
            TypeError,
            "threshold must be a timedelta or a number of seconds, not str '1s'",
            id="threshold-string",
        ),
        pytest.param(
            AndTrigger,
            ([every(1)],),
            {"max_iterations": 0},
            ValueError,
            "max_iterations must be at least 1, got 0",
            id="zero-iterations",
        ),
        pytest.param(
            AndTrigger,
            ([every(1)],),
            {"max_iterations": 1.5},
            TypeError,
            "max_iterations must be an integer, not float 1.5",
            id="float-iterations",
        ),
        pytest.param(
            AndTrigger,
            ([every(1)],),
            {"treshold": 5},
            TypeError,
            "AndTrigger() got an unexpected keyword argument 'treshold'; did you mean "
            "'threshold'?",
            id="misspelt-threshold",
        ),
        pytest.param(
            OrTrigger,
            ([every(1)],),
            {"exclude": {"2024-12-25"}},
            TypeError,
            "exclude must be a horae.calendars.Calendar or None, not set {'2024-12-25'}",
            id="exclude-not-a-calendar",
        ),
    ],
)
def test_invalid_arguments(
    cls: type[Trigger],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error) as info:
        cls(*args, **kwargs)
    assert str(info.value) == message


HOURS = st.integers(min_value=1, max_value=30)
OFFSETS = st.integers(min_value=0, max_value=24 * 60)


@settings(max_examples=100)
@given(
    hours=st.lists(HOURS, min_size=1, max_size=4),
    offsets=st.lists(OFFSETS, min_size=4, max_size=4),
    after_minutes=st.integers(min_value=-600, max_value=10**7),
)
def test_property_or_is_the_merge_of_its_children(
    hours: list[int], offsets: list[int], after_minutes: int
) -> None:
    children = [
        every(h, start=START + timedelta(minutes=o)) for h, o in zip(hours, offsets, strict=False)
    ]
    trigger = OrTrigger(children)
    after = START + timedelta(minutes=after_minutes)
    fire = trigger.next(after)
    assert fire is not None
    assert fire > after
    assert fire == min(t for t in (c.next(after) for c in children) if t is not None)


@settings(max_examples=100)
@given(
    hours=st.lists(HOURS, min_size=2, max_size=3),
    offsets=st.lists(OFFSETS, min_size=3, max_size=3),
    threshold_minutes=st.integers(min_value=0, max_value=120),
    after_minutes=st.integers(min_value=-600, max_value=10**6),
)
def test_property_and_result_is_an_agreement(
    hours: list[int], offsets: list[int], threshold_minutes: int, after_minutes: int
) -> None:
    children = [
        every(h, start=START + timedelta(minutes=o)) for h, o in zip(hours, offsets, strict=False)
    ]
    threshold = timedelta(minutes=threshold_minutes)
    trigger = AndTrigger(children, threshold=threshold, max_iterations=200)
    after = START + timedelta(minutes=after_minutes)
    fire = trigger.next(after)
    assert fire == trigger.next(after)  # pure
    if fire is None:
        return
    assert fire > after
    # every child fires in [fire - threshold, fire], and some child fires exactly at fire
    window_start = fire - threshold - timedelta(microseconds=1)
    child_times = [c.next(window_start) for c in children]
    assert all(t is not None and fire - threshold <= t <= fire for t in child_times)
    assert fire in [c.next(fire - timedelta(microseconds=1)) for c in children]
