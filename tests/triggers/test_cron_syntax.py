"""CronTrigger: every syntax element, macros, names, the OR and AND day rules, L/W/#, the
year and week fields, keyword defaults, H hashes, leap days, month ends, start/end edges.

All cases here run in UTC; DST has its own module (test_cron_dst.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone

import pytest

from horae.calendars import HolidayCalendar
from horae.triggers import CronTrigger, Trigger

UTC = timezone.utc
NEW_YEAR_2024 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


def take(trigger: Trigger, count: int, after: datetime | None) -> list[str]:
    """The next *count* fire times after *after*, as ISO strings (fewer if exhausted)."""
    times: list[str] = []
    current = trigger.next(after)
    while current is not None and len(times) < count:
        times.append(current.isoformat())
        current = trigger.next(current)
    return times


def crontab(expr: str, **kwargs: object) -> Callable[[], CronTrigger]:
    return lambda: CronTrigger.from_crontab(expr, timezone=UTC, **kwargs)  # type: ignore[arg-type]


def keywords(**kwargs: object) -> Callable[[], CronTrigger]:
    return lambda: CronTrigger(timezone=UTC, **kwargs)  # type: ignore[arg-type]


def days(*values: str) -> list[str]:
    """Midnight UTC on each of the given ISO dates."""
    return [f"{value}T00:00:00+00:00" for value in values]


def times(day: str, *clock: str) -> list[str]:
    return [f"{day}T{value}+00:00" for value in clock]


# id -> (trigger factory, after, the next fire times)
SEQUENCES: dict[str, tuple[Callable[[], CronTrigger], datetime, list[str]]] = {
    # ---- the generic field syntax -------------------------------------------------------
    "star-every-minute": (
        crontab("* * * * *"),
        NEW_YEAR_2024,
        times("2024-01-01", "00:01:00", "00:02:00", "00:03:00"),
    ),
    "star-step": (
        crontab("*/15 * * * *"),
        NEW_YEAR_2024,
        times("2024-01-01", "00:15:00", "00:30:00", "00:45:00", "01:00:00"),
    ),
    "single-value": (
        crontab("7 * * * *"),
        NEW_YEAR_2024,
        times("2024-01-01", "00:07:00", "01:07:00"),
    ),
    "range": (
        crontab("10-12 * * * *"),
        NEW_YEAR_2024,
        times("2024-01-01", "00:10:00", "00:11:00", "00:12:00", "01:10:00"),
    ),
    "range-with-step": (
        crontab("10-30/10 * * * *"),
        NEW_YEAR_2024,
        times("2024-01-01", "00:10:00", "00:20:00", "00:30:00", "01:10:00"),
    ),
    "start-with-step": (
        crontab("50/4 * * * *"),
        NEW_YEAR_2024,
        times("2024-01-01", "00:50:00", "00:54:00", "00:58:00", "01:50:00"),
    ),
    "list-unsorted": (
        crontab("5,1,30 * * * *"),
        NEW_YEAR_2024,
        times("2024-01-01", "00:01:00", "00:05:00", "00:30:00", "01:01:00"),
    ),
    "list-of-ranges-and-steps": (
        crontab("0-2,*/20 * * * *"),
        NEW_YEAR_2024,
        times("2024-01-01", "00:01:00", "00:02:00", "00:20:00", "00:40:00", "01:00:00"),
    ),
    "step-wider-than-the-range": (
        crontab("5-10/30 * * * *"),
        NEW_YEAR_2024,
        times("2024-01-01", "00:05:00", "01:05:00"),
    ),
    "hours-and-minutes": (
        crontab("30 9,17 * * *"),
        NEW_YEAR_2024,
        times("2024-01-01", "09:30:00", "17:30:00") + times("2024-01-02", "09:30:00"),
    ),
    "after-with-microseconds": (
        crontab("* * * * *"),
        datetime(2024, 1, 1, 0, 0, 59, 999_999, tzinfo=UTC),
        times("2024-01-01", "00:01:00", "00:02:00"),
    ),
    # ---- names ----------------------------------------------------------------------------
    "month-names-any-case": (
        crontab("0 0 1 jan,JUL *"),
        NEW_YEAR_2024,
        days("2024-07-01", "2025-01-01", "2025-07-01"),
    ),
    "month-name-range": (
        crontab("0 0 1 Nov-dec *"),
        NEW_YEAR_2024,
        days("2024-11-01", "2024-12-01", "2025-11-01"),
    ),
    "weekday-name-range": (
        crontab("0 9 * * mon-fri"),
        datetime(2024, 1, 5, tzinfo=UTC),  # a Friday
        times("2024-01-05", "09:00:00") + times("2024-01-08", "09:00:00"),
    ),
    "crontab-weekday-0-is-sunday": (
        crontab("0 0 * * 0"),
        NEW_YEAR_2024,
        days("2024-01-07", "2024-01-14"),
    ),
    "crontab-weekday-7-is-sunday": (
        crontab("0 0 * * 7"),
        NEW_YEAR_2024,
        days("2024-01-07", "2024-01-14"),
    ),
    "crontab-range-ending-on-sun": (
        crontab("0 0 * * fri-sun"),
        NEW_YEAR_2024,
        days("2024-01-05", "2024-01-06", "2024-01-07", "2024-01-12"),
    ),
    "crontab-weekday-step-counts-from-sunday": (
        crontab("0 0 * * */2"),  # Sunday, Tuesday, Thursday, Saturday
        NEW_YEAR_2024,
        days("2024-01-02", "2024-01-04", "2024-01-06", "2024-01-07"),
    ),
    "keyword-weekday-0-is-monday": (
        keywords(day_of_week=0),
        NEW_YEAR_2024,
        days("2024-01-08", "2024-01-15"),
    ),
    "keyword-weekday-step-counts-from-monday": (
        keywords(day_of_week="*/2"),  # Monday, Wednesday, Friday, Sunday
        NEW_YEAR_2024,
        days("2024-01-03", "2024-01-05", "2024-01-07", "2024-01-08"),
    ),
    "keyword-weekday-names": (
        keywords(day_of_week="SAT,sun", hour=8),
        NEW_YEAR_2024,
        times("2024-01-06", "08:00:00") + times("2024-01-07", "08:00:00"),
    ),
    # ---- the day field extras -------------------------------------------------------------
    "day-L-is-the-last-day": (
        crontab("0 0 L * *"),
        NEW_YEAR_2024,
        days("2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"),
    ),
    "day-last-keyword": (
        keywords(day="last"),
        NEW_YEAR_2024,
        days("2024-01-31", "2024-02-29", "2024-03-31"),
    ),
    "day-L-minus-n": (
        crontab("0 0 L-2 * *"),
        NEW_YEAR_2024,
        days("2024-01-29", "2024-02-27", "2024-03-29"),
    ),
    "day-nW-moves-off-weekends": (
        crontab("0 0 15W * *"),  # Sat 15 June -> Fri 14th, Sun 15 Sept -> Mon 16th
        datetime(2024, 6, 1, tzinfo=UTC),
        days("2024-06-14", "2024-07-15", "2024-08-15", "2024-09-16"),
    ),
    "day-1W-does-not-leave-the-month": (
        crontab("0 0 1W * *"),  # Sat 1 June -> Mon 3rd, not Fri 31 May
        datetime(2024, 5, 15, tzinfo=UTC),
        days("2024-06-03", "2024-07-01", "2024-08-01"),
    ),
    "day-31W-does-not-leave-the-month": (
        crontab("0 0 31W * *"),  # Sun 31 March -> Fri 29th; months without a 31st: none
        datetime(2024, 3, 1, tzinfo=UTC),
        days("2024-03-29", "2024-05-31", "2024-07-31"),
    ),
    "day-LW-last-weekday": (
        crontab("0 0 LW * *"),
        datetime(2024, 3, 1, tzinfo=UTC),
        days("2024-03-29", "2024-04-30", "2024-05-31", "2024-06-28"),
    ),
    "day-xth-weekday-aps3-style": (
        keywords(day="2nd mon"),
        NEW_YEAR_2024,
        days("2024-01-08", "2024-02-12", "2024-03-11"),
    ),
    "day-last-weekday-aps3-style": (
        keywords(day="last fri"),
        NEW_YEAR_2024,
        days("2024-01-26", "2024-02-23", "2024-03-29"),
    ),
    "day-question-mark": (
        crontab("0 0 ? * mon"),
        NEW_YEAR_2024,
        days("2024-01-08", "2024-01-15"),
    ),
    # ---- the day_of_week extras -----------------------------------------------------------
    "dow-hash-nth": (
        crontab("0 0 * * 5#3"),
        NEW_YEAR_2024,
        days("2024-01-19", "2024-02-16", "2024-03-15"),
    ),
    "dow-xth-words": (
        keywords(day_of_week="3rd fri"),
        NEW_YEAR_2024,
        days("2024-01-19", "2024-02-16", "2024-03-15"),
    ),
    "dow-5th-skips-months-without-one": (
        crontab("0 0 * * 1#5"),
        NEW_YEAR_2024,
        days("2024-01-29", "2024-04-29", "2024-07-29", "2024-09-30"),
    ),
    "dow-yL-last": (
        crontab("0 0 * * 5L"),
        NEW_YEAR_2024,
        days("2024-01-26", "2024-02-23", "2024-03-29"),
    ),
    "dow-7L-last-sunday": (
        crontab("0 0 * * 7L"),
        NEW_YEAR_2024,
        days("2024-01-28", "2024-02-25", "2024-03-31"),
    ),
    "dow-last-words": (
        keywords(day_of_week="last fri"),
        NEW_YEAR_2024,
        days("2024-01-26", "2024-02-23", "2024-03-29"),
    ),
    "dow-name-hash": (
        keywords(day_of_week="mon#1,fri#1"),
        NEW_YEAR_2024,
        days("2024-01-05", "2024-02-02", "2024-02-05"),
    ),
    # ---- OR (crontab) versus AND (keywords) -----------------------------------------------
    "crontab-or-rule": (
        crontab("0 0 13 * 5"),  # the 13th or any Friday
        datetime(2024, 9, 1, tzinfo=UTC),
        days(
            "2024-09-06",
            "2024-09-13",
            "2024-09-20",
            "2024-09-27",
            "2024-10-04",
            "2024-10-11",
            "2024-10-13",
        ),
    ),
    "crontab-and-when-day-starts-with-star": (
        crontab("0 0 */2 * 1"),  # odd days that are Mondays (Debian cron)
        NEW_YEAR_2024,
        days("2024-01-15", "2024-01-29", "2024-02-05", "2024-02-19"),
    ),
    "crontab-and-when-weekday-is-star": (
        crontab("0 0 13 * *"),
        NEW_YEAR_2024,
        days("2024-01-13", "2024-02-13"),
    ),
    "crontab-or-with-L": (
        crontab("0 0 L * 1#1"),  # the last day, or the first Monday
        NEW_YEAR_2024,
        days("2024-01-31", "2024-02-05", "2024-02-29", "2024-03-04"),
    ),
    "keyword-and-rule": (
        keywords(day=13, day_of_week="fri"),  # Friday the 13th
        NEW_YEAR_2024,
        days("2024-09-13", "2024-12-13", "2025-06-13"),
    ),
    # ---- seconds, years, weeks ------------------------------------------------------------
    "six-fields-with-seconds": (
        crontab("*/20 * * * * *"),
        NEW_YEAR_2024,
        times("2024-01-01", "00:00:20", "00:00:40", "00:01:00"),
    ),
    "seven-fields-with-year": (
        crontab("0 0 0 1 1 * 2030"),
        NEW_YEAR_2024,
        days("2030-01-01"),
    ),
    "keyword-year-range": (
        keywords(year="2025-2026"),
        NEW_YEAR_2024,
        days("2025-01-01", "2026-01-01"),
    ),
    "keyword-iso-week": (
        keywords(week=1, day_of_week="mon"),  # ISO week 1 of 2025 starts on 30 Dec 2024
        NEW_YEAR_2024,
        days("2024-12-30", "2025-12-29", "2027-01-04"),
    ),
    "keyword-iso-week-53": (
        keywords(week=53, day_of_week="thu"),
        NEW_YEAR_2024,
        days("2026-12-31", "2032-12-30", "2037-12-31"),
    ),
    # ---- keyword defaults -----------------------------------------------------------------
    "keyword-no-fields-every-minute": (
        keywords(),
        NEW_YEAR_2024,
        times("2024-01-01", "00:01:00", "00:02:00"),
    ),
    "keyword-less-significant-fields-take-their-minimum": (
        keywords(month=6),
        NEW_YEAR_2024,
        days("2024-06-01", "2025-06-01"),
    ),
    "keyword-more-significant-fields-are-star": (
        keywords(hour="*/2", minute=1),
        NEW_YEAR_2024,
        times("2024-01-01", "00:01:00", "02:01:00", "04:01:00"),
    ),
    "keyword-second-alone": (
        keywords(second="*/30"),
        NEW_YEAR_2024,
        times("2024-01-01", "00:00:30", "00:01:00", "00:01:30"),
    ),
    "keyword-int-fields": (
        keywords(hour=9, minute=30),
        NEW_YEAR_2024,
        times("2024-01-01", "09:30:00") + times("2024-01-02", "09:30:00"),
    ),
    # ---- macros ---------------------------------------------------------------------------
    "macro-yearly": (crontab("@yearly"), NEW_YEAR_2024, days("2025-01-01", "2026-01-01")),
    "macro-annually": (crontab("@annually"), NEW_YEAR_2024, days("2025-01-01")),
    "macro-monthly": (crontab("@monthly"), NEW_YEAR_2024, days("2024-02-01", "2024-03-01")),
    "macro-weekly": (crontab("@weekly"), NEW_YEAR_2024, days("2024-01-07", "2024-01-14")),
    "macro-daily": (crontab("@daily"), NEW_YEAR_2024, days("2024-01-02", "2024-01-03")),
    "macro-midnight": (crontab("@MIDNIGHT"), NEW_YEAR_2024, days("2024-01-02")),
    "macro-hourly": (
        crontab("@hourly"),
        NEW_YEAR_2024,
        times("2024-01-01", "01:00:00", "02:00:00"),
    ),
    # ---- leap days and month ends ---------------------------------------------------------
    "leap-day-every-four-years": (
        crontab("0 0 29 2 *"),
        datetime(2024, 3, 1, tzinfo=UTC),
        days("2028-02-29", "2032-02-29"),
    ),
    "leap-day-skips-2100": (
        crontab("0 0 29 2 *"),
        datetime(2096, 3, 1, tzinfo=UTC),
        days("2104-02-29"),
    ),
    "last-day-of-february": (
        crontab("0 0 L 2 *"),
        datetime(2024, 3, 1, tzinfo=UTC),
        days("2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"),
    ),
    "31st-skips-short-months": (
        crontab("0 0 31 * *"),
        datetime(2024, 1, 31, tzinfo=UTC),
        days("2024-03-31", "2024-05-31", "2024-07-31", "2024-08-31", "2024-10-31"),
    ),
    "30th-skips-february": (
        crontab("0 0 30 * *"),
        datetime(2024, 1, 30, tzinfo=UTC),
        days("2024-03-30", "2024-04-30"),
    ),
    "leap-day-on-a-monday-and-rule": (
        keywords(month=2, day=29, day_of_week="mon"),
        NEW_YEAR_2024,
        days("2044-02-29", "2072-02-29"),
    ),
    "year-end-rollover": (
        crontab("59 23 31 12 *"),
        NEW_YEAR_2024,
        times("2024-12-31", "23:59:00") + times("2025-12-31", "23:59:00"),
    ),
    "last-year-9999": (
        crontab("0 0 0 31 12 * 9998-9999"),
        NEW_YEAR_2024,
        days("9998-12-31", "9999-12-31"),
    ),
}


@pytest.mark.parametrize(("factory", "after", "expected"), SEQUENCES.values(), ids=SEQUENCES)
def test_sequences(
    factory: Callable[[], CronTrigger], after: datetime, expected: list[str]
) -> None:
    assert take(factory(), len(expected), after) == expected


EXHAUSTED = {
    # id -> (trigger factory, its complete list of fire times after 2024-01-01)
    "seven-fields-one-year": (crontab("0 0 0 1 1 * 2030"), days("2030-01-01")),
    "keyword-year-range": (keywords(year="2025-2026"), days("2025-01-01", "2026-01-01")),
    "leap-day-in-years-that-are-not-leap": (crontab("0 0 12 29 2 * 2025-2040/4"), []),
    "week-53-of-a-year-without-one": (keywords(year=2025, week=53), []),
    "last-fire-in-9999": (crontab("59 59 23 31 12 * 9999"), ["9999-12-31T23:59:59+00:00"]),
}


@pytest.mark.parametrize(("factory", "expected"), EXHAUSTED.values(), ids=EXHAUSTED)
def test_exhausted(factory: Callable[[], CronTrigger], expected: list[str]) -> None:
    assert take(factory(), 10, NEW_YEAR_2024) == expected


def test_pattern_that_never_matches_gives_none() -> None:
    # Feb 30th can never happen: rejected up front. The 5th Monday of February in ISO
    # week 1 can never happen either, which only a search finds out; it ends with None
    # (the calendar repeats every 400 years, so the search stops after one cycle).
    trigger = CronTrigger(month=2, day_of_week="5th mon", week=1, timezone=UTC)
    assert trigger.next(NEW_YEAR_2024) is None


# ---- start_time and end_time ------------------------------------------------------------


def test_next_none_starts_at_start_time_when_it_is_a_fire_time() -> None:
    trigger = CronTrigger(hour=9, start_time="2024-01-01 09:00:00", timezone=UTC)
    assert take(trigger, 2, None) == times("2024-01-01", "09:00:00") + times(
        "2024-01-02", "09:00:00"
    )


def test_next_none_is_the_first_fire_after_start_time() -> None:
    trigger = CronTrigger(hour=9, start_time="2024-01-01 09:00:00.000001", timezone=UTC)
    assert take(trigger, 1, None) == times("2024-01-02", "09:00:00")


def test_after_before_start_time_gives_the_first_fire_at_start() -> None:
    trigger = CronTrigger(hour=9, start_time=date(2024, 6, 1), timezone=UTC)
    assert take(trigger, 1, NEW_YEAR_2024) == times("2024-06-01", "09:00:00")


def test_end_time_on_a_fire_time_is_included() -> None:
    trigger = CronTrigger(hour=9, end_time="2024-01-03T09:00:00+00:00", timezone=UTC)
    assert take(trigger, 5, NEW_YEAR_2024) == [
        "2024-01-01T09:00:00+00:00",
        "2024-01-02T09:00:00+00:00",
        "2024-01-03T09:00:00+00:00",
    ]


def test_after_end_time_gives_none() -> None:
    trigger = CronTrigger(hour=9, end_time="2024-01-03 08:59:59", timezone=UTC)
    assert trigger.next(datetime(2024, 1, 2, 9, tzinfo=UTC)) is None
    assert trigger.next(datetime(2030, 1, 1, tzinfo=UTC)) is None


def test_end_time_equal_to_start_time_fires_once() -> None:
    trigger = CronTrigger(
        hour=9, start_time="2024-01-01 09:00", end_time="2024-01-01 09:00", timezone=UTC
    )
    assert take(trigger, 3, None) == times("2024-01-01", "09:00:00")


def test_aware_start_time_in_another_zone_is_an_instant() -> None:
    trigger = CronTrigger(hour=9, start_time="2024-01-01T10:00:00+02:00", timezone=UTC)
    assert take(trigger, 1, None) == times("2024-01-01", "09:00:00")


def test_without_start_time_next_none_is_pure_and_recent() -> None:
    trigger = CronTrigger(minute="*/5", timezone=UTC)
    first = trigger.next(None)
    assert first is not None
    assert first == trigger.next(None)
    assert first > datetime(2024, 1, 1, tzinfo=UTC)
    restored = Trigger.from_state(trigger.to_state())
    assert restored.next(None) == first


def test_results_are_in_the_trigger_zone_for_an_after_in_another_zone() -> None:
    trigger = CronTrigger.from_crontab("0 12 * * *", timezone="Asia/Tokyo")
    fire = trigger.next(datetime(2024, 1, 1, tzinfo=UTC))
    assert fire is not None
    assert fire.isoformat() == "2024-01-01T12:00:00+09:00"
    assert fire.tzinfo is trigger.timezone


def test_far_past_and_future_afters() -> None:
    trigger = CronTrigger.from_crontab("0 0 1 1 *", timezone="Pacific/Kiritimati")
    first = trigger.next(datetime.min.replace(tzinfo=UTC))
    assert first is not None
    assert first.isoformat() == "1970-01-01T00:00:00-10:40"
    assert trigger.next(datetime.max.replace(tzinfo=UTC)) is None
    assert CronTrigger(hour=0, timezone=UTC).next(datetime(9999, 12, 31, tzinfo=UTC)) is None


def test_exclude_skips_calendar_days() -> None:
    trigger = CronTrigger(
        hour=9, timezone=UTC, exclude=HolidayCalendar(["2024-12-25", "2024-12-26"])
    )
    after = datetime(2024, 12, 24, 12, tzinfo=UTC)
    assert take(trigger, 1, after) == times("2024-12-27", "09:00:00")


# ---- H (hash) ---------------------------------------------------------------------------

HASHES = {
    # id -> (expression, the resolved str() for seed "my-schedule")
    "plain": ("H * * * *", "53 * * * *"),
    "two-fields": ("H H * * *", "53 6 * * *"),
    "range": ("H(0-29) * * * *", "23 * * * *"),
    "step": ("H/15 * * * *", "8-59/15 * * * *"),
    "range-and-step": ("H(30-59)/10 * * * *", "33-59/10 * * * *"),
    "day-stays-within-28": ("0 0 H * *", "0 0 23 * *"),
    "weekday": ("0 0 * * H", "0 0 * * 4"),
    "in-a-list": ("H(0-29),H(30-59) * * * *", "23,53 * * * *"),
    "seconds": ("H * * * * *", "14 * * * * *"),
}


@pytest.mark.parametrize(("expr", "resolved"), HASHES.values(), ids=HASHES)
def test_hash_is_stable(expr: str, resolved: str) -> None:
    trigger = CronTrigger.from_crontab(expr, seed="my-schedule", timezone=UTC)
    assert str(trigger) == resolved
    assert trigger == CronTrigger.from_crontab(resolved, timezone=UTC)


def test_hash_spreads_seeds() -> None:
    minutes = {
        str(CronTrigger.from_crontab("H * * * *", seed=f"job-{n}", timezone=UTC)).split()[0]
        for n in range(200)
    }
    assert len(minutes) > 40


def test_hash_differs_per_field() -> None:
    minute, hour = str(CronTrigger.from_crontab("H H * * *", seed="x", timezone=UTC)).split()[:2]
    assert (minute, hour) != ("0", "0")
    assert CronTrigger.from_crontab("H H * * *", seed="x", timezone=UTC) != (
        CronTrigger.from_crontab("H H * * *", seed="y", timezone=UTC)
    )
