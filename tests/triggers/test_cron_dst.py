"""CronTrigger across DST and other offset changes (SPEC §2, Debian cron's rules).

* minute or hour field starts with ``*`` ("elapsed"): fires at every instant whose wall
  time matches, so skipped wall times never fire and repeated ones fire twice;
* otherwise ("wall clock"): once per matching wall time, a skipped one at the first
  instant after the gap, a repeated one at its first occurrence.

Zones: New York and Berlin (one hour at 02:00/03:00), Lord Howe (30 minutes), São Paulo
and Tehran (at midnight), Apia (the whole of 2011-12-30 skipped), St John's (a -03:30
zone), UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from horae.triggers import CronTrigger

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
TEHRAN = ZoneInfo("Asia/Tehran")
APIA = ZoneInfo("Pacific/Apia")
ST_JOHNS = ZoneInfo("America/St_Johns")


def crontab(expr: str, zone: ZoneInfo | timezone) -> Callable[[], CronTrigger]:
    return lambda: CronTrigger.from_crontab(expr, timezone=zone)


def keywords(zone: ZoneInfo, **kwargs: object) -> Callable[[], CronTrigger]:
    return lambda: CronTrigger(timezone=zone, **kwargs)  # type: ignore[arg-type]


def at(text: str) -> datetime:
    """An aware datetime from ISO text with an offset (the offset picks the fold)."""
    return datetime.fromisoformat(text)


# id -> (trigger factory, after, the next fire times as ISO strings with offsets)
CASES: dict[str, tuple[Callable[[], CronTrigger], datetime, list[str]]] = {
    # ---- New York: 2024-03-10 02:00 -> 03:00, 2024-11-03 02:00 -> 01:00 -----------------
    "new-york-wall-time-in-gap-fires-at-gap-end": (
        crontab("30 2 * * *", NEW_YORK),
        at("2024-03-09T12:00:00-05:00"),
        ["2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"],
    ),
    "new-york-gap-start-fires-at-gap-end": (
        crontab("0 2 * * *", NEW_YORK),
        at("2024-03-09T12:00:00-05:00"),
        ["2024-03-10T03:00:00-04:00", "2024-03-11T02:00:00-04:00"],
    ),
    "new-york-several-gap-times-fire-once": (
        crontab("0,30 2,3 * * *", NEW_YORK),
        at("2024-03-10T01:00:00-05:00"),
        ["2024-03-10T03:00:00-04:00", "2024-03-10T03:30:00-04:00", "2024-03-11T02:00:00-04:00"],
    ),
    "new-york-repeated-wall-time-fires-once": (
        crontab("30 1 * * *", NEW_YORK),
        at("2024-11-02T12:00:00-04:00"),
        ["2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"],
    ),
    "new-york-after-in-second-fold-skips-the-first-occurrences": (
        crontab("45 1 * * *", NEW_YORK),
        at("2024-11-03T01:30:00-05:00"),
        ["2024-11-04T01:45:00-05:00"],
    ),
    "new-york-elapsed-skips-the-gap": (
        crontab("*/30 * * * *", NEW_YORK),
        at("2024-03-10T01:00:00-05:00"),
        ["2024-03-10T01:30:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T03:30:00-04:00"],
    ),
    "new-york-elapsed-repeats-the-fold": (
        crontab("*/30 * * * *", NEW_YORK),
        at("2024-11-03T00:15:00-04:00"),
        [
            "2024-11-03T00:30:00-04:00",
            "2024-11-03T01:00:00-04:00",
            "2024-11-03T01:30:00-04:00",
            "2024-11-03T01:00:00-05:00",
            "2024-11-03T01:30:00-05:00",
            "2024-11-03T02:00:00-05:00",
        ],
    ),
    "new-york-elapsed-hour-2-does-not-exist": (
        crontab("* 2 * * *", NEW_YORK),
        at("2024-03-10T00:00:00-05:00"),
        ["2024-03-11T02:00:00-04:00", "2024-03-11T02:01:00-04:00"],
    ),
    "new-york-elapsed-hour-1-twice": (
        crontab("15 * * * *", NEW_YORK),
        at("2024-11-03T00:30:00-04:00"),
        ["2024-11-03T01:15:00-04:00", "2024-11-03T01:15:00-05:00", "2024-11-03T02:15:00-05:00"],
    ),
    "new-york-elapsed-seconds-in-the-fold": (
        crontab("*/20 * * * * *", NEW_YORK),
        at("2024-11-03T01:59:40-04:00"),
        ["2024-11-03T01:00:00-05:00", "2024-11-03T01:00:20-05:00"],
    ),
    "new-york-after-given-in-utc": (
        crontab("30 1 * * *", NEW_YORK),
        at("2024-11-03T05:40:00+00:00"),  # 01:40 EDT, the first pass
        ["2024-11-04T01:30:00-05:00"],
    ),
    # ---- Berlin: 2024-03-31 02:00 -> 03:00, 2024-10-27 03:00 -> 02:00 -------------------
    "berlin-wall-time-in-gap": (
        crontab("30 2 * * *", BERLIN),
        at("2024-03-30T12:00:00+01:00"),
        ["2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"],
    ),
    "berlin-repeated-wall-time-once": (
        crontab("30 2 * * *", BERLIN),
        at("2024-10-26T12:00:00+02:00"),
        ["2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"],
    ),
    "berlin-keyword-form-same-rules": (
        keywords(BERLIN, hour=2, minute=30),
        at("2024-03-30T12:00:00+01:00"),
        ["2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"],
    ),
    "berlin-keyword-elapsed-minute-star": (
        keywords(BERLIN, hour=2, minute="*/30"),
        at("2024-10-26T12:00:00+02:00"),
        [
            "2024-10-27T02:00:00+02:00",
            "2024-10-27T02:30:00+02:00",
            "2024-10-27T02:00:00+01:00",
            "2024-10-27T02:30:00+01:00",
            "2024-10-28T02:00:00+01:00",
        ],
    ),
    "berlin-keyword-elapsed-in-gap-day": (
        keywords(BERLIN, hour=2, minute="*/30"),
        at("2024-03-30T12:00:00+01:00"),
        ["2024-04-01T02:00:00+02:00"],
    ),
    "berlin-elapsed-hourly-fold": (
        crontab("0 * * * *", BERLIN),
        at("2024-10-27T01:30:00+02:00"),
        ["2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00", "2024-10-27T03:00:00+01:00"],
    ),
    "berlin-six-fields-gap-fires-at-the-gap-end-not-at-its-second": (
        crontab("30 30 2 * * *", BERLIN),
        at("2024-03-30T12:00:00+01:00"),
        ["2024-03-31T03:00:00+02:00", "2024-04-01T02:30:30+02:00"],
    ),
    "berlin-seven-fields": (
        crontab("0 30 2 31 3 * 2024", BERLIN),
        at("2024-01-01T00:00:00+01:00"),
        ["2024-03-31T03:00:00+02:00"],
    ),
    # ---- Lord Howe: 30-minute shifts, 2024-04-07 02:00 -> 01:30, 2024-10-06 02:00 -> 02:30
    "lord-howe-wall-time-in-half-hour-gap": (
        crontab("15 2 * * *", LORD_HOWE),
        at("2024-10-05T12:00:00+10:30"),
        ["2024-10-06T02:30:00+11:00", "2024-10-07T02:15:00+11:00"],
    ),
    "lord-howe-repeated-half-hour-once": (
        crontab("45 1 * * *", LORD_HOWE),
        at("2024-04-06T12:00:00+11:00"),
        ["2024-04-07T01:45:00+11:00", "2024-04-08T01:45:00+10:30"],
    ),
    "lord-howe-elapsed-fold": (
        crontab("*/15 * * * *", LORD_HOWE),
        at("2024-04-07T01:20:00+11:00"),
        [
            "2024-04-07T01:30:00+11:00",
            "2024-04-07T01:45:00+11:00",
            "2024-04-07T01:30:00+10:30",
            "2024-04-07T01:45:00+10:30",
            "2024-04-07T02:00:00+10:30",
        ],
    ),
    "lord-howe-elapsed-gap": (
        crontab("*/15 * * * *", LORD_HOWE),
        at("2024-10-06T01:50:00+10:30"),
        ["2024-10-06T02:30:00+11:00", "2024-10-06T02:45:00+11:00"],
    ),
    "lord-howe-elapsed-hour-step-keeps-the-top-of-the-hour": (
        crontab("0 */3 * * *", LORD_HOWE),
        at("2024-10-06T01:00:00+10:30"),
        ["2024-10-06T03:00:00+11:00", "2024-10-06T06:00:00+11:00"],
    ),
    "lord-howe-elapsed-top-of-hour-in-gap": (
        crontab("0 * * * *", LORD_HOWE),
        at("2024-10-06T01:30:00+10:30"),
        ["2024-10-06T03:00:00+11:00"],
    ),
    # ---- São Paulo: 2018-11-04 00:00 -> 01:00, 2018-02-18 00:00 -> 2018-02-17 23:00 -----
    "sao-paulo-midnight-in-gap": (
        crontab("0 0 * * *", SAO_PAULO),
        at("2018-11-03T12:00:00-03:00"),
        ["2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"],
    ),
    "sao-paulo-wall-time-in-gap-once-a-year": (
        crontab("30 0 4 11 *", SAO_PAULO),
        at("2018-01-01T00:00:00-02:00"),
        ["2018-11-04T01:00:00-02:00", "2019-11-04T00:30:00-03:00"],
    ),
    "sao-paulo-elapsed-hour-0-missing": (
        crontab("*/30 0 * * *", SAO_PAULO),
        at("2018-11-03T12:00:00-03:00"),
        ["2018-11-05T00:00:00-02:00", "2018-11-05T00:30:00-02:00"],
    ),
    "sao-paulo-repeated-evening-once": (
        crontab("30 23 * * *", SAO_PAULO),
        at("2018-02-17T12:00:00-02:00"),
        ["2018-02-17T23:30:00-02:00", "2018-02-18T23:30:00-03:00"],
    ),
    "sao-paulo-elapsed-repeated-evening": (
        crontab("30 * * * *", SAO_PAULO),
        at("2018-02-17T22:45:00-02:00"),
        ["2018-02-17T23:30:00-02:00", "2018-02-17T23:30:00-03:00", "2018-02-18T00:30:00-03:00"],
    ),
    # ---- Tehran: 2022-03-22 00:00 -> 01:00, 2022-09-22 00:00 -> 2022-09-21 23:00 --------
    "tehran-midnight-in-gap": (
        crontab("0 0 * * *", TEHRAN),
        at("2022-03-21T12:00:00+03:30"),
        ["2022-03-22T01:00:00+04:30", "2022-03-23T00:00:00+04:30"],
    ),
    "tehran-repeated-hour-once": (
        crontab("30 23 * * *", TEHRAN),
        at("2022-09-21T12:00:00+04:30"),
        ["2022-09-21T23:30:00+04:30", "2022-09-22T23:30:00+03:30"],
    ),
    "tehran-elapsed-gap": (
        crontab("0 * * * *", TEHRAN),
        at("2022-03-21T23:30:00+03:30"),
        ["2022-03-22T01:00:00+04:30", "2022-03-22T02:00:00+04:30"],
    ),
    # ---- Apia: 2011-12-29 24:00 (-10) -> 2011-12-31 00:00 (+14), the 30th never happened
    "apia-wall-time-on-the-skipped-day": (
        crontab("0 12 * * *", APIA),
        at("2011-12-29T12:00:00-10:00"),
        ["2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00"],
    ),
    "apia-yearly-on-the-skipped-day": (
        crontab("0 9 30 12 *", APIA),
        at("2011-01-01T00:00:00-11:00"),
        ["2011-12-31T00:00:00+14:00", "2012-12-30T09:00:00+14:00"],
    ),
    "apia-elapsed-jumps-the-day": (
        crontab("0 * * * *", APIA),
        at("2011-12-29T23:30:00-10:00"),
        ["2011-12-31T00:00:00+14:00", "2011-12-31T01:00:00+14:00"],
    ),
    "apia-elapsed-on-the-skipped-day-never-fires": (
        crontab("0 * 30 12 *", APIA),
        at("2011-12-01T00:00:00-10:00"),
        ["2012-12-30T00:00:00+14:00"],
    ),
    # ---- St John's: -03:30/-02:30, 2024-03-10 02:00 -> 03:00, 2024-11-03 02:00 -> 01:00 --
    "st-johns-wall-time-in-gap": (
        crontab("30 2 * * *", ST_JOHNS),
        at("2024-03-09T12:00:00-03:30"),
        ["2024-03-10T03:00:00-02:30", "2024-03-11T02:30:00-02:30"],
    ),
    "st-johns-elapsed-fold": (
        crontab("*/30 * * * *", ST_JOHNS),
        at("2024-11-03T00:45:00-02:30"),
        [
            "2024-11-03T01:00:00-02:30",
            "2024-11-03T01:30:00-02:30",
            "2024-11-03T01:00:00-03:30",
            "2024-11-03T01:30:00-03:30",
            "2024-11-03T02:00:00-03:30",
        ],
    ),
    "st-johns-repeated-once": (
        crontab("30 1 * * *", ST_JOHNS),
        at("2024-11-02T12:00:00-02:30"),
        ["2024-11-03T01:30:00-02:30", "2024-11-04T01:30:00-03:30"],
    ),
    # ---- UTC never shifts ---------------------------------------------------------------
    "utc-wall-time": (
        crontab("30 2 * * *", UTC),
        at("2024-03-09T12:00:00+00:00"),
        ["2024-03-10T02:30:00+00:00", "2024-03-11T02:30:00+00:00"],
    ),
    "utc-elapsed": (
        crontab("*/30 * * * *", UTC),
        at("2024-10-27T00:45:00+00:00"),
        ["2024-10-27T01:00:00+00:00", "2024-10-27T01:30:00+00:00", "2024-10-27T02:00:00+00:00"],
    ),
}


@pytest.mark.parametrize(("factory", "after", "expected"), CASES.values(), ids=CASES)
def test_dst(factory: Callable[[], CronTrigger], after: datetime, expected: list[str]) -> None:
    trigger = factory()
    fires: list[str] = []
    current = trigger.next(after)
    while current is not None and len(fires) < len(expected):
        assert current.tzinfo is trigger.timezone
        fires.append(current.isoformat())
        current = trigger.next(current)
    assert fires == expected


# A hand-made datetime inside a gap does not exist; Python reads it (fold=0) with the
# offset from before the gap, so 02:30 on New York's spring-forward day is 03:30 EDT.
IMAGINARY = datetime(2024, 3, 10, 2, 30, tzinfo=NEW_YORK)


def test_after_inside_a_gap_is_read_as_its_instant() -> None:
    assert CronTrigger.from_crontab("45 3 * * *", timezone=NEW_YORK).next(IMAGINARY) == at(
        "2024-03-10T03:45:00-04:00"
    )
    assert CronTrigger.from_crontab("0 3 * * *", timezone=NEW_YORK).next(IMAGINARY) == at(
        "2024-03-11T03:00:00-04:00"
    )
    elapsed = CronTrigger.from_crontab("*/20 * * * *", timezone=NEW_YORK).next(IMAGINARY)
    assert elapsed is not None
    assert elapsed.isoformat() == "2024-03-10T03:40:00-04:00"


def test_start_time_in_a_gap_is_the_first_instant_after_it() -> None:
    trigger = CronTrigger(minute="*/10", timezone=NEW_YORK, start_time="2024-03-10 02:30")
    assert trigger.start_time is not None
    assert trigger.start_time.isoformat() == "2024-03-10T03:00:00-04:00"
    first = trigger.next(None)
    assert first is not None
    assert first.isoformat() == "2024-03-10T03:00:00-04:00"


def test_end_time_in_the_second_pass_of_a_fold() -> None:
    trigger = CronTrigger(
        minute="*/30", timezone=NEW_YORK, end_time=at("2024-11-03T01:00:00-05:00")
    )
    fire = trigger.next(at("2024-11-03T01:30:00-04:00"))
    assert fire is not None
    assert fire.isoformat() == "2024-11-03T01:00:00-05:00"
    assert trigger.next(fire) is None
