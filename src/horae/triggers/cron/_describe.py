"""The readable forms of a schedule: the crontab-like ``str()`` and the English sentence
of ``describe()`` ("At minute 1 past every 2nd hour", in crontab.guru's style)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ._fields import (
    CRONTAB_SPECS,
    DAY_OF_WEEK,
    FIELD_NAMES,
    KEYWORD_SPECS,
    WEEKDAY_NAMES,
    Term,
    ordinal,
    parse_field,
)

# English on purpose, not calendar.month_name: that one follows the process locale.
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CRONTAB_WEEKDAYS = ("Sunday", *_WEEKDAYS)  # 0 and 7 are Sunday
_MAX_LISTED_TIMES = 6
_PLURALS = {"day-of-month": "days-of-month"}

Render = Callable[[int], str]


def crontab_text(fields: Mapping[str, str], crontab: bool) -> str:
    """The crontab-like form that ``str(trigger)`` shows."""
    if crontab:
        parts = [fields[name] for name in ("minute", "hour", "day", "month", "day_of_week")]
        if fields["second"] != "0" or fields["year"] != "*":
            parts.insert(0, fields["second"])
        if fields["year"] != "*":
            parts.append(fields["year"])
        return " ".join(parts)
    parts = [fields[name] for name in ("second", "minute", "hour", "day", "month")]
    parts.append(_weekday_names(fields["day_of_week"]))
    if fields["year"] != "*":
        parts.append(fields["year"])
    if fields["week"] != "*":
        parts.append(f"week={fields['week']}")
    return " ".join(parts)


def _weekday_names(text: str) -> str:
    """A keyword-form weekday field with names instead of numbers (0 = Monday)."""
    names: list[str] = []
    for term in parse_field(DAY_OF_WEEK, text):
        if term.kind == "all" and term.step == 1:
            names.append("*")
        elif term.kind == "nth":
            names.append(f"{WEEKDAY_NAMES[term.start]}#{term.end}")
        elif term.kind == "last_of":
            names.append(f"{WEEKDAY_NAMES[term.start]}L")
        elif term.kind == "range" and term.step == 1:
            first, last = WEEKDAY_NAMES[term.start], WEEKDAY_NAMES[term.end]
            names.append(first if term.start == term.end else f"{first}-{last}")
        else:
            names.extend(WEEKDAY_NAMES[day] for day in range(term.start, term.end + 1, term.step))
    return ",".join(names)


def describe_fields(fields: Mapping[str, str], crontab: bool) -> str:
    """The English sentence that ``trigger.describe()`` returns."""
    specs = CRONTAB_SPECS if crontab else KEYWORD_SPECS
    terms = {name: parse_field(specs[name], fields[name]) for name in FIELD_NAMES}
    or_rule = crontab and fields["day"][0] != "*" and fields["day_of_week"][0] != "*"
    weekday = _CRONTAB_WEEKDAYS if crontab else _WEEKDAYS
    parts = [
        _time(terms["second"], terms["minute"], terms["hour"]),
        _days(terms["day"], terms["day_of_week"], weekday, or_rule),
        None if _is_all(terms["week"]) else f"in {_phrase(terms['week'], 'ISO week')}",
        None if _is_all(terms["month"]) else f"in {_bare(terms['month'], 'month', _month)}",
        _years(terms["year"]),
    ]
    return " ".join(part for part in parts if part)


def _time(second: Sequence[Term], minute: Sequence[Term], hour: Sequence[Term]) -> str:
    at_second, at_minute = _single(second), _single(minute)
    hours = [term.start for term in hour if term.kind == "range" and term.start == term.end]
    if (
        at_second is not None
        and at_minute is not None
        and len(hours) == len(hour) <= _MAX_LISTED_TIMES
    ):
        return "At " + _join([_clock(h, at_minute, at_second) for h in hours])
    minutes = "every minute" if _is_all(minute) else _phrase(minute, "minute")
    text = minutes
    if at_second != 0:
        seconds = "every second" if _is_all(second) else _phrase(second, "second")
        if not _is_all(minute):
            text = f"{seconds} of {minutes}"
        else:
            text = seconds if seconds.startswith("every") else f"{seconds} of every minute"
    if not _is_all(hour):
        text += f" past {_phrase(hour, 'hour')}"
    elif not minutes.startswith("every"):
        text += " past every hour"
    return f"At {text}"


def _days(
    day: Sequence[Term], day_of_week: Sequence[Term], weekday: Sequence[str], or_rule: bool
) -> str | None:
    def weekday_name(number: int) -> str:
        return weekday[number]

    by_day = None if _is_all(day) else _day_of_month(day)
    by_weekday = None
    if not _is_all(day_of_week):
        plain = [term for term in day_of_week if term.kind in ("all", "range", "from")]
        items = [_bare(plain, "day-of-week", weekday_name)] if plain else []
        items += [_weekday_of_month(term, weekday) for term in day_of_week if term not in plain]
        by_weekday = _join(items)
    if by_day is not None and by_weekday is not None:
        if or_rule:
            return f"on {by_day} or on {by_weekday}"
        return f"on {by_day} if it is {by_weekday}"
    text = by_day or by_weekday
    return None if text is None else f"on {text}"


def _day_of_month(terms: Sequence[Term]) -> str:
    plain = [term for term in terms if term.kind in ("all", "range", "from")]
    items = [_phrase(plain, "day-of-month")] if plain else []
    for term in terms:
        if term.kind == "last":
            minus = f" minus {term.start} day{'s' * (term.start > 1)}" if term.start else ""
            items.append(f"the last day of the month{minus}")
        elif term.kind == "nearest":
            items.append(f"the weekday nearest day {term.start} of the month")
        elif term.kind == "last_weekday":
            items.append("the last weekday of the month")
        elif term.kind in ("nth", "last_of"):
            items.append(_weekday_of_month(term, _WEEKDAYS))  # APScheduler 3's "1st mon"
    return _join(items)


def _weekday_of_month(term: Term, weekday: Sequence[str]) -> str:
    which = "last" if term.kind == "last_of" else ordinal(term.end)
    return f"the {which} {weekday[term.start]} of the month"


def _years(terms: Sequence[Term]) -> str | None:
    if _is_all(terms):
        return None
    if len(terms) == 1 and terms[0].kind == "all":
        return f"in every {ordinal(terms[0].step)} year from 1970"
    return f"in {_bare(terms, 'year', str)}"


def _phrase(terms: Sequence[Term], unit: str) -> str:
    """'every minute', 'minute 5', 'every 5th minute', 'every minute from 0 through 30',
    'minutes 0, 15 and 45'."""
    if len(terms) == 1:
        term = terms[0]
        if term.kind == "range" and term.start == term.end:
            return f"{unit} {term.start}"
        return _stepped(term, unit, str)
    plural = _PLURALS.get(unit, f"{unit}s")
    return f"{plural} {_join([_item(term, str) for term in terms])}"


def _bare(terms: Sequence[Term], unit: str, render: Render) -> str:
    """Like :func:`_phrase` for names and years, where a value stands alone: 'January',
    'Monday through Friday', 'every 3rd month'."""
    # dict.fromkeys: crontab's 0 and 7 are both Sunday
    return _join(list(dict.fromkeys(_item(term, render, unit) for term in terms)))


def _item(term: Term, render: Render, unit: str = "") -> str:
    if term.kind == "range" and term.step == 1:
        if term.start == term.end:
            return render(term.start)
        return f"{render(term.start)} through {render(term.end)}"
    return _stepped(term, unit, render)


def _stepped(term: Term, unit: str, render: Render) -> str:
    every = "every" if term.step == 1 else f"every {ordinal(term.step)}"
    every = f"{every} {unit}" if unit else every
    if term.kind == "all":
        return every
    if term.kind == "from":
        return f"{every} from {render(term.start)}"
    return f"{every} from {render(term.start)} through {render(term.end)}"


def _is_all(terms: Sequence[Term]) -> bool:
    return all(term.kind == "all" and term.step == 1 for term in terms)


def _single(terms: Sequence[Term]) -> int | None:
    if len(terms) == 1 and terms[0].kind == "range" and terms[0].start == terms[0].end:
        return terms[0].start
    return None


def _clock(hour: int, minute: int, second: int) -> str:
    return f"{hour:02d}:{minute:02d}" + (f":{second:02d}" if second else "")


def _month(number: int) -> str:
    return _MONTHS[number - 1]


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"
